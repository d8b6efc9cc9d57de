"""Several processes, one run: PyTorch's DistributedDataParallel, gloo on a CPU, NCCL on GPUs.

Two ways to start one:

- ``nproc: N`` (``--nproc=N`` on the command line): :func:`spawn` starts N local processes;
- ``torchrun --nproc_per_node=N run_recbole_galrec.py ...``: torchrun starts them (also across machines).

Either way each process finds ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` in
its environment, runs the same run with RecBole's multi-process keys (:func:`process_keys`) and joins the
process group when its config is built. RecBole's own multi-process path needs NCCL and a GPU per process and
shards every split with padding: :func:`patch_recbole` (applied in every process of a run, before its config is
built) makes it run on a CPU too and deal out disjoint shards. What the processes share and how:

- the model: DDP broadcasts the first process's parameters at the start and averages gradients at every
  step; buffers (GALRec's momentum copies, key queues, frozen tables) are broadcast once at the start
  (:func:`broadcast_buffers`) and then stay identical because every process applies the same updates to them;
- the training data: each epoch one permutation (from ``seed`` and the epoch) is dealt out in disjoint shards,
  one per process, each of ``len // world_size`` samples (the at most ``world_size - 1`` left over differ from
  epoch to epoch); a process's batch is ``train_batch_size // world_size``, so the global batch is the same;
- the key queues: every process enqueues the keys of all processes (:mod:`recbole_galrec.layers.queue`);
- evaluation: every process scores every user (the same model gives the same result), so the result is one
  evaluation over all users; only the first process logs, writes checkpoints and the result file;
- external models: the first process trains them (or reads their cache) while the others wait, then the others
  read the cache (:func:`main_process_first`).
"""

from __future__ import annotations

import os
import socket
import sys
from contextlib import contextmanager, nullcontext
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.utils.data.distributed import DistributedSampler

from recbole_galrec.errors import ConfigError, TrainingError
from recbole_galrec.running import progress

# A process waits this long at a barrier: the first process may be training the external models meanwhile.
BARRIER_TIMEOUT = timedelta(hours=12)


def launched() -> bool:
    """Whether this process is one of several started by :func:`spawn` or torchrun."""
    return "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def process_keys() -> dict:
    """RecBole's multi-process keys for this process, from the environment :func:`spawn` or torchrun set."""
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    world = int(os.environ["WORLD_SIZE"])
    return {
        "local_rank": local_rank,
        "world_size": world,
        "nproc": int(os.environ.get("LOCAL_WORLD_SIZE", world)),
        "offset": rank - local_rank,
    }


def init_process_group(device: torch.device) -> None:
    """Join the run's process group (NCCL for a CUDA device, gloo otherwise), once."""
    if dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method="env://", timeout=BARRIER_TIMEOUT)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


@contextmanager
def main_process_first():
    """The block runs in the first process, then in the others (which may read what it wrote)."""
    if not is_distributed():
        yield
        return
    if dist.get_rank() != 0:
        dist.barrier()
    yield
    if dist.get_rank() == 0:
        dist.barrier()


@torch.no_grad()
def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every process the first process's buffers (DDP broadcasts only the parameters here)."""
    if not is_distributed():
        return
    for buffer in module.buffers():
        if not buffer.is_sparse:  # a sparse buffer (a graph) is built from the training data alike everywhere
            dist.broadcast(buffer, src=0)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_object(obj):
    """The first process's ``obj`` in every process (``obj`` itself when not distributed)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def one_process_config(config):
    """A copy of RecBole ``config`` as a one-process run sees it (what a checkpoint keeps, what an evaluation
    loader that every process reads in full is built with); the copy shares everything else."""
    import copy

    view = copy.copy(config)
    view.final_config_dict = {
        key: value for key, value in config.final_config_dict.items() if key not in ("world_size", "nproc", "offset")
    }
    view.final_config_dict.update(single_spec=True, local_rank=0)
    return view


def close() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


_PATCHED = False


def patch_recbole() -> None:
    """Make RecBole 1.2.1's multi-process path (a config with ``local_rank``) work for the processes of a run
    (started by :func:`spawn` or torchrun); one-process runs are untouched (each patched method falls through to
    RecBole's for them). Applied once; calling it again does nothing.

    RecBole hard-codes NCCL and CUDA: Config opens an NCCL process group at ``ip:port`` and asserts a GPU per
    process; the trainer wraps the model in DDP with ``device_ids=[local_rank]`` (refused for a CPU model); data
    loaders shard every split with padding (a few samples twice) and a fixed seed, and ``evaluate`` averages
    per-process metrics weighted by batches. Patched:

    - Config: RecBole's one-process device choice, then the process's own GPU (or the CPU), and the process group
      (gloo on the CPU, NCCL on GPUs) joined from the environment the launcher set; only the first process logs;
    - the trainer: DDP with device ids on a GPU only; buffers broadcast once from the first process and not at
      every step (every process applies the same updates to them);
    - training loaders: disjoint shards each epoch (the few samples left over dropped, seeded by ``seed``);
      evaluation loaders: not sharded, every process scores every user (:mod:`recbole_galrec.running.trainer`
      takes the first process's result as the run's).
    """
    global _PATCHED
    if _PATCHED:
        return
    from recbole_galrec import compat

    compat.apply()  # RecBole is imported below: numpy's and scipy's aliases first
    from recbole.config import Config
    from recbole.data.dataloader import AbstractDataLoader
    from recbole.trainer import AbstractTrainer

    Config._init_device = _config_init_device(Config._init_device)
    AbstractDataLoader.__init__ = _loader_init(AbstractDataLoader.__init__)
    AbstractTrainer.__init__ = _trainer_init(AbstractTrainer.__init__)
    _PATCHED = True


def _config_init_device(recbole_init_device):
    """Config._init_device: the process's own device and the run's process group."""

    def _init_device(self):
        settings = self.final_config_dict
        if "local_rank" not in settings:
            return recbole_init_device(self)
        local_rank = settings.pop("local_rank")
        recbole_init_device(self)  # RecBole's one-process branch: gpu_id, CUDA_VISIBLE_DEVICES, cuda or cpu
        settings["local_rank"] = local_rank
        if settings["device"].type == "cuda" and settings["use_gpu"]:
            gpus = [gpu for gpu in settings["gpu_id"].split(",") if gpu.strip()]
            if len(gpus) < settings["nproc"]:
                raise ConfigError(
                    f"nproc={settings['nproc']} on GPUs needs a GPU per process: gpu_id '{settings['gpu_id']}' names "
                    f"{len(gpus)}. Give gpu_id: '0,1,...' or run on the CPU with use_gpu: False."
                )
            settings["device"] = torch.device("cuda", local_rank)
            torch.cuda.set_device(settings["device"])
        else:
            settings["device"] = torch.device("cpu")
        init_process_group(settings["device"])
        settings["single_spec"] = False
        if rank() != 0:
            settings.update(state="error", show_progress=False, verbose=False)

    return _init_device


def _loader_init(recbole_loader_init):
    """AbstractDataLoader.__init__: evaluation loaders over every user, disjoint training shards."""
    from recbole.data.dataloader import FullSortEvalDataLoader, NegSampleEvalDataLoader
    from torch.utils.data.distributed import DistributedSampler

    def _init(self, config, dataset, sampler, shuffle=False):
        if not config["single_spec"] and isinstance(self, (FullSortEvalDataLoader, NegSampleEvalDataLoader)):
            config = one_process_config(config)
        recbole_loader_init(self, config, dataset, sampler, shuffle=shuffle)
        shards = self.sampler
        if isinstance(shards, DistributedSampler):
            DistributedSampler.__init__(
                shards, shards.dataset, shuffle=shards.shuffle, seed=int(config["seed"]), drop_last=True
            )

    return _init


def _trainer_init(recbole_trainer_init):
    """AbstractTrainer.__init__: DDP on any device, buffers broadcast once."""
    from torch.nn.parallel import DistributedDataParallel

    def _init(self, config, model):
        if config["single_spec"]:
            return recbole_trainer_init(self, config, model)
        self.config, self.model = config, model
        device = config["device"]
        if device.type == "cuda":
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ids = [device.index] if device.type == "cuda" else None
        self.distributed_model = DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)
        broadcast_buffers(self.model)

    return _init


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(nproc: int, target, *args):
    """Run ``target(*args)`` in ``nproc`` new local processes of one run and return the first process's
    return value. Each process gets the environment torchrun would give it, an equal share of the CPU threads and
    RecBole patched for it (:func:`patch_recbole`); the first one writes to this process's progress sink, if one
    is open (:mod:`recbole_galrec.running.progress`). An error in any process stops them all and is raised here."""
    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    environment = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": str(nproc)}
    threads = max(1, (os.cpu_count() or 1) // nproc)
    worker_args = (environment, threads, progress.sink_path(), results, target, args)
    try:
        mp.start_processes(_worker, args=worker_args, nprocs=nproc, start_method="spawn", join=True)
    except mp.ProcessRaisedException as err:
        message = _exception_line(str(err))
        if not message.startswith("recbole_galrec.errors."):  # not a user-facing error: its traceback helps
            print(err, file=sys.stderr)
        raise TrainingError(f"process {err.error_index} of the run failed: {message}") from None
    except mp.ProcessExitedException as err:
        raise TrainingError(f"process {err.error_index} of the run exited with code {err.exit_code}: {err}") from None
    return results.get() if not results.empty() else None


def _exception_line(traceback_text: str) -> str:
    """The ``Type: message`` line of a formatted traceback (the first line after its last frame)."""
    lines = traceback_text.strip().splitlines()
    frames = [index for index, line in enumerate(lines) if line.startswith("  File ")]
    after = lines[frames[-1] + 1 :] if frames else lines
    return next((line for line in after if line and not line.startswith(" ")), lines[-1])


def _worker(local_rank, environment, threads, progress_file, results, target, args):
    os.environ.update(environment, RANK=str(local_rank), LOCAL_RANK=str(local_rank))
    os.environ["LOCAL_WORLD_SIZE"] = environment["WORLD_SIZE"]
    torch.set_num_threads(threads)
    patch_recbole()
    writes_progress = local_rank == 0 and progress_file
    with progress.to_file(progress_file) if writes_progress else nullcontext():
        result = target(*args)
    if local_rank == 0:
        results.put(result)


def samples_per_epoch(loader) -> int:
    """The training samples one epoch of ``loader`` covers, over all processes of the run."""
    shards = loader.sampler
    if isinstance(shards, DistributedSampler):
        return len(shards) * shards.num_replicas
    return len(loader._dataset)
