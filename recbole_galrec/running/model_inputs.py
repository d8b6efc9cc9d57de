"""What a model needs besides its config and data, prepared as a step of the run before the model is built.

GALRec needs its external models' tables (trained with RecBole through the one run path, or read from a
checkpoint or the cache: :mod:`recbole_galrec.external`), its language model, and each item's text vector
encoded once by that model (``item_text_mode: embedding``). :func:`prepare` computes them and attaches them
to the training split as ``galrec_inputs`` (a :class:`recbole_galrec.model.galrec.GALRecInputs`), which the
model's constructor takes; the constructor itself only builds layers. SASRecText needs its item table's start:
each item's text encoded by the frozen text encoder and projected to ``hidden_size``
(:func:`item_text_table`), attached as ``item_text_table`` and loaded into the built model by
:func:`recbole_galrec.running.steps.construct_model`. Other models need nothing.

The order matters for reproducibility: the external step reseeds when it ends (whether it trained or read
a cache), so the language model's fresh weights (LoRA, task tokens) start from the run's seed.
"""

import os
from logging import getLogger

import torch

from recbole_galrec.errors import ConfigError
from recbole_galrec.external import load_external_embeddings
from recbole_galrec.layers.backbone import check_source, load_backbone
from recbole_galrec.layers.backbone_source import load_error, resolve_path
from recbole_galrec.layers.prompt import task_tokens, tokenize_item_texts
from recbole_galrec.layers.text_encoder import check_text_encoder, encode_texts, load_text_encoder
from recbole_galrec.layers.text_projection import project_text_vectors
from recbole_galrec.model.galrec import GALRecInputs

logger = getLogger(__name__)

# A model folder written by save_pretrained holds one of these weight files and one of these tokenizer files.
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "tokenizer.model",
    "sentencepiece.bpe.model",
)


def check_inputs(config) -> None:
    """Check what :func:`prepare` will need before the run reads its data or trains an external model: GALRec's
    language model (``llm_path``) must be a model that can load (:func:`check_backbone`); so must SASRecText's
    text encoder, whose vectors must be at least ``hidden_size`` wide."""
    if config["model"] == "GALRec":
        check_backbone(config.settings.backbone)
    elif config["model"] == "SASRecText":
        check_backbone(config.settings.encoder)
        check_text_encoder(config.settings.encoder, config["hidden_size"])


def check_backbone(settings) -> None:
    """ConfigError, naming ``llm_path``, when the backbone of ``settings`` (a ``BackboneSettings``, or any settings
    with the ``path`` of a model folder or hub id, such as a ``TextEncoderSettings``) cannot load:
    a missing folder or an unusable hub id (:func:`recbole_galrec.layers.backbone.check_source`), or a folder
    without a model's configuration, weights or tokenizer."""
    check_source(settings)
    path, local_only = resolve_path(settings.path)
    if not os.path.isdir(path):
        return
    names = set(os.listdir(path))
    missing = []
    if "config.json" not in names:
        missing.append("config.json (the model's configuration)")
    if not names & set(_WEIGHT_FILES) and not any(name.endswith((".safetensors", ".bin.index.json")) for name in names):
        missing.append("weights (model.safetensors or pytorch_model.bin)")
    if not names & set(_TOKENIZER_FILES):
        missing.append("tokenizer files (tokenizer.json, tokenizer_config.json or vocab.txt)")
    if missing:
        raise ConfigError(
            f"llm_path '{path}' is a folder without a model: it holds no {', no '.join(missing)}. Set llm_path to "
            "a folder written by save_pretrained of a Hugging Face model and its tokenizer, to a hub id, or to ~ "
            "for the default backbone."
        )
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(path, local_files_only=local_only)
    except (OSError, ValueError) as err:
        raise load_error(path, local_only, err) from None


def prepare(config, train_data) -> None:
    """Attach what the model of ``config`` needs to the training split's dataset (nothing for a RecBole model)."""
    dataset = train_data._dataset
    if config["model"] == "GALRec":
        dataset.galrec_inputs = galrec_inputs(config, dataset)
    elif config["model"] == "SASRecText":
        dataset.item_text_table = item_text_table(config, dataset)


def item_text_table(config, dataset) -> torch.Tensor:
    """SASRecText's item table before training, ``[n_items, hidden_size]``: each item's text (``dataset``'s
    ``item_texts``) encoded by the frozen text encoder (``llm_path``, ``text_encoder_*``) on the run's device,
    then projected to ``hidden_size`` at the scale of SASRec's initialisation (``initializer_range``)."""
    vectors = encoder_text_vectors(config.settings.encoder, dataset.item_texts, config["device"])  # [n_items, D]
    table = project_text_vectors(vectors, config["hidden_size"], config["initializer_range"])  # [n_items, H]
    logger.info(
        f"item text table: {int(vectors.abs().sum(-1).gt(0).sum())} of {dataset.item_num - 1} items encoded into "
        f"{vectors.shape[1]} dimensions, projected to {table.shape[1]} (std {config['initializer_range']})"
    )
    return table


def galrec_inputs(config, dataset, external: list | None = None, item_text_vectors=None) -> GALRecInputs:
    """GALRec's external tables, backbone and item text vectors for ``dataset`` (a GALRec dataset's split).

    ``external``: the external models' tables (:class:`recbole_galrec.model.encoders.ExternalEmbeddings`)
    when already at hand (a checkpoint's); ``None``: :func:`recbole_galrec.external.load_external_embeddings`.
    ``item_text_vectors``: ``[n_items, H]`` when already at hand (a checkpoint's); ``None``: encoded here, by the
    backbone or (``item_text_source: encoder``) by the whole frozen text encoder as SASRecText's table is.
    """
    settings = config.settings
    check_backbone(settings.backbone)
    if external is None:
        external = load_external_embeddings(config, settings.external, dataset)
    logger.info(
        f"external embeddings: {[(e.name, tuple(e.user.shape[1:]), tuple(e.item.shape[1:])) for e in external]}"
    )
    tokens = task_tokens(settings.prompt_user_template, settings.prompt_item_template)
    backbone = load_backbone(settings.backbone, added_tokens=tokens)
    text_vectors = item_text_vectors
    if text_vectors is None and settings.item_text_mode == "embedding":
        if settings.item_text_source == "encoder":  # the whole frozen model, its own pooling and normalisation
            text_vectors = encoder_text_vectors(settings.encoder, dataset.item_texts, config["device"])
        else:
            text_vectors = encode_item_texts(
                backbone, dataset.item_texts, settings.item_text_len, settings.llm_batch_size, config["device"]
            )
    return GALRecInputs(backbone=backbone, external=list(external), item_text_vectors=text_vectors)


def encoder_text_vectors(settings, texts: list[str], device) -> torch.Tensor:
    """Each text's vector from the frozen text encoder of ``settings`` (a ``TextEncoderSettings``): ``[N, D]``
    float32 on the CPU. The encoder is loaded for this and let go after: training does not need its memory."""
    encoder = load_text_encoder(settings)
    return encode_texts(encoder, texts, settings.batch_size, device)


def encode_item_texts(backbone, texts: list[str], length: int, batch_size: int, device) -> torch.Tensor:
    """Each item's text encoded once by the backbone (mean of its last hidden states over the first ``length``
    tokens): ``[n_items, H]`` float32 on the CPU, zero for items without text."""
    ids, mask = tokenize_item_texts(backbone.tokenizer, texts, length)
    backbone.to(device)
    return backbone.encode_text(ids.to(device), mask.to(device), batch_size).float().cpu()
