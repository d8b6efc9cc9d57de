"""The language-model backbone of GALRec: a Hugging Face model fed soft-token prompts via ``inputs_embeds``.

:func:`load_backbone` loads a model folder or a hub id (:mod:`.backbone_source`: where it loads from) and
:func:`build_backbone` wraps an already-built ``transformers`` model; :mod:`.backbone_setup` shapes either
(family, head, layers, tuning, tokenizer). Both return a :class:`Backbone`. Task tokens (e.g. ``[GAL_USER]``)
are registered in the tokenizer as special tokens, but the HF embedding matrix is not resized: the backbone
owns a small trainable table for them, so they train in every tuning mode while the pretrained model is tuned
with LoRA (``lora``), entirely (``full``) or not at all (``frozen``).

Nothing here calls ``.cuda()``: move the returned module with ``.to(device)``.
"""

import hashlib
import logging
from collections.abc import Sequence

import torch
from torch import nn

from recbole_galrec.errors import ConfigError
from recbole_galrec.layers.backbone_setup import (
    FAMILIES,
    load_pretrained,
    model_family,
    prepare_model,
    prepare_tokenizer,
)
from recbole_galrec.layers.backbone_source import (
    check_source,
    default_backbone_path,
    hub_offline,
    load_error,
    resolve_path,
)
from recbole_galrec.layers.parameters import count_parameters
from recbole_galrec.settings import DTYPES, BackboneSettings

# The backbone's public names, also those of the modules it ties together.
__all__ = [
    "FAMILIES",
    "TORCH_DTYPES",
    "Backbone",
    "build_backbone",
    "check_source",
    "default_backbone_path",
    "hub_offline",
    "load_backbone",
]

logger = logging.getLogger(__name__)

TORCH_DTYPES = {name: getattr(torch, name) for name in DTYPES}  # llm_dtype -> the HF model's weight dtype


class Backbone(nn.Module):
    """A Hugging Face model that maps prompt embeddings ``[B, T, H]`` to last hidden states ``[B, T, H]``.

    Attributes:
        family: one of :data:`FAMILIES`.
        hidden_size: width of the hidden states.
        model: the HF module that runs (an encoder-decoder's encoder; a decoder's base model).
        tokenizer: the HF tokenizer with the task tokens registered (a plain attribute, not a submodule).
        added_token_ids: task token -> its tokenizer id.
        added_embeddings: trainable ``nn.Embedding(len(added_tokens), H)`` of the task tokens.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        family: str,
        hidden_size: int,
        added_token_ids: dict[str, int],
    ) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.family = family
        self.hidden_size = int(hidden_size)
        self.added_token_ids = dict(added_token_ids)
        table = model.get_input_embeddings().weight  # [V, H]
        num_added, device = len(added_token_ids), table.device
        # Float32 whatever the model's dtype: the task tokens always train.
        self.added_embeddings = nn.Embedding(num_added, table.shape[1], device=device)
        with torch.no_grad():
            noise = torch.randn(num_added, table.shape[1], device=device)  # [K, H]
            init = table.float().mean(0) + 0.02 * table.float().std(0) * noise  # [K, H]
            self.added_embeddings.weight.copy_(init)
        ids = torch.tensor(list(added_token_ids.values()), dtype=torch.long, device=device)  # [K]
        self.register_buffer("_added_ids", ids, persistent=False)

    @property
    def device(self) -> torch.device:
        return self.added_embeddings.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the HF model's weights (``llm_dtype``): inputs are cast to it."""
        return self.model.get_input_embeddings().weight.dtype

    def input_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Embedding lookup ``[B, T] -> [B, T, H]``.

        Task tokens come from :attr:`added_embeddings`, every other id from the HF model's embedding table.
        """
        base = self.model.get_input_embeddings()
        match = input_ids.unsqueeze(-1) == self._added_ids  # [B, T, K]
        is_added = match.any(-1)  # [B, T]
        embeds = base(input_ids.masked_fill(is_added, 0))  # [B, T, H]
        if self._added_ids.numel() == 0:
            return embeds
        added = self.added_embeddings(match.long().argmax(-1)).to(embeds.dtype)  # [B, T, H]
        return torch.where(is_added.unsqueeze(-1), added, embeds)  # [B, T, H]

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, groups: int = 1) -> torch.Tensor:
        """Last hidden states ``[B, T, H]`` of ``inputs_embeds [B, T, H]`` under ``attention_mask [B, T]``
        (right padding: each row's real positions first).

        With ``groups > 1`` the rows run in that many groups of about equal size, in order of length, each
        trimmed to its longest row, so that little of the work is padding; the states of real positions are the
        same as in one pass (padding positions hold no meaningful state either way). A decoder attends
        causally; right padding is fine because the caller pools at explicit positions.
        """
        rows = inputs_embeds.shape[0]
        if groups <= 1 or rows < 2:
            return self._last_states(inputs_embeds, attention_mask)
        width = inputs_embeds.shape[1]
        lengths = attention_mask.sum(dim=1)  # [B]
        order = torch.argsort(lengths, stable=True)  # [B]
        parts = []
        for group in order.tensor_split(min(groups, rows)):
            used = int(lengths[group].max())
            states = self._last_states(inputs_embeds[group, :used], attention_mask[group, :used])  # [b, t, H]
            parts.append(nn.functional.pad(states, (0, 0, 0, width - used)))  # [b, T, H]
        return torch.cat(parts)[torch.argsort(order)]  # [B, T, H], rows in the input order

    def _last_states(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        kwargs = {"use_cache": False} if self.family == "decoder" else {}
        out = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kwargs)
        return out.last_hidden_state  # [B, T, H]

    @torch.no_grad()
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Mean of the last hidden states over non-padding tokens: ``[N, T] -> [N, H]`` (float32).

        Runs in eval mode, ``batch_size`` rows at a time, on the module's device (the result stays there);
        a row whose mask is all zero gives a zero vector. The previous train/eval mode is restored.
        """
        was_training = self.training
        self.eval()
        try:
            input_ids = input_ids.to(self.device)  # [N, T]
            attention_mask = attention_mask.to(self.device)  # [N, T]
            pooled = torch.zeros(input_ids.shape[0], self.hidden_size, device=self.device)  # [N, H]
            rows = attention_mask.any(-1).nonzero().squeeze(-1)  # [M], rows with at least one token
            for chunk in rows.split(batch_size):
                ids, mask = input_ids[chunk], attention_mask[chunk]  # [b, T]
                hidden = self(self.input_embeddings(ids), mask).float()  # [b, T, H]
                weights = mask.unsqueeze(-1).float()  # [b, T, 1]
                pooled[chunk] = (hidden * weights).sum(1) / weights.sum(1)  # [b, H]
            return pooled
        finally:
            self.train(was_training)

    def digest(self) -> str:
        """A fingerprint of the frozen language model (family, vocabulary, and each frozen weight's name, shape,
        dtype and first and last values): a checkpoint stores it, so that loading it on another backbone is an
        error, not a silent mismatch. The trainable weights are in the checkpoint itself."""
        digest = hashlib.sha256(f"{self.family}|{len(self.tokenizer)}|{self.hidden_size}".encode())
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                continue
            flat = param.detach().reshape(-1)
            ends = torch.cat([flat[:16], flat[-16:]]).float().cpu().numpy().tobytes()
            digest.update(f"{name}|{tuple(param.shape)}|{param.dtype}|".encode() + ends)
        return digest.hexdigest()[:16]


def build_backbone(
    hf_model: nn.Module,
    tokenizer,
    settings: BackboneSettings | None = None,
    added_tokens: Sequence[str] = (),
    family: str | None = None,
) -> Backbone:
    """Wrap an already-built ``transformers`` model (without or with its head) as a :class:`Backbone`.

    ``settings``' tuning, LoRA and layer keys apply (its path and dtype are :func:`load_backbone`'s); ``family``
    overrides the detection from ``hf_model.config``. The tokenizer is modified in place (pad token, task
    tokens). See :func:`load_backbone` for the other arguments.
    """
    settings = settings or BackboneSettings()
    family = model_family(hf_model.config, family)
    model = prepare_model(hf_model, family, settings)
    added_token_ids = prepare_tokenizer(tokenizer, added_tokens)
    backbone = Backbone(model, tokenizer, family, hf_model.config.hidden_size, added_token_ids)
    count = count_parameters(backbone)
    logger.info(
        "GALRec backbone %s: family %s, %s layers, hidden size %d, tuning %s, %d of %d parameters trainable",
        type(hf_model).__name__,
        family,
        getattr(model.config, "num_hidden_layers", "?"),
        backbone.hidden_size,
        settings.tuning,
        count.trainable,
        count.total,
    )
    return backbone


def load_backbone(
    settings: BackboneSettings | None = None, added_tokens: Sequence[str] = (), family: str | None = None
) -> Backbone:
    """Load a Hugging Face model and its tokenizer and wrap them as a :class:`Backbone`.

    Args:
        settings: the ``llm_*`` keys (:class:`recbole_galrec.settings.BackboneSettings`; ``None``: the defaults):
            ``path`` a local model folder or a hub id (downloaded unless Hugging Face's offline switch
            ``HF_HUB_OFFLINE`` is on; then it must be in the local cache; ``None``: the offline default
            all-MiniLM-L6-v2, :func:`default_backbone_path`); ``tuning`` ``lora`` (only LoRA weights train),
            ``full`` (everything trains) or ``frozen`` (nothing of the HF model trains; the task-token
            embeddings train in every mode); LoRA rank, scaling, dropout and target modules (``None``:
            BERT-like ``query``/``value``, T5 ``q``/``v``, Llama/Qwen/Mistral ``q_proj``/``v_proj``, GPT-2
            ``c_attn``); ``num_layers`` (keep only the first N transformer layers; ``None``: all); ``dtype`` of
            the HF model's weights.
        added_tokens: task tokens (e.g. ``["[GAL_USER]", "[GAL_PRED]"]``) with their own trainable embeddings.
        family: overrides the family detected from the config (one of :data:`FAMILIES`).

    Raises:
        ConfigError: for an unusable path or an unknown/out-of-range setting, naming the config key.
    """
    settings = settings or BackboneSettings()
    path, local_only = resolve_path(settings.path)
    from transformers import AutoConfig, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=local_only)
        family = model_family(config, family)
        hf_model = load_pretrained(path, family, config, TORCH_DTYPES[settings.dtype], local_only)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_only)
    except (OSError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise load_error(path, local_only, err) from err
    return build_backbone(hf_model, tokenizer, settings, added_tokens=added_tokens, family=family)
