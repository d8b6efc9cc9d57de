"""A run's progress as events, one JSON object a line, for a reader in another process (the benchmark's terminal).

Nothing is written unless a sink is open (:func:`to_file`, which the benchmark's worker opens around its run);
only the first process of a multi-process run writes. Every line has ``"event"``; the events, in the order a run
gives them:

- ``restart`` (the benchmark's worker, before anything else): the interrupted run's checkpoint could not serve
  the run, which starts from scratch: ``reason``;
- ``plan``: the run's own model and budget: ``model``, ``max_epochs``, ``eval_step``, ``stopping_step``,
  ``valid_score_bigger`` (:mod:`recbole_galrec.quick_start`, once per run);
- ``training_start`` / ``training_end``: one training through the run path: ``model``, ``external``,
  ``max_epochs`` at the start, ``epochs_run`` and ``best_valid_score`` at the end. ``external`` is true for a
  model trained for the run's inputs (GALRec's SASRec and LightGCN, :mod:`recbole_galrec.external`), that is a
  model other than the one of ``plan``; every event of a training carries ``model`` and ``external``;
- ``epoch``: one training pass: ``epoch`` (from 0), ``seconds`` (the pass alone), ``loss`` (its parts by the
  names RecBole logs: ``{"train loss": x}``, or ``{"train_loss1": x, "train_loss2": y, ...}`` for a loss of
  several parts);
- ``contrast``: after a GALRec epoch, each contrastive term's top-1 share and its chance level: ``epoch``,
  ``shares`` (``{"L1": {"top1": x, "chance": y}, ...}``);
- ``validation``: ``epoch`` (-1: the validation before the first epoch), ``score`` (``valid_metric`` under
  ``eval_protocol``), ``seconds``, and ``filtered`` (the same metric viewed filtered) when the run computes it.

Example::

    {"event": "plan", "model": "GALRec", "max_epochs": 20, "eval_step": 1, "stopping_step": 5, ...}
    {"event": "training_start", "model": "SASRec", "external": true, "max_epochs": 20}
    {"event": "epoch", "model": "SASRec", "external": true, "epoch": 0, "seconds": 1.1, "loss": {"train loss": 59.3}}
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

_sink = None  # the open progress file; None: events go nowhere
_run_model: str | None = None  # the model of the run's plan; a training of any other model is external


@contextmanager
def to_file(path: str):
    """Append the events of the runs inside the block to ``path``, one JSON line each, flushed at once."""
    global _sink, _run_model
    with open(path, "a", encoding="utf-8") as f:
        _sink = f
        try:
            yield
        finally:
            _sink, _run_model = None, None


def sink_path() -> str | None:
    """The path of the open sink (None when none is open)."""
    return _sink.name if _sink is not None else None


def emit(event: str, **fields) -> None:
    """Write one event (no-op without a sink, and in every process of a multi-process run but the first: the
    launcher, :mod:`recbole_galrec.running.distributed` or torchrun, gives each process its ``RANK``)."""
    if _sink is None or int(os.environ.get("RANK", "0")) != 0:
        return
    _sink.write(json.dumps({"event": event, **fields}) + "\n")
    _sink.flush()


def plan(config) -> None:
    """The run's own model and budget; a later training of another model is then external."""
    global _run_model
    _run_model = config["model"]
    emit(
        "plan",
        model=config["model"],
        max_epochs=config["epochs"],
        eval_step=config["eval_step"],
        stopping_step=config["stopping_step"],
        valid_score_bigger=config["valid_metric_bigger"],
    )


def _training(config) -> dict:
    """The fields that say whose training an event belongs to."""
    return {"model": config["model"], "external": _run_model is not None and config["model"] != _run_model}


def training_start(config, resumed: dict | None = None) -> None:
    """``resumed``: a resumed run's ``epochs`` and ``seconds`` before the resume, its best score and best epoch."""
    emit("training_start", **_training(config), max_epochs=config["epochs"], resumed=resumed)


def training_end(config, epochs_run: int, best_valid_score: float) -> None:
    emit("training_end", **_training(config), epochs_run=epochs_run, best_valid_score=float(best_valid_score))


def epoch(config, epoch_idx: int, seconds: float, loss) -> None:
    """One training pass; ``loss`` as RecBole's ``_train_epoch`` returns it (a float, or a tuple of parts)."""
    if isinstance(loss, tuple):
        parts = {f"train_loss{index}": float(part) for index, part in enumerate(loss, 1)}
    else:
        parts = {"train loss": float(loss)}
    emit("epoch", **_training(config), epoch=epoch_idx, seconds=seconds, loss=parts)


def contrast(config, epoch_idx: int, shares: dict[str, tuple[float, float]]) -> None:
    """Each contrastive term's ``(top-1 share, chance level)`` of one epoch."""
    terms = {term: {"top1": float(top1), "chance": float(chance)} for term, (top1, chance) in shares.items()}
    emit("contrast", **_training(config), epoch=epoch_idx, shares=terms)


def validation(config, epoch_idx: int, score: float, seconds: float, filtered: float | None = None) -> None:
    """``score``: the valid_metric under eval_protocol; ``filtered``: the same metric viewed filtered (None when
    the run does not compute it)."""
    fields = {} if filtered is None else {"filtered": float(filtered)}
    emit("validation", **_training(config), epoch=epoch_idx, score=float(score), seconds=seconds, **fields)
