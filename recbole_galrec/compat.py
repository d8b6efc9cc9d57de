"""Every compatibility fix RecBole 1.2.1 needs on a current Python stack, in one place.

RecBole 1.2.1 (the newest release) predates numpy 2, scipy 1.13 and torch 2.6. With the fixes below it
runs on numpy 1.26 and 2.x and on scipy 1.12 up to the newest 1.x (``setup.cfg`` admits both; the versions
tested are listed in ``docs/install.md``). It also lets RecBole's multi-process path run on a CPU
(:func:`_distributed_on_any_device`). Nothing else in ``recbole_galrec`` patches RecBole or its
dependencies, and nothing here runs at import: :func:`apply` is called once by the quick start.

Seen under numpy 2 and left alone: RecBole's ``Interaction.sort`` calls ``np.argsort`` on a torch tensor;
numpy converts it, sorts, and wraps the result back through torch's ``Tensor.__array_wrap__``, which takes
one argument, so numpy (2.0 to 2.5 at least) emits a ``DeprecationWarning`` (hidden by default) and the
result is the same torch tensor as under numpy 1.

Not fixable here: pandas 3 (token_seq fields fail to load, ``fillna(inplace=True)`` becomes a no-op
under copy-on-write), hence ``pandas<3`` in ``setup.cfg``. ``recbole.quick_start`` imports ray, which
needs ``pkg_resources``; this package never imports it (see :mod:`recbole_galrec.quick_start`).
"""

import os

import numpy as np
import scipy.sparse as sp

_APPLIED = False


def _numpy_aliases() -> None:
    # numpy >= 2 removed ``np.float_`` and friends; RecBole's Config.compatibility_settings reads them, so
    # ``Config()`` crashes with "np.float_ was removed" without them. RecBole's metrics use ``np.float`` (removed
    # in numpy 1.24): ``Config()`` sets it and its friends in compatibility_settings, but a config read back from a
    # checkpoint (recbole_galrec.recommend) never runs that, and evaluating then fails with "module 'numpy' has no
    # attribute 'float'". Both sets, with the values RecBole gives them.
    for alias, target in (
        ("float_", np.float64),
        ("complex_", np.complex128),
        ("unicode_", np.str_),
        ("bool8", np.bool_),
        ("bool", np.bool_),
        ("int", np.int_),
        ("float", np.float64),
        ("complex", np.complex128),
        ("object", np.object_),
        ("str", np.str_),
        ("long", np.int_),
        ("unicode", np.str_),
    ):
        if alias not in np.__dict__:
            setattr(np, alias, target)


def _scipy_dok_update() -> None:
    # scipy >= 1.13 dropped ``dok_matrix._update``; LightGCN, NGCF, NCL, ... build their normalised
    # adjacency matrix with it and fail with "'dok_matrix' object has no attribute '_update'".
    if hasattr(sp.dok_matrix, "_update"):
        return

    def _update(self, data):
        for key, value in data.items():
            self[key] = value

    sp.dok_matrix._update = _update


def _torch_full_checkpoint_load() -> None:
    # torch >= 2.6 loads with ``weights_only=True`` by default. RecBole pickles its Config into every
    # checkpoint and reloads the best one for the test phase (``Trainer.evaluate(load_best_model=True)``),
    # which then fails with "UnpicklingError: Weights only load failed". The checkpoints are the ones
    # this run wrote; torch's documented switch restores the full load for call sites that do not ask
    # for ``weights_only`` explicitly (GALRec's own loaders pass it explicitly).
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


def _autograd_anomaly_mode_off() -> None:
    # RecBole 1.2.1's SINE module calls ``torch.autograd.set_detect_anomaly(True)`` at import, and importing any
    # of RecBole's sequential models (SASRec too) imports it: anomaly mode then records a Python stack trace for
    # every autograd operation and checks every backward output, for every model of the process. It changes
    # no number; it only makes training slow. Import the package now and switch it off.
    import recbole.model.sequential_recommender  # noqa: F401  (the import that switches anomaly mode on)
    import torch

    torch.autograd.set_detect_anomaly(False)


def _distributed_on_any_device() -> None:
    # RecBole 1.2.1's multi-process path (a config with ``local_rank``) hard-codes NCCL and CUDA: Config opens an
    # NCCL process group at ``ip:port`` and asserts a GPU per process; the trainer wraps the model in DDP with
    # ``device_ids=[local_rank]`` (refused for a CPU model); data loaders shard every split with padding (a few
    # samples twice) and a fixed seed, and ``evaluate`` averages per-process metrics weighted by batches. Here, for
    # processes started by recbole_galrec.running.distributed:
    # - Config: RecBole's one-process device choice, then the process's own GPU (or the CPU), and the process group
    #   (gloo on the CPU, NCCL on GPUs) joined from the environment the launcher set; only the first process logs;
    # - the trainer: DDP with device ids on a GPU only; buffers broadcast once from the first process and not at
    #   every step (every process applies the same updates to them);
    # - training loaders: disjoint shards each epoch (the few samples left over dropped, seeded by ``seed``);
    #   evaluation loaders: not sharded, every process scores every user (recbole_galrec.running.trainer then takes the
    #   first process's result as the run's).
    import torch
    from recbole.config import Config
    from recbole.data.dataloader import AbstractDataLoader, FullSortEvalDataLoader, NegSampleEvalDataLoader
    from recbole.trainer import AbstractTrainer
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data.distributed import DistributedSampler

    from recbole_galrec.errors import ConfigError
    from recbole_galrec.running import distributed

    config_init_device = Config._init_device
    loader_init = AbstractDataLoader.__init__
    trainer_init = AbstractTrainer.__init__

    def _init_device(self):
        settings = self.final_config_dict
        if "local_rank" not in settings:
            return config_init_device(self)
        local_rank = settings.pop("local_rank")
        config_init_device(self)  # RecBole's one-process branch: gpu_id, CUDA_VISIBLE_DEVICES, cuda or cpu
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
        distributed.init_process_group(settings["device"])
        settings["single_spec"] = False
        if distributed.rank() != 0:
            settings.update(state="error", show_progress=False, verbose=False)

    def _loader_init(self, config, dataset, sampler, shuffle=False):
        if not config["single_spec"] and isinstance(self, (FullSortEvalDataLoader, NegSampleEvalDataLoader)):
            config = distributed.one_process_config(config)
        loader_init(self, config, dataset, sampler, shuffle=shuffle)
        shards = self.sampler
        if isinstance(shards, DistributedSampler):
            DistributedSampler.__init__(
                shards, shards.dataset, shuffle=shards.shuffle, seed=int(config["seed"]), drop_last=True
            )

    def _trainer_init(self, config, model):
        if config["single_spec"]:
            return trainer_init(self, config, model)
        self.config, self.model = config, model
        device = config["device"]
        if device.type == "cuda":
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ids = [device.index] if device.type == "cuda" else None
        self.distributed_model = DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)
        distributed.broadcast_buffers(self.model)

    Config._init_device = _init_device
    AbstractDataLoader.__init__ = _loader_init
    AbstractTrainer.__init__ = _trainer_init


def apply() -> None:
    """Apply every fix once; calling it again does nothing."""
    global _APPLIED
    if _APPLIED:
        return
    _numpy_aliases()
    _scipy_dok_update()
    _torch_full_checkpoint_load()
    _autograd_anomaly_mode_off()
    _distributed_on_any_device()
    _APPLIED = True
