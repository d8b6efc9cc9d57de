"""Every compatibility fix RecBole 1.2.1 needs on a current Python stack, in one place.

RecBole 1.2.1 (the newest release) predates numpy 2, scipy 1.13 and torch 2.6. With the fixes below it
runs on numpy 1.26 and 2.x and on scipy 1.12 up to the newest 1.x (``setup.cfg`` admits both; the versions
tested are listed in ``docs/install.md``). Nothing here runs at import: :func:`apply` is called when a config
is built (:func:`recbole_galrec.config.build_config`) and when a checkpoint is read back
(:mod:`recbole_galrec.recommend`). The one other patch of RecBole is distributed running's
(:func:`recbole_galrec.running.distributed.patch_recbole`): RecBole's multi-process path made to work on a CPU
and with disjoint shards.

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


def apply() -> None:
    """Apply every fix once; calling it again does nothing."""
    global _APPLIED
    if _APPLIED:
        return
    _numpy_aliases()
    _scipy_dok_update()
    _torch_full_checkpoint_load()
    _autograd_anomaly_mode_off()
    _APPLIED = True
