"""The benchmark end to end on ml-100k (Pop and a tiny SASRec, one epoch, two seeds, two runs at once), its
resume, table, paired test and errors."""

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from recbole_galrec import benchmark
from recbole_galrec.benchmark import plan as planning
from recbole_galrec.benchmark import runner, store
from recbole_galrec.config import build_config
from recbole_galrec.errors import ConfigError
from recbole_galrec.running.per_user import PER_USER_METRICS, read_per_user
from tests.conftest import MACHINE_PATH, REPO_ROOT, TINY_SASREC, terminate_when_running

METRIC_KEYS = {f"{m}@{k}" for m in ("hit", "ndcg", "mrr") for k in (5, 10, 20)}
RUN_TYPES = {
    "model": str,
    "recbole_model": str,
    "seed": int,
    "status": str,
    "test": dict,
    "best_valid_score": float,
    "best_valid_epoch": int,
    "epochs_run": int,
    "seconds_per_epoch": float,
    "max_epochs": int,
    "stopped_early": bool,
    "train_samples_per_second": float,
    "time_to_best_seconds": float,
    "test_users": int,
    "users_scored_per_second": float,
    "jobs": int,
    "per_user": str,
    "checkpoint": str,
    "train_seconds": float,
    "test_seconds": float,
    "wall_seconds": float,
    "peak_rss_mib": float,
    "trainable_params": int,
    "total_params": int,
    "log": str,
}
SEEDS = [2020, 2021]
BENCH_ARGS = [
    "--dataset=ml-100k",
    "--models=Pop,SASRec",
    "--seeds=2020,2021",
    "--reference=SASRec",
    "--jobs=2",
    "--output=out",
    *[f"--{key}={value}" for key, value in TINY_SASREC.items()],
]


def run_benchmark_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "recbole_galrec.benchmark", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One real benchmark run, shared by the tests that read its outputs."""
    folder = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        proc = run_benchmark_cli(*BENCH_ARGS, cwd=folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder / "out", proc


def table_rows(markdown: str) -> dict[str, dict[str, str]]:
    """The markdown's first table as {model label: {column header: cell}}."""
    lines = markdown[markdown.index("\n|") + 1 :].split("\n\n", 1)[0].splitlines()
    headers = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = dict(zip(headers, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
        rows[cells["model"]] = cells
    return rows


def close_to_printed(cell: str, value: float) -> bool:
    """True if ``value`` rounds to the number printed in ``cell`` (the part before ' ± ' or ' (')."""
    printed = cell.split("±")[0].split("(")[0].strip().replace(",", "")
    decimals = len(printed.partition(".")[2])
    return abs(float(printed) - value) <= 0.5 * 10**-decimals + 1e-9


@pytest.mark.slow
def test_writes_json_markdown_and_chart(bench):
    out, proc = bench
    for name in ("ml-100k.json", "ml-100k.md", "ml-100k.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "ml-100k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "[1/4] Pop seed 2020: start" in proc.stderr
    assert re.search(r"\[4/4\] SASRec seed 2021: ok, ndcg@10 0\.\d{4}, [\d.]+ s", proc.stderr)
    # Progress on the terminal, per epoch: loss, validation score, time and time left.
    assert re.search(r"SASRec seed 2020: epoch 0 trained in [\d.]+ s \(train loss: [\d.]+\)", proc.stderr)
    assert re.search(r"SASRec seed 2020: epoch 0 valid score 0\.\d{4} .* at most 0\.0 min left", proc.stderr)


@pytest.mark.slow
def test_markdown_names_seeds_and_the_paired_test(bench):
    out, _ = bench
    markdown = (out / "ml-100k.md").read_text()
    rows = table_rows(markdown)
    assert rows["SASRec"]["seeds"] == rows["Pop"]["seeds"] == "2020, 2021"
    assert rows["SASRec"]["p vs SASRec"] == "–" and rows["SASRec"]["ndcg@10 vs SASRec (95% CI)"] == "–"
    results = json.loads((out / "ml-100k.json").read_text())
    pop = results["comparisons"]["models"]["Pop"]
    assert results["comparisons"]["reference"] == "SASRec" and pop["seeds"] == SEEDS and pop["users"] == 943
    for metric in PER_USER_METRICS:
        assert 0 <= pop[metric]["p_value"] <= 1
        low, high = pop[metric]["ci95"]
        assert low <= pop[metric]["relative_difference"] <= high
    p = pop["ndcg@10"]["p_value"]
    assert rows["Pop"]["p vs SASRec"] == ("< 0.0001" if p < 1e-4 else f"{p:.4f}")
    assert results["jobs"] == 2 and "Timings were taken with 2 runs at once" in markdown
    assert "- seeds: 2020, 2021" in markdown and "## Paired comparison with SASRec over test users" in markdown


@pytest.mark.slow
def test_per_user_metrics_agree_with_the_test_result(bench):
    """The per-user file of every run averages to the run's test metrics (rounded to 4 places by RecBole)."""
    out, _ = bench
    results = json.loads((out / "ml-100k.json").read_text())
    for run in results["runs"]:
        frame = read_per_user(out / run["per_user"])
        assert len(frame) == run["test_users"] == 943 and frame.index.is_unique
        assert set(frame.index) >= {"1", "943"}  # raw user ids of the atomic file
        for metric in PER_USER_METRICS:
            assert abs(frame[metric].mean() - run["test"][metric]) <= 5e-5 + 1e-6, (run["model"], metric)
        assert (out / run["checkpoint"]).is_file() and (out / run["checkpoint"]).suffix == ".pth"
        assert run["checkpoint"].startswith("runs/ml-100k/checkpoints/")
    assert (out / "runs" / "ml-100k" / "checkpoints" / ".gitignore").read_text() == "*\n"


@pytest.mark.slow
def test_json_schema(bench):
    out, _ = bench
    results = json.loads((out / "ml-100k.json").read_text())
    assert results["dataset"] == "ml-100k" and results["profile"] is None
    assert results["command"].startswith("python -m recbole_galrec.benchmark --dataset=ml-100k")
    assert set(results["machine"]) == {"platform", "cpu_model", "python", "torch", "cpu_count", "cuda_device"}
    assert results["settings"]["hidden_size"] == 16 and "seed" not in results["settings"]
    assert set(results["data"]["files"]) >= {"ml-100k.inter", "ml-100k.item"}
    assert sorted((run["model"], run["seed"]) for run in results["runs"]) == [
        ("Pop", 2020),
        ("Pop", 2021),
        ("SASRec", 2020),
        ("SASRec", 2021),
    ]
    for run in results["runs"]:
        assert set(run) == set(benchmark.RUN_KEYS)
        for key, kind in RUN_TYPES.items():
            assert isinstance(run[key], kind), (key, run[key])
        assert run["status"] == "ok" and run["error"] is None and run["peak_gpu_mib"] is None
        assert set(run["test"]) == METRIC_KEYS
        assert run["epochs_run"] == run["max_epochs"] == 1 and run["stopped_early"] is False
        assert run["peak_rss_mib"] > 50 and run["external_checkpoints"] is None
        assert (out / run["log"]).is_file()
        assert run["time_to_best_seconds"] <= run["train_seconds"]
        (validation,) = run["valid_curve"]  # one epoch, one validation: the best one
        assert validation["epoch"] == run["best_valid_epoch"] == 0
        assert validation["recbole"] == pytest.approx(run["valid"]["ndcg@10"], abs=1e-4)
        assert validation["viewed_filtered"] == pytest.approx(run["valid_viewed_filtered"]["ndcg@10"], abs=1e-4)
        assert run["users_scored_per_second"] == pytest.approx(943 / run["test_seconds"])
    sasrec = next(run for run in results["runs"] if run["model"] == "SASRec")
    assert sasrec["trainable_params"] == sasrec["total_params"] > 1000
    # ml-100k: 943 users, 100,000 interactions; training prefixes = interactions - 2 per user (valid, test)
    # - 1 per user (the first item has no history): one epoch of SASRec trains on 97,171 samples.
    assert sasrec["train_samples_per_second"] == pytest.approx(97171 / sasrec["seconds_per_epoch"])
    text = json.dumps(results) + "".join((out / run["log"]).read_text() for run in results["runs"])
    assert str(REPO_ROOT) not in text and str(out.parent) not in text and sys.prefix not in text


@pytest.mark.slow
def test_markdown_rows_are_means_of_json_runs(bench):
    out, _ = bench
    results = json.loads((out / "ml-100k.json").read_text())
    markdown = (out / "ml-100k.md").read_text()
    assert "ml-100k" in markdown.splitlines()[0] and "profile: none" in markdown
    assert "`--hidden_size=16`" in markdown and results["command"] in markdown
    rows = table_rows(markdown)
    assert set(rows) == {"Pop", "SASRec"}
    columns = {key: key for key in benchmark.METRIC_COLUMNS} | {key: header for key, header, _ in benchmark.RUN_COLUMNS}
    for label, row in rows.items():
        runs = [run for run in results["runs"] if run["model"] == label]
        for key, header in columns.items():
            values = [run["test"][key] if key in benchmark.METRIC_COLUMNS else run[key] for run in runs]
            assert close_to_printed(row[header], statistics.fmean(values)), (label, header, row[header])
        assert row["epochs"].endswith("(cap: 2 of 2)")  # --epochs=1: every run ended at its cap


@pytest.mark.slow
def test_second_invocation_skips_finished_runs(bench):
    out, _ = bench
    before = json.loads((out / "ml-100k.json").read_text())["runs"]
    start = time.perf_counter()
    proc = run_benchmark_cli(*BENCH_ARGS, cwd=out.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.perf_counter() - start < 30
    assert proc.stderr.count("skipped") == 4 and "start" not in proc.stderr
    assert json.loads((out / "ml-100k.json").read_text())["runs"] == before


@pytest.mark.slow
def test_failed_run_is_recorded_and_benchmark_goes_on(workdir):
    proc = run_benchmark_cli("--dataset=no-such-data", "--models=Pop", "--output=out", cwd=workdir)
    assert proc.returncode == 1
    assert "FAILED" in proc.stderr and "Traceback" not in proc.stderr
    (run,) = json.loads((workdir / "out" / "no-such-data.json").read_text())["runs"]
    assert run["status"] == "failed" and run["test"] is None
    assert "Dataset 'no-such-data' not found" in run["error"]
    assert table_rows((workdir / "out" / "no-such-data.md").read_text())["Pop"]["seeds"] == "none (2020 failed)"


def test_unknown_label_exits_with_message(workdir):
    proc = run_benchmark_cli("--models=Pop,NoSuchModel", "--output=out", cwd=workdir)
    assert proc.returncode == 2
    assert "error: Unknown model label 'NoSuchModel'" in proc.stderr
    assert "SASRec-BPR" in proc.stderr and "any RecBole model name works too" in proc.stderr
    assert "Traceback" not in proc.stderr and not (workdir / "out").exists()


def test_multi_process_key_exits_before_any_run(workdir):
    proc = run_benchmark_cli("--models=Pop", "--nproc=2", "--output=out", cwd=workdir)
    assert proc.returncode == 2
    assert "error: nproc=2: the benchmark runs each run as one process" in proc.stderr
    assert "Traceback" not in proc.stderr and not (workdir / "out").exists()


def test_sasrec_bpr_label_gives_bpr_config(workdir):
    model, config_dict = benchmark.run_config("SASRec-BPR", {"epochs": 1, "loss_type": "CE"}, seed=2021)
    assert model == "SASRec"
    assert config_dict["loss_type"] == "BPR" and config_dict["seed"] == 2021 and config_dict["epochs"] == 1
    assert config_dict["train_neg_sample_args"]["sample_num"] == 1
    # The label's keys win over properties/model/SASRec.yaml, which sets CE without negatives.
    config = build_config(model, "ml-100k", config_dict=config_dict)
    assert config["loss_type"] == "BPR"
    assert config["train_neg_sample_args"]["distribution"] == "uniform"
    assert benchmark.run_config("SASRec", {}, seed=2020) == ("SASRec", {"show_progress": False, "seed": 2020})
    assert benchmark.run_config("NARM", {"show_progress": True}, seed=2020) == (
        "NARM",
        {"show_progress": True, "seed": 2020},
    )


def test_summarize_mean_and_sample_std():
    def run(label, seed, ndcg, speed, status="ok"):
        test = {"hit@10": 2 * ndcg, "ndcg@10": ndcg, "hit@20": 3 * ndcg, "ndcg@20": ndcg, "mrr@10": ndcg}
        return {
            "model": label,
            "seed": seed,
            "status": status,
            "test": test if status == "ok" else None,
            "train_samples_per_second": speed,
            "stopped_early": True,
            "epochs_run": 10,
            "peak_rss_mib": 500.0,
            "trainable_params": 100,
        }

    runs = [run("A", 2020, 0.1, 2.0), run("B", 2020, 0.5, 1.0), run("A", 2021, 0.3, 4.0)]
    rows = benchmark.summarize([*runs, run("B", 2021, 0, 0, "failed")])
    assert [row["model"] for row in rows] == ["A", "B"]
    a, b = rows
    assert (a["n_seeds"], a["failed_seeds"], a["seeds"]) == (2, [], [2020, 2021])
    assert a["ndcg@10"]["mean"] == pytest.approx(0.2) and a["ndcg@10"]["std"] == pytest.approx(0.1414213562)
    assert a["hit@10"]["mean"] == pytest.approx(0.4)
    assert a["train_samples_per_second"] == pytest.approx({"mean": 3.0, "std": 1.4142135624})
    assert a["epochs_run"] == {"mean": 10, "std": 0.0} and a["at_cap"] == 0
    assert (b["n_seeds"], b["failed_seeds"]) == (1, [2021])
    assert b["ndcg@10"] == {"mean": 0.5, "std": None}  # the deviation of one sample is undefined, not 0


def test_one_seed_table_shows_n_a_for_the_deviation():
    test = {key: 0.1234 for key in benchmark.METRIC_COLUMNS}
    results = {"dataset": "d", "command": "c", "runs": [{"model": "A", "seed": 2024, "status": "ok", "test": test}]}
    row = table_rows(benchmark.markdown_table(results))["A"]
    assert row["ndcg@10"] == "0.1234 ± n/a" and row["seeds"] == "2024"
    assert row["wall s"] == "n/a" and "n/a: not recorded for runs made before" in benchmark.markdown_table(results)


def test_a_mean_that_rounds_to_zero_is_not_negative():
    """Best epochs -1 (the start), -1 and 1 average -0.33: the table shows 0, not -0."""
    test = dict.fromkeys(benchmark.METRIC_COLUMNS, 0.1)
    runs = [
        {"model": "A", "seed": seed, "status": "ok", "test": test, "best_valid_epoch": epoch}
        for seed, epoch in ((2020, -1), (2021, -1), (2022, 1))
    ]
    row = table_rows(benchmark.markdown_table({"dataset": "d", "command": "c", "runs": runs}))["A"]
    assert row["best epoch"] == "0 ± 1"
    runs[2]["best_valid_epoch"] = -1
    assert table_rows(benchmark.markdown_table({"dataset": "d", "command": "c", "runs": runs}))["A"]["best epoch"] == (
        "-1 ± 0"
    )


def test_table_lists_default_models_in_their_order_and_the_total_wall_time():
    def run(label, wall):
        test = dict.fromkeys(benchmark.METRIC_COLUMNS, 0.1)
        return {"model": label, "seed": 2020, "status": "ok", "test": test, "wall_seconds": wall}

    labels = ["Pop", "MyModel", "SASRec", "GALRec"]
    results = {"dataset": "d", "command": "c", "runs": [run(label, 3000.0) for label in labels]}
    assert [row["model"] for row in benchmark.summarize(results["runs"])] == ["GALRec", "SASRec", "Pop", "MyModel"]
    markdown = benchmark.markdown_table(results)
    assert list(table_rows(markdown)) == ["GALRec", "SASRec", "Pop", "MyModel"]
    assert "The runs took 12,000 s (3 h 20 min) of wall time in all." in markdown


# Every benchmark output committed under docs/results: (folder, dataset, the labels it must hold, the other files
# committed beside it).
WITH_AND_WITHOUT_CONTRAST = (*planning.EXTERNAL_LABELS, "GALRec", "GALRec-noContrast")  # the representations' runs
COMMITTED_BENCHMARKS = [
    # the comparisons hold every default model; beside Beauty's, GALRec's own result file
    ("", "amazon-beauty", benchmark.DEFAULT_MODELS, ("galrec-amazon-beauty-cpu.json",)),
    ("", "amazon-toys-games", benchmark.DEFAULT_MODELS, ()),
    ("", "yelp", benchmark.DEFAULT_MODELS, ()),
    ("ablation", "amazon-beauty", (*planning.EXTERNAL_LABELS, "GALRec"), ()),  # the full model, its parts, variants
    ("representations/amazon-beauty", "amazon-beauty", WITH_AND_WITHOUT_CONTRAST, ()),
    ("representations/amazon-toys-games", "amazon-toys-games", WITH_AND_WITHOUT_CONTRAST, ()),
    # the sensitivity analysis: its start here; its GALRec[<param>=<value>] runs in tests/test_sensitivity.py
    ("sensitivity", "amazon-beauty", planning.EXTERNAL_LABELS, ()),
]


def _base_label(label: str) -> str:
    setting = planning.SETTING_LABEL.fullmatch(label)
    return _base_label(setting["base"]) if setting else label


@pytest.mark.parametrize(("subfolder", "dataset", "required", "beside"), COMMITTED_BENCHMARKS)
def test_committed_results_agree_with_each_other(subfolder, dataset, required, beside):
    """docs/results/<folder>/<dataset>.md is the report of the committed JSON, and every run's log is committed."""
    folder = REPO_ROOT / "docs" / "results" / subfolder
    raw = (folder / f"{dataset}.json").read_text(encoding="utf-8")
    results = json.loads(raw)
    # After a change of the report's format, write the report again from the JSON with
    # python -c "import json, pathlib; from recbole_galrec import benchmark as b; p = pathlib.Path('docs/results');
    #            b.write_outputs(json.loads((p / 'amazon-beauty.json').read_text()), p)"
    assert results["dataset"] == dataset
    assert (folder / f"{dataset}.md").read_text(encoding="utf-8") == benchmark.markdown_table(results)
    assert (folder / f"{dataset}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    models = {run["model"] for run in results["runs"]}
    assert set(required) <= models, set(required) - models
    seeds = {run["seed"] for run in results["runs"]}
    for label in required:  # every required model has every seed of the folder (three for the comparisons)
        assert {run["seed"] for run in results["runs"] if run["model"] == label} == seeds, label
    unknown = {label for label in models if _base_label(label) not in benchmark.MODEL_LABELS}
    assert not unknown, unknown  # a label with a key set counts as its base label: GALRec[contrast_tau=0.05]
    for run in results["runs"]:
        assert run["status"] == "ok" and (folder / run["log"]).is_file(), run["model"]
    # No machine paths in what is committed.
    texts = [raw]
    texts += [path.read_text(encoding="utf-8") for path in folder.glob("*.md")]  # the report and any notes beside it
    texts += [(folder / run["log"]).read_text(encoding="utf-8") for run in results["runs"]]
    texts += [(folder / name).read_text(encoding="utf-8") for name in beside]
    for text in texts:
        assert not MACHINE_PATH.search(text)


def test_cpu_profile_and_unknown_profile():
    path = benchmark.profile_file("cpu")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert yaml.safe_load(text) == {
        "MAX_ITEM_LIST_LENGTH": 20,
        "epochs": 30,
        "stopping_step": 3,
        "eval_step": 1,
        "train_batch_size": 512,
        "eval_batch_size": 4096,
    }
    for line in text.splitlines():
        if re.match(r"^\w+:", line):
            assert re.search(r"# \(\w+\) \S", line), line
    assert benchmark.profile_file(None) is None
    with pytest.raises(ConfigError, match="Available profiles: cpu"):
        benchmark.profile_file("gpu")


def test_resumed_benchmark_lists_every_command(tmp_path):
    header = {"dataset": "d", "profile": None, "config_files": [], "settings": {}, "machine": {}, "data": {}}
    path = tmp_path / "d.json"
    first = benchmark.load_results(path, header | {"command": "first"})
    assert first["commands"] == ["first"]
    path.write_text(json.dumps(first))
    resumed = benchmark.load_results(path, header | {"command": "second"})
    assert resumed["commands"] == ["first", "second"] and resumed["command"] == "second"
    path.write_text(json.dumps(resumed))
    assert benchmark.load_results(path, header | {"command": "first"})["commands"] == ["first", "second"]
    assert "Produced by `first`, resumed by `second` on" in benchmark.markdown_table(resumed)


MACHINE = {
    "platform": "Linux-6.1-a",
    "cpu_model": "X",
    "cpu_count": 2,
    "python": "3.11",
    "torch": "2.13",
    "cuda_device": None,
}
HEADER = {
    "dataset": "d",
    "command": "c",
    "profile": None,
    "config_files": [],
    "settings": {"data_path": "<local>/datasets"},
    "machine": MACHINE,
    "data": {"files": {"d.inter": "ab"}},
}


@pytest.mark.parametrize(
    "key, other",
    [
        ("profile", "cpu"),
        ("settings", {"a": 1, "data_path": "<local>/datasets"}),
        ("data", {"files": {"d.inter": "cd"}}),
        ("machine", MACHINE | {"torch": "2.3.0"}),
        ("machine", MACHINE | {"cpu_model": "Y"}),
        ("machine", MACHINE | {"cuda_device": "NVIDIA H100"}),
    ],
)
def test_resume_refuses_results_of_another_setting_data_or_machine(tmp_path, key, other):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(benchmark.load_results(path, HEADER)))
    with pytest.raises(ConfigError, match="holds runs made (with|on a machine with) .*[uU]se another --output"):
        benchmark.load_results(path, HEADER | {key: other})


def test_resume_on_another_machine_of_the_same_kind(tmp_path):
    """Another kernel build (platform string) or another data folder with the same files resumes."""
    path = tmp_path / "d.json"
    path.write_text(json.dumps(benchmark.load_results(path, HEADER) | {"runs": [{"model": "A", "seed": 1}]}))
    moved = HEADER | {"machine": MACHINE | {"platform": "Linux-6.2-b"}, "settings": {"data_path": "data"}}
    resumed = benchmark.load_results(path, moved)
    assert resumed["runs"] == [{"model": "A", "seed": 1}] and resumed["machine"]["platform"] == "Linux-6.2-b"
    # A file written before the CPU model was recorded is compared on the keys it has.
    old = HEADER | {"machine": {k: v for k, v in MACHINE.items() if k != "cpu_model"}}
    path.write_text(json.dumps(benchmark.load_results(tmp_path / "new.json", old)))
    assert benchmark.load_results(path, HEADER)["machine"]["cpu_model"] == "X"


@pytest.mark.parametrize(
    "text, seeds",
    [("1", [2020]), ("3", [2020, 2021, 2022]), ("2020,2024", [2020, 2024]), ("2020,", [2020]), ("7, 9", [7, 9])],
)
def test_seeds_count_or_explicit_list(text, seeds):
    assert benchmark.parse_seeds(text) == seeds


@pytest.mark.parametrize(
    "text, message",
    [
        ("2020", r"would mean 2,020 runs per model\. For the single seed 2020, write --seeds=2020,"),
        ("0", "at least 1"),
        ("2020,2020", "names a seed twice"),
        ("a,b", "whole numbers separated by commas"),
        ("x", "give a count"),
        (",", "whole numbers"),
    ],
)
def test_bad_seeds_are_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        benchmark.parse_seeds(text)


@pytest.mark.slow
def test_bad_seeds_jobs_and_reference_exit_before_any_run(workdir):
    for args, message in [
        (["--seeds=2020"], "error: --seeds=2020 would mean 2,020 runs"),
        (["--jobs=0"], "error: --jobs must be at least 1"),
        (["--reference=GRU4Rec"], "error: --reference=GRU4Rec is neither among --models"),
    ]:
        proc = run_benchmark_cli("--models=Pop", "--output=out", *args, cwd=workdir)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        assert not (workdir / "out" / "ml-100k.json").exists()


def test_galrec_waits_for_its_seeds_sasrec_and_lightgcn():
    labels = ["GALRec", "Pop", "LightGCN", "SASRec"]
    plan = benchmark.order_plan(labels, [1, 2])
    assert plan[:4] == [("SASRec", 1), ("SASRec", 2), ("LightGCN", 1), ("LightGCN", 2)]
    assert plan[4:] == [("GALRec", 1), ("GALRec", 2), ("Pop", 1), ("Pop", 2)]
    assert planning.dependencies("GALRec", 2, labels) == [("SASRec", 2), ("LightGCN", 2)]
    assert planning.dependencies("GALRec", 2, ["GALRec", "SASRec"]) == [("SASRec", 2)]
    assert planning.dependencies("SASRec", 2, labels) == []
    # Without GALRec the order is the one given.
    assert benchmark.order_plan(["Pop", "SASRec"], [1]) == [("Pop", 1), ("SASRec", 1)]


def test_galrec_can_start_from_the_text_baseline(tmp_path):
    """--galrec_start=SASRecText: GALRec waits for the same seed's SASRecText (not SASRec) and LightGCN runs and takes
    SASRecText's checkpoint as its external SASRec; an unknown start is refused before any run."""
    labels = ["SASRec", "SASRecText", "LightGCN", "GALRec"]
    assert planning.dependencies("GALRec", 3, labels, "SASRecText") == [("SASRecText", 3), ("LightGCN", 3)]
    assert benchmark.order_plan(labels, [3], "SASRecText")[:2] == [("SASRecText", 3), ("LightGCN", 3)]
    bench = runner.Benchmark("d", labels, [3], tmp_path, [], {}, None, start="SASRecText")
    for name in ("s", "t", "l"):
        (tmp_path / f"{name}.pth").write_bytes(b"x")
    results = {
        "runs": [
            {"model": label, "seed": 3, "status": "ok", "checkpoint": f"{name}.pth"}
            for label, name in (("SASRec", "s"), ("SASRecText", "t"), ("LightGCN", "l"))
        ]
    }
    external, blocked = runner._external_for(bench, results, "GALRec-noLM", 3)
    assert blocked is None and external == {"SASRec": str(tmp_path / "t.pth"), "LightGCN": str(tmp_path / "l.pth")}
    with pytest.raises(ConfigError, match="--galrec_start=GRU4Rec: .* one of SASRec, SASRecText"):
        runner.run_benchmark("d", labels, [3], tmp_path, [], {}, None, "c", galrec_start="GRU4Rec")
    # A results file without GALRec runs takes either start; once one is recorded, only its own.
    path = tmp_path / "d.json"
    path.write_text(json.dumps(benchmark.load_results(path, HEADER) | {"runs": [{"model": "SASRec", "seed": 3}]}))
    assert benchmark.load_results(path, HEADER | {"galrec_start": "SASRecText"})["galrec_start"] == "SASRecText"
    galrec = {"model": "GALRec-noLM", "recbole_model": "GALRec", "seed": 3}
    path.write_text(json.dumps(benchmark.load_results(path, HEADER) | {"runs": [galrec]}))
    with pytest.raises(ConfigError, match="holds GALRec runs whose external SASRec is the SASRec run, not SASRecText"):
        benchmark.load_results(path, HEADER | {"galrec_start": "SASRecText"})


def test_galrec_gets_its_seeds_checkpoints_or_a_reason(tmp_path):
    bench = runner.Benchmark("d", ["SASRec", "LightGCN", "GALRec"], [1], tmp_path, [], {}, None)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "s.pth").write_bytes(b"x")
    results = {
        "runs": [
            {"model": "SASRec", "seed": 1, "status": "ok", "checkpoint": "runs/s.pth"},
            {"model": "LightGCN", "seed": 1, "status": "failed", "log": "runs/l.log"},
        ]
    }
    external, blocked = runner._external_for(bench, results, "GALRec", 1)
    assert (
        external is None and blocked == "not run: LightGCN seed 1, whose checkpoint it uses, failed (log: runs/l.log)"
    )
    results["runs"][1] = {"model": "LightGCN", "seed": 1, "status": "ok", "checkpoint": "runs/gone.pth"}
    external, blocked = runner._external_for(bench, results, "GALRec", 1)
    assert "LightGCN seed 1's checkpoint (runs/gone.pth) is missing" in blocked
    (tmp_path / "runs" / "gone.pth").write_bytes(b"x")
    external, blocked = runner._external_for(bench, results, "GALRec", 1)
    assert blocked is None
    assert external == {"SASRec": str(tmp_path / "runs" / "s.pth"), "LightGCN": str(tmp_path / "runs" / "gone.pth")}
    assert runner._external_for(bench, results, "Pop", 1) == (None, None)


def test_progress_messages_from_the_events(tmp_path):
    """The terminal's messages from a run's progress events (recbole_galrec.running.progress), read as the file grows:
    an external SASRec's epochs, then GALRec's validation before training, epochs and validations."""

    def sasrec(event, **fields):
        return {"event": event, "model": "SASRec", "external": True, **fields}

    def galrec(event, **fields):
        return {"event": event, "model": "GALRec", "external": False, **fields}

    events = [
        {"event": "plan", "model": "GALRec", "max_epochs": 10, "eval_step": 2, "stopping_step": 2},
        sasrec("training_start", max_epochs=5),
        sasrec("epoch", epoch=0, seconds=3.0, loss={"train loss": 12}),
        sasrec("validation", epoch=0, score=0.03, seconds=1.0),
        sasrec("training_end", epochs_run=1, best_valid_score=0.03),
        galrec("training_start", max_epochs=10),
        galrec("validation", epoch=-1, score=0.04, seconds=2.0),
        galrec("contrast", epoch=0, shares={"L1": {"top1": 0.5, "chance": 0.25}}),
        galrec("epoch", epoch=0, seconds=10.0, loss={"train_loss1": 5.0, "train_loss2": 1.0}),
        galrec("epoch", epoch=1, seconds=10.0, loss={"train_loss1": 4.0, "train_loss2": 1.0}),
        galrec("validation", epoch=1, score=0.05, seconds=2.0),
        galrec("validation", epoch=3, score=0.045, seconds=2.0),
        galrec("validation", epoch=5, score=0.05, seconds=2.0),  # a tie: RecBole's best moves to it
    ]
    below_start = [galrec("validation", epoch=1, score=0.035, seconds=2.0)]  # the same run had it stayed below 0.04
    lines = [json.dumps(event) for event in events]
    path = tmp_path / "run.progress.jsonl"
    progress = runner.Progress()
    assert progress.read(path) == []  # the run has not started writing
    path.write_text("\n".join(lines[:4]) + "\n" + lines[4][:10])  # the last line half written
    assert progress.read(path) == [
        "external SASRec: epoch 0 trained in 3.0 s (train loss: 12.0000)",
        "external SASRec: epoch 0 valid score 0.0300",
    ]
    path.write_text("\n".join(lines) + "\n")
    messages = progress.read(path)
    assert messages[:4] == [
        "before training: valid score 0.0400",
        "epoch 0 contrastive top-1 share: L1 0.5000 (chance 0.2500)",
        "epoch 0 trained in 10.0 s (train_loss1: 5.0000, train_loss2: 1.0000)",
        "epoch 1 trained in 10.0 s (train_loss1: 4.0000, train_loss2: 1.0000)",
    ]
    assert messages[4].startswith("epoch 1 valid score 0.0500 (best 0.0500 at epoch 1); 0.0 min of training")
    assert re.search(r"at most [\d.]+ min left \(2 of 10 epochs\)$", messages[4])
    assert messages[5].startswith("epoch 3 valid score 0.0450 (best 0.0500 at epoch 1); ")
    assert messages[6].startswith("epoch 5 valid score 0.0500 (best 0.0500 at epoch 5); ")
    assert len(messages) == 7 and progress.max_epochs == 10 and progress.epochs_done == 2
    progress = runner.Progress()
    for event in events[:10] + below_start:
        message = progress.event(event)
    assert message.startswith("epoch 1 valid score 0.0350 (best 0.0400 before training); ")


def test_progress_of_a_resumed_run_counts_its_earlier_epochs():
    """A run continued from epoch 8 (best 0.0487 at epoch 6, 600 s of training before): its terminal messages keep
    that best and count every epoch and second, not only the continuing process's."""
    progress = runner.Progress()
    plan = {"event": "plan", "model": "SASRec", "max_epochs": 20}
    resumed = {"epochs": 8, "seconds": 600.0, "best": 0.0487, "best_epoch": 6}
    start = {"event": "training_start", "model": "SASRec", "external": False, "max_epochs": 20, "resumed": resumed}
    for event in (plan, start, {"event": "epoch", "model": "SASRec", "epoch": 8, "seconds": 60.0, "loss": {}}):
        progress.event(event)
    message = progress.event({"event": "validation", "model": "SASRec", "epoch": 8, "score": 0.0484})
    assert message.startswith("epoch 8 valid score 0.0484 (best 0.0487 at epoch 6); 10.0 min of training")
    assert message.endswith("(9 of 20 epochs)")


def test_a_run_writes_its_progress_events(tmp_path, workdir):
    """A run inside a progress sink writes its plan, its training's start and end, each epoch and each
    validation, as JSON lines; without a sink it writes nothing."""
    from recbole_galrec.quick_start import run_recbole_galrec
    from recbole_galrec.running import progress

    path = tmp_path / "run.progress.jsonl"
    settings = {**TINY_SASREC, "epochs": 2, "user_inter_num_interval": "[0,40]"}  # 305 users: seconds
    with progress.to_file(str(path)):
        run_recbole_galrec("SASRec", "ml-100k", config_dict=settings, saved=False)
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [event["event"] for event in events] == [
        "plan", "training_start", "epoch", "validation", "epoch", "validation", "training_end"
    ]  # fmt: skip
    assert events[0] == {
        "event": "plan", "model": "SASRec", "max_epochs": 2, "eval_step": 1, "stopping_step": 10,
        "valid_score_bigger": True,
    }  # fmt: skip
    assert all(event["model"] == "SASRec" and not event["external"] for event in events[1:])
    assert [event["epoch"] for event in events if event["event"] in ("epoch", "validation")] == [0, 0, 1, 1]
    assert set(events[2]["loss"]) == {"train loss"} and events[2]["seconds"] > 0
    validations = [event for event in events if event["event"] == "validation"]
    assert all(event["filtered"] >= event["score"] for event in validations)  # both protocols, each validation
    messages = runner.Progress().read(path)
    assert messages[0].startswith("epoch 0 trained in ") and "valid score" in messages[1]
    assert progress.sink_path() is None
    run_recbole_galrec("Pop", "ml-100k", config_dict={"epochs": 1, "show_progress": False}, saved=False)
    assert len(path.read_text().splitlines()) == len(events)  # no sink: nothing written


def test_public_paths_and_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert store.public_path("data") == "data"
    assert store.public_path(str(tmp_path / "out")) == "out"
    assert store.public_path("/somewhere/else/datasets") == "<local>/datasets"
    assert store.public_command(["--data_path=/x/datasets", f"--output={tmp_path}/o", "--seeds=1"]) == (
        "python -m recbole_galrec.benchmark --data_path=<local>/datasets --output=o --seeds=1"
    )
    assert store.public_settings({"data_path": "/x/ds", "llm_path": "/m/lm", "epochs": 3}) == {
        "data_path": "<local>/ds",
        "llm_path": "<local>/lm",
        "epochs": 3,
    }
    replacements = store.path_replacements({"llm_path": "/m/lm"}, "/x/ds/beauty", Path("/y/bench"))
    assert replacements["/x/ds"] == "<data_path>" and replacements["/m/lm"] == "<local>/lm"
    assert replacements["/y/bench"] == "<output>"
    assert replacements[str(REPO_ROOT)] == "<recbole_galrec>" and replacements[sys.prefix] == "<python>"
    assert store.scrub_paths("read /x/ds/beauty and /x/ds, not /x/dsa", {"/x/ds": "<data_path>"}) == (
        "read <data_path>/beauty and <data_path>, not /x/dsa"
    )


@pytest.mark.slow
def test_terminated_benchmark_stops_its_run(workdir):
    """SIGTERM to the benchmark ends the runs it is waiting on: no worker is left behind."""
    models = ["recbole_galrec.benchmark", "--dataset=ml-100k", "--models=SASRec,GRU4Rec"]
    terminate_when_running([*models, "--epochs=100", "--jobs=2", "--output=out"], workdir, workers=2)


def test_the_external_models_note_names_each_galrec_label():
    """A GALRec variant of the ablation is named by its label in the note on its external models."""
    from recbole_galrec.benchmark.report import _notes

    used = {"SASRec": "runs/d/checkpoints/SASRec-seed1/a.pth", "LightGCN": "runs/d/checkpoints/LightGCN-seed1/b.pth"}
    runs = [
        {"model": label, "recbole_model": "GALRec", "seed": 1, "status": "ok", "external_checkpoints": used}
        for label in ("GALRec", "GALRec-noLM")
    ]
    notes = _notes({"runs": runs})
    assert any(note.startswith("GALRec seed 1 used this benchmark's") for note in notes)
    assert any(note.startswith("GALRec-noLM seed 1 used this benchmark's") for note in notes)


def test_runs_side_by_side_share_the_cores(tmp_path, monkeypatch):
    """Each of --jobs runs gets cores // jobs threads (at least one), unless the user set OMP_NUM_THREADS; a single
    run keeps torch's default (its physical cores, which os.cpu_count may double)."""
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    threads = {jobs: planning.run_environment(jobs, {})["OMP_NUM_THREADS"] for jobs in (2, 3, 16)}
    assert threads == {2: "4", 3: "2", 16: "1"} and planning.run_environment(1, {"A": "b"}) == {"A": "b"}
    assert planning.run_environment(2, {"OMP_NUM_THREADS": "3", "A": "b"}) == {"OMP_NUM_THREADS": "3", "A": "b"}
    started = {}
    monkeypatch.setattr(runner.subprocess, "Popen", lambda command, **options: started.update(options))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    runner.Benchmark("ml-100k", ["Pop"], [2020], tmp_path, [], {}, None, jobs=2).start_run("Pop", 2020, None)
    assert started["env"]["OMP_NUM_THREADS"] == "4" and started["env"]["PATH"] == os.environ["PATH"]


# ------------------------------------------------------------------- a run interrupted with the benchmark goes on
def test_a_run_whose_checkpoint_cannot_continue_starts_afresh(workdir):
    """An interrupted run's leftover '-last' checkpoint that cannot serve the run (here unreadable) is said in the
    log and the run starts clean; a retry of a failed run never reads what its checkpoint folder holds."""
    bench = runner.Benchmark("ml-100k", ["Pop"], [2020], workdir / "out", [], {}, None)
    folder = bench.folder / runner.CHECKPOINT_FOLDER / planning.run_stem("Pop", 2020)
    folder.mkdir(parents=True)
    (folder / "Pop-x-last.pth").write_bytes(b"not a checkpoint")
    assert runner.interrupted_checkpoint(folder) == str(folder / "Pop-x-last.pth")
    job = bench.start_run("Pop", 2020, None)
    assert job.resumed == str(folder / "Pop-x-last.pth")
    job.proc.wait(timeout=300)
    terminal = runner.Progress().read(job.progress_file)  # the benchmark's terminal says it too, first
    assert terminal[0].startswith("cannot continue from the interrupted run's checkpoint, starts afresh: ")
    assert "cannot be read" in terminal[0]
    run = bench.finish_run(job, 1.0, {})
    log = (workdir / "out" / run["log"]).read_text()
    assert run["status"] == "ok", run["error"]
    assert run["resumed"] is False and "cannot continue the interrupted run" in log and "cannot be read" in log
    assert runner.interrupted_checkpoint(folder) is not None  # the fresh run's own

    (folder / "Pop-y-last.pth").write_bytes(b"left by a failed run")
    job = bench.start_run("Pop", 2020, None, retry=True)
    assert job.resumed is None and not (folder / "Pop-y-last.pth").exists()
    job.proc.wait(timeout=300)
    assert bench.finish_run(job, 1.0, {})["resumed"] is False


@pytest.mark.slow
def test_a_run_interrupted_with_the_benchmark_continues_from_its_last_epoch(workdir):
    """SIGTERM after the first epoch's checkpoint, then the same command: the run continues at its second epoch
    (not from scratch), trains its three epochs in all, and the report says it was continued."""
    settings = {**TINY_SASREC, "epochs": 3, "stopping_step": 10}
    command = [
        sys.executable,
        "-m",
        "recbole_galrec.benchmark",
        "--dataset=ml-100k",
        "--models=SASRec",
        "--seeds=2020,",
        "--output=out",
        *[f"--{key}={value}" for key, value in settings.items()],
    ]
    parent = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    folder = workdir / "out" / "runs" / "ml-100k" / runner.CHECKPOINT_FOLDER / "SASRec-seed2020"
    deadline = time.monotonic() + 300
    while runner.interrupted_checkpoint(folder) is None and time.monotonic() < deadline and parent.poll() is None:
        time.sleep(0.05)
    parent.send_signal(signal.SIGTERM)
    _, stderr = parent.communicate(timeout=60)
    assert parent.returncode == 130, stderr  # interrupted before the run ended
    assert (
        not (workdir / "out" / "ml-100k.json").exists()
        or not json.loads((workdir / "out" / "ml-100k.json").read_text())["runs"]
    )

    proc = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "interrupted before, continues from" in proc.stderr
    assert "(3 of 3 epochs)" in proc.stderr and "(1 of 3 epochs)" not in proc.stderr  # earlier epochs counted
    (run,) = json.loads((workdir / "out" / "ml-100k.json").read_text())["runs"]
    assert run["status"] == "ok" and run["resumed"] is True and run["epochs_run"] == 3
    log = (workdir / "out" / run["log"]).read_text()
    assert re.search(r"resumed from .*-last\.pth: training continues at epoch [12]", log)
    assert "Interrupted with the benchmark and continued" in (workdir / "out" / "ml-100k.md").read_text()


# ------------------------------------------------------------------- runs taken from another benchmark's output
@pytest.mark.slow
def test_runs_from_takes_the_finished_runs_of_another_output(bench):
    """--runs_from copies the planned runs another output has (records, files, checkpoints) instead of running
    them; an output of other settings, or the benchmark's own, is refused before anything is written."""
    out, _ = bench
    settings = [f"--{key}={value}" for key, value in TINY_SASREC.items()]
    plan = ["--dataset=ml-100k", "--models=SASRec,Pop", "--seeds=2020,"]
    proc = run_benchmark_cli(*plan, "--output=taken", "--runs_from=out", *settings, cwd=out.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("taken from") == 2 and ": start" not in proc.stderr
    taken = out.parent / "taken"
    runs = {run["model"]: run for run in json.loads((taken / "ml-100k.json").read_text())["runs"]}
    source = json.loads((out / "ml-100k.json").read_text())["runs"]
    source = {run["model"]: run for run in source if run["seed"] == 2020}
    assert runs == source
    for run in runs.values():
        for key in ("log", "per_user", "checkpoint"):
            assert (taken / run[key]).is_file(), (run["model"], key)
    assert (taken / "ml-100k.md").is_file()

    other = run_benchmark_cli(*plan, "--output=other", "--runs_from=out", "--epochs=2", cwd=out.parent)
    assert other.returncode == 2 and "--runs_from=out cannot serve this benchmark" in other.stderr, other.stderr
    assert "settings" in other.stderr and not (out.parent / "other").exists()
    own = run_benchmark_cli(*plan, "--output=out", "--runs_from=out", *settings, cwd=out.parent)
    assert own.returncode == 2 and "own --output" in own.stderr, own.stderr
