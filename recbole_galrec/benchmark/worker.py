"""One run of a benchmark, in its own Python process: train, evaluate, write the run's record file."""

from __future__ import annotations

import json
import resource
import shutil
import sys
import traceback
from pathlib import Path

from recbole_galrec.benchmark.store import atomic_write_text
from recbole_galrec.errors import ResumeError
from recbole_galrec.running.result import RunResult

# Keys of a run record copied as they are from the RunResult fields of the same name.
RESULT_KEYS = [
    "best_valid_score",
    "best_valid_epoch",
    "epochs_run",
    "max_epochs",
    "stopped_early",
    "time_budget_spent",
    "seconds_per_epoch",
    "train_samples_per_second",
    "time_to_best_seconds",
    "valid_curve",
    "train_seconds",
    "test_seconds",
    "test_users",
    "users_scored_per_second",
    "checkpoint",
]
# Every key of a run record; a failed run has None where it has no value. Paths are relative to the output.
RUN_KEYS = [
    "model",
    "recbole_model",
    "seed",
    "status",
    "error",
    "test",
    "test_viewed_filtered",
    "valid",
    "valid_viewed_filtered",
    *RESULT_KEYS,
    "wall_seconds",
    "resumed",
    "peak_rss_mib",
    "peak_gpu_mib",
    "trainable_params",
    "total_params",
    "jobs",
    "log",
    "per_user",
    "external_checkpoints",
]
ERROR_LINES = 20


def peak_memory_mib() -> tuple[float, float | None]:
    """Peak resident memory of this process and peak CUDA memory allocated (None without CUDA), in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mib = rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux
    gpu_mib = None
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        gpu_mib = torch.cuda.max_memory_allocated() / 2**20
    return rss_mib, gpu_mib


def empty_run(label: str, model: str, seed: int) -> dict:
    """A run record with every key, the values still unknown."""
    return {**dict.fromkeys(RUN_KEYS), "model": label, "recbole_model": model, "seed": seed}


def run_from_result(run: dict, result: RunResult) -> dict:
    """Fill a run record from the result ``run_recbole_galrec`` returns (paths as the worker saw them)."""
    return {
        **run,
        **{key: getattr(result, key) for key in RESULT_KEYS},
        "status": "ok",
        "test": result.test_result,
        "test_viewed_filtered": result.test_viewed_filtered,
        "valid": result.best_valid_result,
        "valid_viewed_filtered": result.valid_viewed_filtered,
        "per_user": result.per_user_file,
        "trainable_params": result.parameters["trainable"],
        "total_params": result.parameters["total"],
    }


def last_lines(text: str, count: int = ERROR_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-count:])


def worker(spec_file: str) -> int:
    """Execute the run described by ``spec_file`` and write its record; failures are recorded, not raised. The
    run's progress events go to the spec's ``progress_file`` (:mod:`recbole_galrec.running.progress`), which the
    benchmark's parent process reads."""
    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    run = empty_run(spec["label"], spec["model"], spec["seed"])
    try:
        from recbole_galrec.quick_start import run_recbole_galrec
        from recbole_galrec.running import progress

        def start(resume: str | None) -> RunResult:
            with progress.to_file(spec["progress_file"]):
                return run_recbole_galrec(
                    spec["model"],
                    spec["dataset"],
                    config_file_list=spec["config_files"],
                    config_dict=spec["config_dict"],
                    result_file=spec["result_file"],
                    per_user_file=spec["per_user_file"],
                    resume=resume,
                )

        resume = spec.get("resume")
        try:
            result = start(resume)
        except ResumeError as err:  # not this run's checkpoint (settings changed since): the run starts afresh
            if not resume:
                raise
            print(f"cannot continue the interrupted run ({err}); it starts afresh", flush=True)
            with progress.to_file(spec["progress_file"]):  # said on the benchmark's terminal too
                progress.emit("restart", reason=str(err))
            shutil.rmtree(spec["config_dict"]["checkpoint_dir"], ignore_errors=True)
            resume, result = None, start(None)
        run = run_from_result(run, result)
        run["resumed"] = bool(resume)
    except Exception:  # any failure of a run is recorded, and the benchmark goes on
        run["status"] = "failed"
        run["error"] = last_lines(traceback.format_exc())
        traceback.print_exc()
    run["peak_rss_mib"], run["peak_gpu_mib"] = peak_memory_mib()
    atomic_write_text(Path(spec["record_file"]), json.dumps(run, indent=2))
    return 0 if run["status"] == "ok" else 1
