"""Bad atomic files and misspelt keys: each file is read as the tab-separated text it is, or the run stops before
any training with one message naming the file, the line and what to do (exit status 2, no traceback); a misspelt
RecBole key is named in a warning with the nearest known key.

Every dataset is a few lines written into tmp_path; the model is Pop or no model at all (the dataset only).
"""

import logging

import pytest

from recbole_galrec import recbole_keys
from recbole_galrec.cli import main as cli_main
from recbole_galrec.config import build_config
from recbole_galrec.data import create_dataset
from recbole_galrec.errors import ConfigError, DataError

INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float"
ITEM_HEADER = "item_id:token\ttitle:token_seq\tprice:float"


def inter_rows(n_users: int = 6, length: int = 5) -> list[str]:
    """One interaction per user and item, timestamps rising, no row repeated."""
    rows, t = [], 0
    for user in range(1, n_users + 1):
        for k in range(length):
            t += 1
            rows.append(f"{user}\t{(user + k) % 10 + 1}\t{t}")
    return rows


def item_rows() -> list[str]:
    return [f"{i}\tthing number {i}\t{i}.5" for i in range(1, 11)]


def write(root, name: str, inter: list[str] | None = None, item: list[str] | None = None, raw: dict | None = None):
    """``root/name/name.inter`` and ``.item`` (header then rows, each line ending in a newline); ``raw``: suffix ->
    the file's exact bytes or text, written as given."""
    folder = root / name
    folder.mkdir(parents=True)
    for suffix, lines in (("inter", inter), ("item", item)):
        if lines is not None:
            (folder / f"{name}.{suffix}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for suffix, content in (raw or {}).items():
        path = folder / f"{name}.{suffix}"
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content, encoding="utf-8")
    return folder


WITH_ITEMS = {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "title", "price"]}


def dataset(root, name, model="Pop", **extra):
    config_dict = {"data_path": str(root), "show_progress": False, **extra}
    return create_dataset(build_config(model, name, config_dict=config_dict))


def cli(root, name, capsys, *args) -> str:
    """Run the command line on the dataset with Pop; assert it stops with status 2 and no traceback; its stderr."""
    fixed = ["--model=Pop", f"--dataset={name}", f"--data_path={root}", "--epochs=1", "--show_progress=False"]
    status = cli_main([*fixed, "--topk=[5]", "--valid_metric=NDCG@5", *args])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    return err


def tokens(data, field: str, item: str) -> list[str]:
    """The tokens of an item's token_seq field, as RecBole holds them."""
    row = data.item_feat[field][data.token2id(data.iid_field, item)]
    vocabulary = data.field2id_token[field]
    return [str(vocabulary[int(i)]) for i in row if int(i) != 0]


# ------------------------------------------------------------------ 1. tabs and quotes
def test_a_tab_inside_an_item_title_names_the_file_and_line(workdir, capsys):
    items = item_rows()
    items[4] = "5\tthing\tnumber five\t5.5"  # line 6 of the file
    write(workdir, "tabbed", [INTER_HEADER, *inter_rows()], [ITEM_HEADER, *items])
    err = cli(workdir, "tabbed", capsys, "--load_col={inter: [user_id, item_id, timestamp], item: [item_id, title]}")
    assert "tabbed.item' line 6: 4 fields, the header has 3 (a tab inside a value?" in err
    assert "without quoting" in err


def test_a_row_with_a_missing_field_names_the_file_and_line(workdir, capsys):
    rows = inter_rows()
    rows[2] = "1\t4"  # line 4
    write(workdir, "short_row", [INTER_HEADER, *rows])
    err = cli(workdir, "short_row", capsys)
    assert "short_row.inter' line 4: 2 fields, the header has 3" in err


def test_values_starting_with_a_double_quote_are_read_as_text(workdir):
    """No quoting: a leading '"' is a character of the value (closed or not), never the start of a quoted field."""
    items = item_rows()
    items[1] = '2\t"weird al" polka\t2.5'
    items[2] = '3\t"12 inch remix\t3.5'  # never closed
    items[3] = '4\tsay "hi"\t4.5'
    write(workdir, "quoted", [INTER_HEADER, *inter_rows()], [ITEM_HEADER, *items])
    data = dataset(workdir, "quoted", load_col=WITH_ITEMS)
    assert data.inter_num == 30 and data.item_num == 11
    assert tokens(data, "title", "2") == ['"weird', 'al"', "polka"]
    assert tokens(data, "title", "3") == ['"12', "inch", "remix"]
    assert tokens(data, "title", "4") == ["say", '"hi"']
    assert tokens(data, "title", "5") == ["thing", "number", "5"]


# ------------------------------------------------------------------ 2. duplicates and missing timestamps
def duplicated() -> list[str]:
    rows = inter_rows()
    return [*rows[:5], rows[4], *rows[5:12], rows[0], rows[0], *rows[12:]]  # rows 5 and 1 repeated (3 rows)


def test_duplicate_interactions_stop_the_run_by_default(workdir, capsys):
    write(workdir, "dups", [INTER_HEADER, *duplicated()])
    err = cli(workdir, "dups", capsys)
    assert "dups.inter' holds 3 duplicate interactions" in err
    assert "line 7 repeats line 6" in err and "line 15 repeats line 2" in err and "line 16 repeats line 2" in err
    assert "duplicate_interactions: drop" in err


def test_duplicate_interactions_are_dropped_with_a_warning_when_asked(workdir, caplog):
    write(workdir, "dups", [INTER_HEADER, *duplicated()])
    caplog.set_level(logging.INFO)
    data = dataset(workdir, "dups", duplicate_interactions="drop")
    assert data.inter_num == 30
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("dups.inter' holds 3 duplicate interactions" in m and "dropped" in m for m in warnings), warnings


def test_the_same_item_at_another_time_is_not_a_duplicate(workdir):
    rows = inter_rows()
    write(workdir, "again", [INTER_HEADER, *rows, "1\t2\t1000", "1\t2\t1001"])
    assert dataset(workdir, "again").inter_num == 32


def test_a_bad_duplicate_interactions_value_is_refused(workdir):
    with pytest.raises(ConfigError, match=r"duplicate_interactions must be one of error, drop .*, got 'keep'"):
        build_config("Pop", "ml-100k", config_dict={"duplicate_interactions": "keep"})


def test_missing_timestamps_are_an_error(workdir, capsys):
    rows = inter_rows()
    rows[3] = "1\t5\t"
    rows[7] = "2\t8\t"
    write(workdir, "notime", [INTER_HEADER, *rows])
    err = cli(workdir, "notime", capsys)
    assert "notime.inter': 2 rows have no timestamp (lines 5, 9)" in err


# ------------------------------------------------------------------ 3. columns, numbers, empty files, BOM
def test_a_load_col_column_missing_from_the_header_is_named(workdir, capsys):
    write(workdir, "nocol", ["user_id:token\titem_id:token", *(r.rsplit("\t", 1)[0] for r in inter_rows())])
    err = cli(workdir, "nocol", capsys)
    assert "nocol.inter' has no column 'timestamp'" in err and "load_col" in err


def test_a_non_numeric_timestamp_names_the_file_line_and_value(workdir, capsys):
    rows = inter_rows()
    rows[5] = "2\t3\tyesterday"
    write(workdir, "wordtime", [INTER_HEADER, *rows])
    err = cli(workdir, "wordtime", capsys)
    assert "wordtime.inter' line 7: timestamp 'yesterday' is not a number" in err


def test_a_header_only_file_is_named(workdir, capsys):
    write(workdir, "headonly", [INTER_HEADER])
    err = cli(workdir, "headonly", capsys)
    assert "headonly.inter' has a header but no rows" in err


def test_an_empty_file_is_named(workdir, capsys):
    write(workdir, "empty", raw={"inter": ""})
    err = cli(workdir, "empty", capsys)
    assert "empty.inter' is empty" in err


def test_a_header_with_an_unknown_type_is_named(workdir, capsys):
    write(workdir, "badtype", ["user_id:token\titem_id:token\ttimestamp:int", *inter_rows()])
    err = cli(workdir, "badtype", capsys)
    assert "badtype.inter'" in err and "timestamp:int" in err and "token_seq" in err


def test_a_byte_order_mark_is_read_away(workdir):
    text = "\n".join([INTER_HEADER, *inter_rows()]) + "\n"
    items = "\n".join([ITEM_HEADER, *item_rows()]) + "\n"
    write(workdir, "bom", raw={"inter": b"\xef\xbb\xbf" + text.encode(), "item": b"\xef\xbb\xbf" + items.encode()})
    data = dataset(workdir, "bom", load_col=WITH_ITEMS)
    assert data.inter_num == 30 and data.user_num == 7 and data.item_num == 11
    assert tokens(data, "title", "5") == ["thing", "number", "5"]


def test_a_file_that_is_not_utf8_names_the_line(workdir, capsys):
    rows = [INTER_HEADER, *inter_rows()]
    content = ("\n".join(rows[:4]) + "\n").encode() + "7\tcaf\xe9\t99\n".encode("latin-1")
    write(workdir, "latin", raw={"inter": content + ("\n".join(rows[4:]) + "\n").encode()})
    err = cli(workdir, "latin", capsys)
    assert "latin.inter' line 5 is not utf-8 text" in err and "encoding" in err


def test_a_knowledge_model_without_kg_in_load_col_is_told_to_add_it(workdir):
    with pytest.raises(ConfigError, match=r"CKE is a knowledge-aware model .* no 'kg' and no 'link' entry"):
        create_dataset(build_config("CKE", "ml-100k"))


def test_a_kg_file_is_checked_as_recbole_reads_it(workdir):
    """Files the check before loading does not cover (.kg, .link, downloads) are checked as RecBole reads them."""
    kg = ["head_id:token\trelation_id:token\ttail_id:token", *(f"e{i}\tr\te{i + 1}" for i in range(1, 10))]
    kg[4] = "e4\tr\te5\textra"
    link = ["item_id:token\tentity_id:token", *(f"{i}\te{i}" for i in range(1, 11))]
    raw = {"kg": "\n".join(kg) + "\n", "link": "\n".join(link) + "\n"}
    write(workdir, "kgtab", [INTER_HEADER, *inter_rows()], raw=raw)
    with pytest.raises(DataError, match=r"kgtab\.kg' line 5: 4 fields, the header has 3"):
        dataset(workdir, "kgtab", model="CKE", load_col=None)


def test_a_clean_file_trains(workdir):
    from recbole_galrec.quick_start import run_recbole_galrec

    write(workdir, "clean", [INTER_HEADER, *inter_rows()], [ITEM_HEADER, *item_rows()])
    config = {"data_path": str(workdir), "epochs": 1, "show_progress": False, "topk": [5], "valid_metric": "NDCG@5"}
    result = run_recbole_galrec("Pop", "clean", config_dict={**config, "load_col": WITH_ITEMS}, saved=False)
    assert result.epochs_run == 1 and result.dataset_statistics["interactions"] == 30


# ------------------------------------------------------------------ 4. misspelt keys
@pytest.fixture(autouse=True)
def fresh_key_warnings(monkeypatch):
    """Unknown keys not warned about yet in this process (each is named once per process)."""
    monkeypatch.setattr(recbole_keys, "_keys_warned", set(), raising=False)


def _key_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "config key" in r.getMessage()]


def test_a_misspelt_recbole_key_is_named_with_the_nearest_key(workdir, caplog, tmp_path):
    caplog.set_level(logging.WARNING)
    config_file = tmp_path / "my.yaml"
    config_file.write_text("train_bach_size: 512\n", encoding="utf-8")
    build_config("SASRec", "ml-100k", config_file_list=[str(config_file)], config_dict={"lerning_rate": 0.01})
    warnings = _key_warnings(caplog)
    assert any("lerning_rate" in m and "did you mean learning_rate?" in m for m in warnings), warnings
    assert any("train_bach_size" in m and "did you mean train_batch_size?" in m for m in warnings), warnings


@pytest.mark.parametrize(
    ("model", "keys"),
    [
        ("SASRec", {"n_layers": 1, "hidden_dropout_prob": 0.3, "loss_type": "CE", "duplicate_interactions": "drop"}),
        ("LightGCN", {"reg_weight": 1e-4, "n_layers": 2, "embedding_size": 32}),
        ("GRU4Rec", {"dropout_prob": 0.2, "num_layers": 1}),
        ("Pop", {"rm_dup_inter": "first", "field_separator": "\t", "encoding": "utf-8", "unused_col": None}),
        ("Pop", {"llm_path": "x", "prompt_history_len": 3, "nproc": 1, "external_models": [], "seq_len": None}),
        ("SASRec", {"user_inter_num_interval": "[5,inf)", "eval_args": {"order": "TO"}, "gpu_id": "0"}),
    ],
)
def test_correct_keys_of_any_model_give_no_warning(workdir, caplog, model, keys):
    caplog.set_level(logging.WARNING)
    build_config(model, "ml-100k", config_dict=keys)
    assert _key_warnings(caplog) == []


def test_a_misspelt_key_is_named_when_the_run_stops_early(workdir, caplog, capsys):
    """The warning comes before the dataset is read: a run that stops on its data has given it already."""
    write(workdir, "headonly", [INTER_HEADER])
    caplog.set_level(logging.WARNING)
    cli(workdir, "headonly", capsys, "--lerning_rate=0.01")
    assert any("lerning_rate" in m for m in _key_warnings(caplog))


def test_errors_are_data_or_config_errors(workdir):
    write(workdir, "headonly", [INTER_HEADER])
    with pytest.raises(DataError, match="has a header but no rows"):
        dataset(workdir, "headonly")
