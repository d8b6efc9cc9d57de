"""The entry point end to end: real runs on ml-100k (shipped with recbole) and each user error."""

import ast
import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from recbole_galrec import RunResult, run_recbole_galrec
from tests.conftest import REPO_ROOT, TINY_SASREC

ENTRY = str(REPO_ROOT / "run_recbole_galrec.py")


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, ENTRY, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


# The result file's keys, in order: RunResult's fields.
RESULT_KEYS = [
    "model",
    "dataset",
    "dataset_statistics",
    "parameters",
    "best_valid_score",
    "valid_score_bigger",
    "best_valid_result",
    "test_result",
    "eval_protocol",
    "valid_viewed_filtered",
    "test_viewed_filtered",
    "best_valid_epoch",
    "epochs_run",
    "max_epochs",
    "stopped_early",
    "time_budget_spent",
    "train_seconds",
    "seconds_per_epoch",
    "valid_seconds",
    "test_seconds",
    "time_to_best_seconds",
    "valid_curve",
    "train_samples",
    "train_samples_per_second",
    "test_users",
    "users_scored_per_second",
    "checkpoint",
    "per_user_file",
    "processes",
    "peak_gpu_memory_bytes",
]


def test_pop_end_to_end_returns_metrics(workdir):
    config = {"epochs": 1, "show_progress": False}
    result = run_recbole_galrec("Pop", "ml-100k", config_dict=config, result_file="out/result.json")
    assert isinstance(result, RunResult)
    written = json.loads((workdir / "out" / "result.json").read_text())
    assert list(written) == RESULT_KEYS and written == result.to_dict()
    assert (result.model, result.epochs_run, result.processes, result.per_user_file) == ("Pop", 1, 1, None)
    assert result.dataset_statistics["users"] == 943
    assert result.dataset_statistics["items"] == 1682
    assert result.dataset_statistics["interactions"] == 100000
    test = result.test_result
    assert set(test) == {f"{m}@{k}" for m in ("hit", "ndcg", "mrr") for k in (5, 10, 20)}
    # Popularity beats random ranking (hit@10 of a random ranker: 10 / 1682 = 0.006) by far on ml-100k.
    assert test["hit@10"] > 0.02
    assert test["hit@5"] <= test["hit@10"] <= test["hit@20"]
    assert test["ndcg@10"] <= test["hit@10"]


@pytest.mark.slow
def test_sasrec_cli_writes_result_file(workdir):
    overrides = [f"--{k}={v}" for k, v in TINY_SASREC.items()]
    files = ["--result_file=out/result.json", "--per_user_file=out/users.csv.gz"]
    proc = run_cli("--model=SASRec", "--dataset=ml-100k", *files, *overrides, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((workdir / "out" / "result.json").read_text())
    assert result["model"] == "SASRec"
    assert 0.0 < result["test_result"]["hit@20"] <= 1.0
    assert result["parameters"]["trainable"] == result["parameters"]["total"] > 0
    assert "test result" in proc.stderr + proc.stdout
    filtered = re.search(r"test result, viewed filtered: (\{.*\})", proc.stderr + proc.stdout)
    assert filtered and ast.literal_eval(filtered.group(1)) == result["test_viewed_filtered"]
    users = pd.read_csv(workdir / "out" / "users.csv.gz")
    assert len(users) == result["test_users"] and users["ndcg@10"].mean() == pytest.approx(
        result["test_result"]["ndcg@10"], abs=5e-5
    )


def test_unknown_model_exits_with_message(workdir):
    proc = run_cli("--model=NoSuchModel", "--dataset=ml-100k", cwd=workdir)
    assert proc.returncode == 2
    assert "Unknown model 'NoSuchModel'" in proc.stderr and "SASRec" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_dataset_exits_with_message(workdir):
    proc = run_cli("--model=Pop", "--dataset=no-such-data", cwd=workdir)
    assert proc.returncode == 2
    assert "Dataset 'no-such-data' not found" in proc.stderr
    assert "no-such-data.inter" in proc.stderr and "--data_path" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_config_file_exits_with_message(workdir):
    proc = run_cli("--model=Pop", "--dataset=ml-100k", "--config_files=missing.yaml", cwd=workdir)
    assert proc.returncode == 2
    assert "Config file 'missing.yaml' does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_malformed_override_exits_with_message(workdir):
    proc = run_cli("--model=Pop", "--dataset=ml-100k", "--epochs", "3", cwd=workdir)
    assert proc.returncode == 2
    assert "--key=value" in proc.stderr
