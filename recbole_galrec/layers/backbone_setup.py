"""Shaping a loaded Hugging Face model and its tokenizer into a backbone's parts.

* the model family (``encoder``, ``encoder-decoder`` or ``decoder``) is read from the HF config; an
  encoder-decoder model keeps its encoder only and a decoder model is used without its LM head;
* ``num_layers`` keeps only the first transformer layers;
* the tuning mode sets what trains: LoRA adapters (``lora``), the whole model (``full``) or nothing
  (``frozen``);
* task tokens (e.g. ``[GAL_USER]``) are registered in the tokenizer as special tokens, and a tokenizer without
  a pad token pads with its eos (or unk, or bos) token.
"""

from collections.abc import Sequence

import torch
from torch import nn

from recbole_galrec.errors import ConfigError
from recbole_galrec.settings import BackboneSettings, check_choice

FAMILIES = ("encoder", "encoder-decoder", "decoder")

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


def model_family(config, family: str | None = None) -> str:
    """``family`` when given (it must be one of :data:`FAMILIES`), else the family read from an HF config:
    ``encoder-decoder`` (T5, BART), ``decoder`` (causal LMs) or ``encoder`` (BERT-like)."""
    if family is None:
        family = _detect_family(config)
    check_choice("llm_family", family, FAMILIES)
    return family


def _detect_family(config) -> str:
    if getattr(config, "is_encoder_decoder", False) or config.model_type in _ENCODER_DECODER_MODEL_TYPES:
        return "encoder-decoder"
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return "decoder"
    if config.model_type in _DECODER_MODEL_TYPES:
        return "decoder"
    return "encoder"


def load_pretrained(path: str, family: str, config, dtype: torch.dtype, local_only: bool = True) -> nn.Module:
    """The HF model without heads; an encoder-decoder model loads (or keeps) its encoder only."""
    import transformers

    cls_name = _ENCODER_ONLY_CLASSES.get(config.model_type) if family == "encoder-decoder" else None
    cls = getattr(transformers, cls_name) if cls_name else transformers.AutoModel
    return cls.from_pretrained(path, config=config, dtype=dtype, local_files_only=local_only)


def prepare_model(hf_model: nn.Module, family: str, settings: BackboneSettings) -> nn.Module:
    """The module of ``hf_model`` that runs (without head and pooler), truncated to ``settings.num_layers``,
    with what trains set by ``settings.tuning`` (LoRA adapters injected for ``lora``)."""
    model = _without_head(hf_model, family)
    _drop_pooler(model)
    if settings.num_layers is not None:
        _truncate_layers(model, settings.num_layers, (hf_model.config, model.config))  # the same object unless T5
    return _apply_tuning(model, settings)


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
    """Keep the first ``num_layers`` blocks and update the configs' layer count. The upper bound is the
    model's own layer count, which settings cannot know."""
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


def prepare_tokenizer(tokenizer, added_tokens: Sequence[str]) -> dict[str, int]:
    """Give ``tokenizer`` a pad token if it has none and register the task tokens; return their ids."""
    _ensure_pad_token(tokenizer)
    return _register_added_tokens(tokenizer, added_tokens)


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
