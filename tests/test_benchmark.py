"""The benchmark end to end on ml-100k (Pop and a tiny SASRec, one epoch), its resume, table and errors."""

import json
import re
import signal
import statistics
import subprocess
import sys
import time

import psutil
import pytest
import yaml

from recbole_galrec import benchmark
from recbole_galrec.config import build_config
from recbole_galrec.errors import ConfigError
from tests.conftest import REPO_ROOT, TINY_SASREC

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
    "train_seconds": float,
    "test_seconds": float,
    "wall_seconds": float,
    "peak_rss_mib": float,
    "trainable_params": int,
    "total_params": int,
    "log": str,
}
BENCH_ARGS = [
    "--dataset=ml-100k",
    "--models=Pop,SASRec",
    "--seeds=1",
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
    """The markdown table as {model label: {column header: cell}}."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    headers = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = dict(zip(headers, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
        rows[cells["model"]] = cells
    return rows


def close_to_printed(cell: str, value: float) -> bool:
    """True if ``value`` rounds to the number printed in ``cell`` (the part before ' ± ')."""
    printed = cell.split("±")[0].strip().replace(",", "")
    decimals = len(printed.partition(".")[2])
    return abs(float(printed) - value) <= 0.5 * 10**-decimals + 1e-9


@pytest.mark.slow
def test_writes_json_markdown_and_chart(bench):
    out, proc = bench
    for name in ("ml-100k.json", "ml-100k.md", "ml-100k.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "ml-100k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "[1/2] Pop seed 2020: start" in proc.stderr
    assert re.search(r"\[2/2\] SASRec seed 2020: ok, ndcg@10 0\.\d{4}, [\d.]+ s", proc.stderr)


@pytest.mark.slow
def test_json_schema(bench):
    out, _ = bench
    results = json.loads((out / "ml-100k.json").read_text())
    assert results["dataset"] == "ml-100k" and results["profile"] is None
    assert results["command"].startswith("python -m recbole_galrec.benchmark --dataset=ml-100k")
    assert set(results["machine"]) == {"platform", "python", "torch", "cpu_count", "cuda_device"}
    assert results["settings"]["hidden_size"] == 16 and "seed" not in results["settings"]
    assert [(run["model"], run["seed"]) for run in results["runs"]] == [("Pop", 2020), ("SASRec", 2020)]
    for run in results["runs"]:
        assert set(run) == set(benchmark.RUN_KEYS)
        for key, kind in RUN_TYPES.items():
            assert isinstance(run[key], kind), (key, run[key])
        assert run["status"] == "ok" and run["error"] is None and run["peak_gpu_mib"] is None
        assert set(run["test"]) == METRIC_KEYS
        assert run["epochs_run"] == 1 and run["peak_rss_mib"] > 50
        assert (out / run["log"]).is_file()
    sasrec = results["runs"][1]
    assert sasrec["trainable_params"] == sasrec["total_params"] > 1000


@pytest.mark.slow
def test_markdown_rows_are_means_of_json_runs(bench):
    out, _ = bench
    results = json.loads((out / "ml-100k.json").read_text())
    markdown = (out / "ml-100k.md").read_text()
    assert "ml-100k" in markdown.splitlines()[0] and "profile: none" in markdown
    assert "`--hidden_size=16`" in markdown and results["command"] in markdown
    rows = table_rows(markdown)
    assert set(rows) == {"Pop", "SASRec"}
    columns = dict((key, header) for key, header, _ in benchmark.TABLE_COLUMNS)
    for label, row in rows.items():
        runs = [run for run in results["runs"] if run["model"] == label]
        assert row["seeds"] == str(len(runs))
        for key, header in columns.items():
            values = [run["test"][key] if key in benchmark.METRIC_COLUMNS else run[key] for run in runs]
            assert close_to_printed(row[header], statistics.fmean(values)), (label, header, row[header])


@pytest.mark.slow
def test_second_invocation_skips_finished_runs(bench):
    out, _ = bench
    before = json.loads((out / "ml-100k.json").read_text())["runs"]
    start = time.perf_counter()
    proc = run_benchmark_cli(*BENCH_ARGS, cwd=out.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.perf_counter() - start < 30
    assert proc.stderr.count("skipped") == 2 and "start" not in proc.stderr
    assert json.loads((out / "ml-100k.json").read_text())["runs"] == before


@pytest.mark.slow
def test_failed_run_is_recorded_and_benchmark_goes_on(workdir):
    proc = run_benchmark_cli("--dataset=no-such-data", "--models=Pop", "--output=out", cwd=workdir)
    assert proc.returncode == 1
    assert "FAILED" in proc.stderr and "Traceback" not in proc.stderr
    (run,) = json.loads((workdir / "out" / "no-such-data.json").read_text())["runs"]
    assert run["status"] == "failed" and run["test"] is None
    assert "Dataset 'no-such-data' not found" in run["error"]
    assert "| Pop | 0 (1 failed) |" in (workdir / "out" / "no-such-data.md").read_text()


def test_unknown_label_exits_with_message(workdir):
    proc = run_benchmark_cli("--models=Pop,NoSuchModel", "--output=out", cwd=workdir)
    assert proc.returncode == 2
    assert "error: Unknown model label 'NoSuchModel'" in proc.stderr
    assert "SASRec-BPR" in proc.stderr and "any RecBole model name works too" in proc.stderr
    assert "Traceback" not in proc.stderr and not (workdir / "out").exists()


def test_multi_process_key_exits_before_any_run(workdir):
    proc = run_benchmark_cli("--models=Pop", "--nproc=2", "--output=out", cwd=workdir)
    assert proc.returncode == 2
    assert "error: multi-process training (nproc=2) is not supported" in proc.stderr
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
    assert benchmark.run_config("SASRec", {}, seed=2020) == ("SASRec", {"seed": 2020})
    assert benchmark.run_config("NARM", {}, seed=2020) == ("NARM", {"seed": 2020})


def test_summarize_mean_and_sample_std():
    def run(label, seed, ndcg, seconds, status="ok"):
        test = {"hit@10": 2 * ndcg, "ndcg@10": ndcg, "hit@20": 3 * ndcg, "ndcg@20": ndcg, "mrr@10": ndcg}
        return {
            "model": label,
            "seed": seed,
            "status": status,
            "test": test if status == "ok" else None,
            "seconds_per_epoch": seconds,
            "epochs_run": 10,
            "peak_rss_mib": 500.0,
            "trainable_params": 100,
        }

    runs = [run("A", 2020, 0.1, 2.0), run("B", 2020, 0.5, 1.0), run("A", 2021, 0.3, 4.0)]
    rows = benchmark.summarize([*runs, run("B", 2021, 0, 0, "failed")])
    assert [row["model"] for row in rows] == ["A", "B"]
    a, b = rows
    assert (a["n_seeds"], a["n_failed"], a["seeds"]) == (2, 0, [2020, 2021])
    assert a["ndcg@10"]["mean"] == pytest.approx(0.2) and a["ndcg@10"]["std"] == pytest.approx(0.1414213562)
    assert a["hit@10"]["mean"] == pytest.approx(0.4)
    assert a["seconds_per_epoch"] == pytest.approx({"mean": 3.0, "std": 1.4142135624})
    assert a["epochs_run"] == {"mean": 10, "std": 0.0}
    assert (b["n_seeds"], b["n_failed"]) == (1, 1)
    assert b["ndcg@10"] == {"mean": 0.5, "std": 0.0}


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


@pytest.mark.parametrize("dataset", ["amazon-beauty"])
def test_committed_results_agree_with_each_other(dataset):
    """docs/results/<dataset>.md is the report of the committed JSON, and every run's log is committed."""
    folder = REPO_ROOT / "docs" / "results"
    results = json.loads((folder / f"{dataset}.json").read_text(encoding="utf-8"))
    # After a change of the report's format, write the report again from the JSON with
    # python -c "import json, pathlib; from recbole_galrec import benchmark as b; p = pathlib.Path('docs/results');
    #            b.write_outputs(json.loads((p / 'amazon-beauty.json').read_text()), p)"
    assert (folder / f"{dataset}.md").read_text(encoding="utf-8") == benchmark.markdown_table(results)
    assert (folder / f"{dataset}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {run["model"] for run in results["runs"]} == set(benchmark.DEFAULT_MODELS)
    for run in results["runs"]:
        assert run["status"] == "ok" and (folder / run["log"]).is_file(), run["model"]


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
        "show_progress": False,
    }
    for line in text.splitlines():
        if re.match(r"^\w+:", line):
            assert re.search(r"# \(\w+\) \S", line), line
    assert benchmark.profile_file(None) is None
    with pytest.raises(ConfigError, match="Available profiles: cpu"):
        benchmark.profile_file("gpu")


def test_resumed_benchmark_lists_every_command(tmp_path):
    header = {"dataset": "d", "profile": None, "config_files": [], "settings": {}, "machine": {}}
    path = tmp_path / "d.json"
    first = benchmark.load_results(path, header | {"command": "first"})
    assert first["commands"] == ["first"]
    path.write_text(json.dumps(first))
    resumed = benchmark.load_results(path, header | {"command": "second"})
    assert resumed["commands"] == ["first", "second"] and resumed["command"] == "second"
    path.write_text(json.dumps(resumed))
    assert benchmark.load_results(path, header | {"command": "first"})["commands"] == ["first", "second"]
    assert "Produced by `first`, resumed by `second` on" in benchmark.markdown_table(resumed)


@pytest.mark.parametrize("key, other", [("profile", "cpu"), ("machine", {"torch": "2.3.0"}), ("settings", {"a": 1})])
def test_resume_refuses_results_of_another_setting_or_machine(tmp_path, key, other):
    header = {"dataset": "d", "command": "c", "profile": None, "config_files": [], "settings": {}, "machine": {}}
    path = tmp_path / "d.json"
    path.write_text(json.dumps(benchmark.load_results(path, header)))
    with pytest.raises(ConfigError, match=f"holds runs made with {key} .*use another --output"):
        benchmark.load_results(path, header | {key: other})


@pytest.mark.slow
def test_terminated_benchmark_stops_its_run(workdir):
    """SIGTERM to the benchmark ends the run it is waiting on: no worker is left behind."""
    command = [sys.executable, "-m", "recbole_galrec.benchmark", "--dataset=ml-100k", "--models=SASRec"]
    parent = subprocess.Popen(
        [*command, "--epochs=100", "--output=out"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    workers = []
    while not workers and time.monotonic() < deadline and parent.poll() is None:
        workers = psutil.Process(parent.pid).children()
        time.sleep(0.2)
    assert workers, "the benchmark started no worker"
    parent.send_signal(signal.SIGTERM)
    _, stderr = parent.communicate(timeout=60)
    assert parent.returncode == 130 and "interrupted: finished runs are kept" in stderr
    _, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive, f"worker {[p.pid for p in alive]} still running"
