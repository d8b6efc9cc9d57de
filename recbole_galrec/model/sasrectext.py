"""SASRecText: RecBole's SASRec whose item embedding table starts from the items' text, then trains as SASRec does.

The text baseline of GALRec: text without a language model in the training loop. Each item's text is encoded
once by the whole frozen text encoder (:mod:`recbole_galrec.layers.text_encoder`), the vectors are PCA-whitened
to ``hidden_size`` and scaled to SASRec's initialisation (:mod:`recbole_galrec.layers.text_projection`), and
:meth:`SASRecText.load_item_text` copies them into the table before training. Both are steps of the run
(:func:`recbole_galrec.running.model_inputs.prepare` computes the table,
:func:`recbole_galrec.running.steps.construct_model` loads it); the constructor builds SASRec's layers only, so
that a model rebuilt from a checkpoint takes its trained table from the checkpoint without an encoder. Every
other parameter, the loss and the scores are SASRec's.
"""

import torch
from recbole.model.sequential_recommender.sasrec import SASRec

from recbole_galrec.settings import SASRecTextSettings

__all__ = ["SASRecText"]


class SASRecText(SASRec):
    settings_class = SASRecTextSettings  # checked by build_config before any data is read
    # The constructor is SASRec's: it builds the layers and reads nothing else.

    def load_item_text(self, table: torch.Tensor) -> None:
        """Copy ``table [n_items, hidden_size]`` (the projected text vectors, row 0 the padding item's) into the
        item embedding table."""
        expected = (self.n_items, self.hidden_size)
        if tuple(table.shape) != expected:
            raise ValueError(f"item text table of shape {tuple(table.shape)}; this model's item table is {expected}")
        with torch.no_grad():
            weight = self.item_embedding.weight  # [n_items, H]
            weight.copy_(table.to(device=weight.device, dtype=weight.dtype))
