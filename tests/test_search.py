"""The validation-only search (recbole_galrec.benchmark.search): grid files, resuming, the table."""

import json

import pytest

from recbole_galrec.benchmark import search
from recbole_galrec.errors import ConfigError
from tests.conftest import TINY_SASREC


@pytest.mark.parametrize(
    "text, message",
    [
        ("configs: {}", "holds 'configs:'"),
        ("base: {epochs: 1}", "holds 'configs:'"),
        ("configs: {a: [1, 2]}", "'a' must be a mapping"),
        ("configs: {'a b': {}}", "must be letters, digits"),
        ("configs: [", "cannot read the grid file"),
    ],
)
def test_bad_grid_files_are_named(tmp_path, text, message):
    grid = tmp_path / "grid.yaml"
    grid.write_text(text)
    with pytest.raises(ConfigError, match=message):
        search.read_grid(grid)
    assert search.main(["--model=SASRec", "--dataset=ml-100k", f"--grid={grid}", f"--output={tmp_path / 'o'}"]) == 2


def test_an_unknown_only_name_and_a_file_as_output_stop_before_any_run(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("configs: {a: {}}")
    args = ["--model=SASRec", "--dataset=ml-100k", f"--grid={grid}"]
    assert search.main([*args, f"--output={tmp_path / 'o'}", "--only=b"]) == 2
    assert "does not have: b" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert search.main([*args, f"--output={tmp_path / 'file'}"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert search.main([*args, f"--output={tmp_path / 'o'}", "--jobs=0"]) == 2
    assert "--jobs must be >= 1" in capsys.readouterr().err
    assert search.main([*args, f"--output={tmp_path / 'o'}", "stray", "--epochs"]) == 2
    assert "--key=value settings for every run, got stray --epochs" in capsys.readouterr().err


@pytest.mark.slow
def test_a_search_runs_each_configuration_once_and_ranks_them_on_validation(workdir):
    base = {k: v for k, v in TINY_SASREC.items() if k != "show_progress"}
    grid = workdir / "grid.yaml"
    grid.write_text(json.dumps({"base": base, "configs": {"two-blocks": {"n_layers": 2}, "one-block": {}}}))
    args = ["--model=SASRec", "--dataset=ml-100k", f"--grid={grid}", "--output=out", "--seed=7", "--jobs=2"]
    assert search.main([*args, "--train_time_budget=600"]) == 0
    table = json.loads((workdir / "out" / "search.json").read_text())
    rows = table["rows"]
    assert [row["name"] for row in rows] == sorted(
        ("two-blocks", "one-block"), key=lambda n: -next(r["recbole"] for r in rows if r["name"] == n)
    )
    for row in rows:
        result = json.loads((workdir / "out" / f"{row['name']}.json").read_text())
        assert row["recbole"] == result["best_valid_result"]["ndcg@10"]
        assert row["viewed_filtered"] == result["valid_viewed_filtered"]["ndcg@10"] > row["recbole"]
    text = (workdir / "out" / "search.md").read_text()
    assert "two-blocks" in text and not any("test" in key for row in rows for key in row)  # test metrics unseen
    assert "--jobs" not in text and text.count("--train_time_budget=600") == 1  # the settings, not the pace
    for name in ("two-blocks", "one-block"):
        assert "train_time_budget = 600" in (workdir / "out" / f"{name}.log").read_text()
    before = (workdir / "out" / "one-block.json").stat().st_mtime
    assert search.main(args) == 0  # the same command again: nothing runs twice
    assert (workdir / "out" / "one-block.json").stat().st_mtime == before


def test_the_table_marks_runs_ended_by_their_time_budget_and_shows_no_machine_path(tmp_path, monkeypatch):
    from types import SimpleNamespace

    monkeypatch.chdir(tmp_path)
    args = SimpleNamespace(
        model="SASRec", dataset="d", seed=1, select="recbole", data_path="/data/sets",
        grid=str(tmp_path / "grids" / "g.yaml"), profile="cpu", overrides=["--train_time_budget=60"],
    )  # fmt: skip
    row = {"settings": {"epochs": 9}, "recbole": 0.05, "viewed_filtered": 0.06, "best_valid_epoch": 3}
    row |= {"epochs_run": 5, "max_epochs": 9, "seconds_per_epoch": 1.0, "train_seconds": 6.0}
    rows = [{**row, "name": "cut", "time_budget_spent": True}, {**row, "name": "whole", "time_budget_spent": False}]
    search.write_report(tmp_path, rows, args, {"epochs": 9})
    text = (tmp_path / "search.md").read_text()
    assert "| cut | (base) | 0.0500 | 0.0600 | 3 | 5 of 9 (time budget) |" in text
    assert "| whole | (base) | 0.0500 | 0.0600 | 3 | 5 of 9 |" in text
    assert "--grid=grids/g.yaml" in text and str(tmp_path) not in text and "/data/sets" not in text
