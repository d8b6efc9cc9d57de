"""Text vectors projected to an item-embedding table: centred, PCA-whitened to the table's width, and scaled to
the spread of the table's random initialisation.

Whitening keeps the ``hidden_size`` directions along which the items' texts differ most and gives each the same
variance, so that no single direction dominates the dot products of a model that then trains the table. The
scale is that of the initialisation the table would otherwise get (RecBole's ``initializer_range``), so the rest
of the model sees inputs of the size it was built for. Rows of items without text, RecBole's padding row 0
among them, stay zero. The result is deterministic: computed in float64 on the CPU, each direction's sign fixed.
"""

import torch

from recbole_galrec.errors import ConfigError

__all__ = ["project_text_vectors"]

# A direction whose singular value is below this share of the largest carries no variance of its own (texts
# repeated, or fewer distinct texts than directions asked for): whitening it would only amplify rounding.
_RANK_TOLERANCE = 1e-6


def project_text_vectors(vectors: torch.Tensor, hidden_size: int, std: float) -> torch.Tensor:
    """``vectors [n_items, D]`` (a zero row: an item without text) -> ``[n_items, hidden_size]`` float32 whose
    rows with text have mean zero, uncorrelated columns of equal variance, and entries of standard deviation
    ``std``; rows without text are zero.

    Raises:
        ConfigError: naming ``hidden_size`` when it exceeds the text dimensions ``D`` or what the items with text
            can span (their count less one, after centring).
    """
    n_items, width = vectors.shape
    has_text = vectors.abs().sum(-1) > 0  # [n_items]
    count = int(has_text.sum())
    if hidden_size > width:
        raise ConfigError(
            f"hidden_size {hidden_size} is wider than the text vectors ({width} dimensions): the item table is "
            f"projected from them. Set hidden_size to at most {width}."
        )
    if hidden_size > count - 1:
        raise ConfigError(
            f"hidden_size {hidden_size}: only {count} items have text, which span at most {max(count - 1, 0)} "
            "directions once centred. Set hidden_size lower or give more items text (item_text_fields)."
        )
    texts = vectors[has_text].double()  # [M, D]
    centred = texts - texts.mean(0)  # [M, D]
    _, singular, right = torch.linalg.svd(centred, full_matrices=False)  # [M, K], [K], [K, D]
    if singular[hidden_size - 1] <= _RANK_TOLERANCE * singular[0]:
        rank = int((singular > _RANK_TOLERANCE * singular[0]).sum())
        raise ConfigError(
            f"hidden_size {hidden_size}: the {count} item texts span only {rank} directions (many items share a "
            f"text). Set hidden_size to at most {rank}."
        )
    components = right[:hidden_size]  # [H, D]
    # Each direction's sign: its largest coordinate positive, so that the table does not depend on the solver.
    peaks = components.gather(1, components.abs().argmax(1, keepdim=True))  # [H, 1]
    components = components * torch.sign(peaks)  # [H, D]
    whitened = centred @ components.T / singular[:hidden_size]  # [M, H], each column of unit norm
    whitened = whitened * (std / whitened.std())  # [M, H]
    table = torch.zeros(n_items, hidden_size, dtype=torch.float64)  # [n_items, H]
    table[has_text] = whitened
    return table.float()
