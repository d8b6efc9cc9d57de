"""External embeddings: training, token alignment, cache, training-only histories, checkpoints, errors."""

import logging
import os
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from recbole_galrec import external
from recbole_galrec.config import build_config
from recbole_galrec.data import create_dataset
from recbole_galrec.errors import ConfigError
from recbole_galrec.model import encoders
from recbole_galrec.settings import ExternalSettings

TINY_EXTERNAL = {
    "SASRec": {
        "MAX_ITEM_LIST_LENGTH": 10,
        "hidden_size": 16,
        "inner_size": 32,
        "n_layers": 1,
        "train_batch_size": 1024,
    },
    "LightGCN": {"embedding_size": 16, "n_layers": 1, "train_batch_size": 4096},
}


def galrec_config(checkpoint_dir, **extra):
    # Users with at most 40 ratings (305 of 943, 8,390 ratings) keep each training epoch around a second;
    # the filter is a dataset argument, so the external runs must apply it too.
    settings = {
        "user_inter_num_interval": "[0,40]",
        "checkpoint_dir": str(checkpoint_dir),
        "show_progress": False,
        "MAX_ITEM_LIST_LENGTH": 10,
        "external_epochs": 1,
        "external_config": TINY_EXTERNAL,
        **extra,
    }
    return build_config("SASRec", "ml-100k", config_dict=settings)


def external_settings(config) -> ExternalSettings:
    """The external keys of a config, as a GALRec run reads them (its settings' ``external``)."""
    given = {
        "models": config["external_models"],
        "checkpoints": config["external_checkpoints"],
        "epochs": config["external_epochs"],
        "stopping_step": config["external_stopping_step"],
        "overrides": config["external_config"],
    }
    return ExternalSettings(**{key: value for key, value in given.items() if value is not None})


def load(config, dataset):
    return external.load_external_embeddings(config, external_settings(config), dataset)


def cache_of(config, name):
    return external.cache_file(config, external_settings(config), name)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train both external models once (1 epoch each), recording each extractor's model and train split."""
    root = tmp_path_factory.mktemp("external")
    captured = {}

    def spy(name, extract):
        def wrapper(model, train_data, batch_size):
            captured[name] = (model, train_data)
            return extract(model, train_data, batch_size)

        return wrapper

    threads = torch.get_num_threads()
    # One thread: on 2 cores shared with other work, torch's two threads make a SASRec epoch ~10x slower.
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(root)
            for name, extract in list(external.EXTRACTORS.items()):
                mp.setitem(external.EXTRACTORS, name, spy(name, extract))
            config = galrec_config(root / "saved")
            dataset = create_dataset(config)
            result = {e.name: e for e in load(config, dataset)}
    finally:
        torch.set_num_threads(threads)
    return SimpleNamespace(root=root, config=config, dataset=dataset, result=result, captured=captured)


@pytest.fixture
def no_training(monkeypatch):
    """Any attempt to build or train an external model fails the test."""

    def fail(*args, **kwargs):
        raise AssertionError("an external model was built although its cache exists")

    monkeypatch.setattr(external, "train_external_model", fail)
    monkeypatch.setattr(external, "model_from_checkpoint", fail)


def token_rows(dataset, field, tokens):
    return [dataset.field2token_id[field][t] for t in tokens]


@pytest.mark.slow
def test_shapes_dtype_and_padding_row(trained):
    ds = trained.dataset
    assert [e.name for e in trained.result.values()] == ["SASRec", "LightGCN"]
    for emb in trained.result.values():
        assert emb.user.shape == (ds.user_num, 16) and emb.item.shape == (ds.item_num, 16)
        assert emb.user.dtype == emb.item.dtype == torch.float32
        assert not emb.user[0].any() and not emb.item[0].any()
        # every real user and item has a vector (each user has >= 20 ratings)
        assert emb.user[1:].abs().sum(1).gt(0).all() and emb.item[1:].abs().sum(1).gt(0).all()


@pytest.mark.slow
def test_rows_match_the_external_models_own_tables_by_token(trained):
    ds = trained.dataset
    users = list(ds.field2id_token[ds.uid_field][[1, 100, -1]])
    items = list(ds.field2id_token[ds.iid_field][[1, 500, -1]])
    gcn, gcn_train = trained.captured["LightGCN"]
    with torch.no_grad():
        gcn_user, gcn_item = gcn.forward()
    ext = gcn_train._dataset
    result = trained.result["LightGCN"]
    for galrec_row, ext_row in zip(
        token_rows(ds, ds.uid_field, users), token_rows(ext, ext.uid_field, users), strict=True
    ):
        assert torch.allclose(result.user[galrec_row], gcn_user[ext_row])
    for galrec_row, ext_row in zip(
        token_rows(ds, ds.iid_field, items), token_rows(ext, ext.iid_field, items), strict=True
    ):
        assert torch.allclose(result.item[galrec_row], gcn_item[ext_row])

    sasrec, sasrec_train = trained.captured["SASRec"]
    ext = sasrec_train._dataset
    for galrec_row, ext_row in zip(
        token_rows(ds, ds.iid_field, items), token_rows(ext, ext.iid_field, items), strict=True
    ):
        assert torch.equal(trained.result["SASRec"].item[galrec_row], sasrec.item_embedding.weight[ext_row])


@pytest.mark.slow
def test_alignment_follows_tokens_in_a_differently_numbered_dataset(trained, no_training, caplog):
    """A dataset whose ids are shuffled, with tokens missing and one unknown, gets each token's vector."""
    ds = trained.dataset
    rng = np.random.default_rng(0)
    field2id_token = {}
    for field in (ds.uid_field, ds.iid_field):
        tokens = list(ds.field2id_token[field][1:])
        kept = [tokens[i] for i in rng.permutation(len(tokens))][5:]  # drop 5 tokens
        field2id_token[field] = np.array(["[PAD]", *kept, "no-such-token"])
    other = SimpleNamespace(
        uid_field=ds.uid_field,
        iid_field=ds.iid_field,
        field2id_token=field2id_token,
        field2token_id={f: {t: i for i, t in enumerate(v)} for f, v in field2id_token.items()},
        user_num=len(field2id_token[ds.uid_field]),
        item_num=len(field2id_token[ds.iid_field]),
    )
    with caplog.at_level(logging.WARNING, logger=external.__name__):
        result = {e.name: e for e in load(trained.config, other)}
    for name, emb in result.items():
        reference = trained.result[name]
        for field, table, ref_table in (
            (ds.uid_field, emb.user, reference.user),
            (ds.iid_field, emb.item, reference.item),
        ):
            tokens = field2id_token[field]
            assert table.shape[0] == len(tokens)
            assert not table[0].any() and not table[-1].any()  # padding and the unknown token stay zero
            ref_rows = token_rows(ds, field, tokens[1:-1])
            assert torch.equal(table[1:-1], ref_table[ref_rows])
    messages = [r.getMessage() for r in caplog.records]
    assert any(re.search(r"1 of \d+ users have no SASRec vector", m) for m in messages)
    assert any("5 SASRec items are not in this dataset" in m for m in messages)


@pytest.mark.slow
def test_second_call_reuses_the_cache_and_reseeds(trained, no_training, caplog):
    from recbole.utils import init_seed

    config = trained.config
    for name in ("SASRec", "LightGCN"):
        path = cache_of(config, name)
        assert re.fullmatch(rf"ml-100k-{name}-[0-9a-f]{{12}}\.pt", os.path.basename(path))
        assert os.path.dirname(path) == os.path.join(config["checkpoint_dir"], "external")
        payload = torch.load(path, weights_only=True)  # plain tensors, lists and dicts only
        assert payload["name"] == name and payload["config"]["epochs"] == 1
        assert len(payload["item_tokens"]) == payload["item"].shape[0] == trained.dataset.item_num - 1
        assert set(payload["valid_result"]) >= {"ndcg@10"}
    with caplog.at_level(logging.INFO, logger=external.__name__):
        again = load(config, trained.dataset)
    after = torch.rand(3)
    assert sum("reusing" in r.getMessage() for r in caplog.records) == 2
    for emb in again:
        assert torch.equal(emb.user, trained.result[emb.name].user)
        assert torch.equal(emb.item, trained.result[emb.name].item)
        first = trained.result[emb.name].encoder
        kind = encoders.SASRecUserEncoder if emb.name == "SASRec" else encoders.HistoryMeanEncoder
        assert isinstance(emb.encoder, kind) and isinstance(first, kind)
        saved, loaded = first.state_dict(), emb.encoder.state_dict()
        assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
        assert torch.equal(first.item_table, emb.encoder.item_table)
    init_seed(config["seed"], config["reproducibility"])
    assert torch.equal(after, torch.rand(3))


@pytest.mark.slow
def test_sasrec_user_history_is_the_training_history_only(trained):
    """A user's history ends with the third-to-last interaction: never the validation or test item."""
    model, train_data = trained.captured["SASRec"]
    ext = train_data._dataset
    max_len = model.max_seq_length
    item_seq, item_seq_len = external.padded_training_histories(ext, max_len)

    raw = pd.read_csv(
        os.path.join(trained.config["data_path"], "ml-100k.inter"), sep="\t", dtype=str, usecols=[0, 1, 3]
    )
    raw.columns = ["user", "item", "timestamp"]
    raw["timestamp"] = raw["timestamp"].astype(np.int64)
    raw = raw.sort_values("timestamp", kind="stable")
    # Users whose last three interactions are at least 10 s apart from each other and from the earlier ones:
    # their order does not depend on how ties are broken nor on RecBole's rounding of timestamps (min-max
    # normalised, held as float32: about 1 s apart at ml-100k's time span).
    users = []
    for user in sorted(ext.field2id_token[ext.uid_field][1:], key=int):
        times = raw.loc[raw["user"] == user, "timestamp"].to_numpy()
        if np.diff(times[-4:]).min() >= 10:
            users.append(user)
        if len(users) == 20:
            break
    assert len(users) == 20

    item_tokens = ext.field2id_token[ext.iid_field]
    rows = token_rows(ext, ext.uid_field, users)
    for user, row in zip(users, rows, strict=True):
        items = raw.loc[raw["user"] == user, "item"].tolist()
        history = [item_tokens[i] for i in item_seq[row, : item_seq_len[row]].tolist()]
        assert history[-1] == items[-3]
        assert items[-2] not in history and items[-1] not in history  # validation, test
        assert len(history) == min(max_len, len(items) - 2) and set(history) <= set(items[:-2])

    # The returned user vector is SASRec's representation of exactly that history.
    model.eval()
    with torch.no_grad():
        representation = model.forward(item_seq[rows], item_seq_len[rows])
    galrec_rows = token_rows(trained.dataset, trained.dataset.uid_field, users)
    assert torch.allclose(trained.result["SASRec"].user[galrec_rows], representation, atol=1e-5)


@pytest.mark.slow
def test_sasrec_encoder_computes_sasrec_on_any_history(trained):
    """The cached encoder, on the GALRec dataset's ids, gives what the trained SASRec gives on its own ids, for
    histories that are not training histories too (here: random ones, some longer than SASRec reads)."""
    model, train_data = trained.captured["SASRec"]
    ext, ds = train_data._dataset, trained.dataset
    encoder = trained.result["SASRec"].encoder
    assert encoder is not None and not any(p.requires_grad for p in encoder.parameters())
    max_len = model.max_seq_length
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, max_len + 6, (32,), generator=generator)  # [B], up to 5 past max_len
    ext_seq = torch.randint(1, ext.item_num, (32, max_len + 5), generator=generator)
    ext_seq = ext_seq * (torch.arange(max_len + 5)[None, :] < lengths[:, None])  # left-aligned, 0-padded
    # the same items in the GALRec dataset's numbering
    tokens = ext.field2id_token[ext.iid_field]
    to_galrec = torch.tensor([0] + token_rows(ds, ds.iid_field, [str(t) for t in tokens[1:]]))
    galrec_seq = to_galrec[ext_seq]

    model.eval()
    with torch.no_grad():
        tail = encoders.recent_items(ext_seq, lengths, max_len)  # SASRec reads the last max_len items
        expected = model.forward(tail, lengths.clamp(max=max_len))
    encoder.train()  # stays in evaluation mode: no dropout
    assert not encoder.training
    assert torch.allclose(encoder(galrec_seq, lengths), expected, atol=1e-5)
    assert not encoder(galrec_seq[:2] * 0, torch.zeros(2, dtype=torch.long)).any()  # no history: zero


def recbole_checkpoint(trained, name):
    """The external run's best checkpoint (beside it, the one written after its last epoch)."""
    (path,) = [p for p in (trained.root / "saved").glob(f"{name}-*.pth") if not p.stem.endswith("-last")]
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["LightGCN", "SASRec"])
def test_recbole_checkpoint_gives_the_trained_vectors(trained, name, tmp_path, monkeypatch):
    """No overrides and another history length here: the model is rebuilt as the checkpoint was trained."""
    monkeypatch.chdir(tmp_path)
    config = galrec_config(
        tmp_path / "saved",
        MAX_ITEM_LIST_LENGTH=20,
        external_models=[name],
        external_config={},
        external_checkpoints={name: recbole_checkpoint(trained, name)},
    )
    monkeypatch.setattr(external, "train_external_model", lambda *a, **k: pytest.fail("trained"))
    (emb,) = load(config, trained.dataset)
    assert emb.name == name
    assert torch.allclose(emb.user, trained.result[name].user, atol=1e-6)
    assert torch.allclose(emb.item, trained.result[name].item, atol=1e-6)
    assert os.path.isfile(cache_of(config, name))
    assert cache_of(config, name) != cache_of(galrec_config(tmp_path / "saved"), name)


@pytest.mark.slow
def test_checkpoint_of_other_data_is_a_config_error(trained, workdir):
    config = galrec_config(
        workdir / "saved",
        user_inter_num_interval="[0,50]",
        external_models=["SASRec", "LightGCN"],
        external_checkpoints={"LightGCN": recbole_checkpoint(trained, "LightGCN")},
    )
    with pytest.raises(ConfigError, match=r"external_checkpoints\[LightGCN\].*other data.*user_inter_num_interval"):
        load(config, None)


def test_cache_key_changes_with_epochs_and_overrides(workdir):
    base = cache_of(galrec_config(workdir / "saved"), "SASRec")
    assert base == cache_of(galrec_config(workdir / "saved"), "SASRec")
    assert base != cache_of(galrec_config(workdir / "saved", external_epochs=2), "SASRec")
    wider = {**TINY_EXTERNAL, "SASRec": {**TINY_EXTERNAL["SASRec"], "hidden_size": 32}}
    assert base != cache_of(galrec_config(workdir / "saved", external_config=wider), "SASRec")
    # runtime settings do not invalidate the cache
    assert base == cache_of(galrec_config(workdir / "saved", show_progress=True), "SASRec")


def test_unknown_model_name_is_a_config_error(workdir):
    config = galrec_config(workdir / "saved", external_models=["SASRec", "Pop"])
    with pytest.raises(ConfigError, match=r"no extractor for 'Pop'.*Supported external models: 'SASRec', 'LightGCN'"):
        load(config, None)


def test_missing_checkpoint_is_a_config_error(workdir):
    missing = workdir / "missing.pth"
    config = galrec_config(workdir / "saved", external_checkpoints={"SASRec": str(missing)})
    with pytest.raises(ConfigError, match=rf"external_checkpoints\[SASRec\]: checkpoint '{re.escape(str(missing))}'"):
        load(config, None)


def test_empty_model_list_returns_nothing(workdir):
    assert load(galrec_config(workdir / "saved", external_models=[]), None) == []
