"""The benchmark's parent process: plan the runs, start each in its own process (up to ``jobs`` at once),
show their progress on the terminal, and record each finished run in the results file (the only writer)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from recbole_galrec.benchmark import plan as planning
from recbole_galrec.benchmark.report import write_outputs
from recbole_galrec.benchmark.reuse import take_runs
from recbole_galrec.benchmark.store import (
    CHECKPOINT_FOLDER,
    check_output,
    dataset_folder,
    done_runs,
    find_run,
    load_results,
    machine_info,
    path_replacements,
    public_path,
    public_settings,
    record_run,
    relative_to,
    scrub_paths,
)
from recbole_galrec.benchmark.worker import empty_run, last_lines
from recbole_galrec.config import check_user_settings, profile_file, profile_files
from recbole_galrec.errors import ConfigError
from recbole_galrec.running.checkpoints import data_fingerprint

logger = logging.getLogger("recbole_galrec.benchmark")

WORKER_FLAG = "--_one-run"
POLL_SECONDS = 0.5


@dataclass
class Progress:
    """What a run's progress events (:mod:`recbole_galrec.running.progress`) have shown so far, read line by line
    as its progress file grows, and the terminal's message for each."""

    max_epochs: int | None = None
    bigger: bool = True  # whether a bigger validation score is better
    main_start: float | None = None
    epochs_done: int = 0
    best: float | None = None
    best_epoch: int | None = None
    offset: int = 0
    partial: str = ""

    def read(self, progress_file: Path) -> list[str]:
        """Messages for the terminal from the file's new complete lines (none while the file does not exist)."""
        if not progress_file.is_file():
            return []
        with open(progress_file, encoding="utf-8", errors="replace") as f:
            f.seek(self.offset)
            text = f.read()
            self.offset = f.tell()
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        return [message for line in lines if (message := self.line(line))]

    def line(self, line: str) -> str | None:
        """The message of one line of the progress file (None: not one for the terminal, or not an event)."""
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return None
        return self.event(event) if isinstance(event, dict) else None

    def event(self, event: dict) -> str | None:
        kind = event.get("event")
        external = f"external {event['model']}: " if event.get("external") else ""
        if kind == "plan":
            self.max_epochs, self.bigger = event["max_epochs"], event.get("valid_score_bigger", True)
        elif kind == "training_start" and not external:
            resumed = event.get("resumed") or {}
            self.main_start = time.perf_counter() - resumed.get("seconds", 0.0)
            if resumed:
                self.epochs_done, self.best, self.best_epoch = resumed["epochs"], resumed["best"], resumed["best_epoch"]
        elif kind == "restart":  # its interrupted run's checkpoint could not serve it: the run starts from scratch
            self.epochs_done, self.best, self.best_epoch = 0, None, None
            return f"cannot continue from the interrupted run's checkpoint, starts afresh: {event['reason']}"
        elif kind == "contrast":
            shares = ", ".join(
                f"{term} {share['top1']:.4f} (chance {share['chance']:.4f})" for term, share in event["shares"].items()
            )
            return f"{external}epoch {event['epoch']} contrastive top-1 share: {shares}"
        elif kind == "epoch":
            if not external:
                self.epochs_done = event["epoch"] + 1
            losses = ", ".join(f"{name}: {value:.4f}" for name, value in event["loss"].items())
            return f"{external}epoch {event['epoch']} trained in {event['seconds']:.1f} s ({losses})"
        elif kind == "validation":
            return self.validation(event["epoch"], event["score"], external)
        return None

    def validation(self, epoch: int, score: float, external: str) -> str:
        if external:
            return f"{external}epoch {epoch} valid score {score:.4f}"
        if epoch == -1:
            self.best, self.best_epoch = score, -1
            return f"before training: valid score {score:.4f}"
        if self.best is None or (score >= self.best if self.bigger else score <= self.best):  # as RecBole decides
            self.best, self.best_epoch = score, epoch
        when = "before training" if self.best_epoch == -1 else f"at epoch {self.best_epoch}"
        best = f"best {self.best:.4f} {when}"
        return f"epoch {epoch} valid score {score:.4f} ({best}); {self.timing()}"

    def timing(self) -> str:
        if self.main_start is None or not self.epochs_done:
            return ""
        elapsed = time.perf_counter() - self.main_start
        text = f"{elapsed / 60:.1f} min of training"
        if self.max_epochs:
            left = elapsed / self.epochs_done * max(self.max_epochs - self.epochs_done, 0)
            text += f", at most {left / 60:.1f} min left ({self.epochs_done} of {self.max_epochs} epochs)"
        return text


@dataclass
class Running:
    """A run whose process has been started."""

    label: str
    model: str
    seed: int
    proc: subprocess.Popen
    log_file: Path
    progress_file: Path
    record_file: Path
    start: float
    external: dict | None
    resumed: str | None = None  # the interrupted run's checkpoint it continues from
    progress: Progress = field(default_factory=Progress)


@dataclass
class Benchmark:
    """One invocation: what to run, where, and with what."""

    dataset: str
    labels: list[str]
    seeds: list[int]
    out: Path
    config_files: list[str]
    overrides: dict
    profile: str | None
    jobs: int = 1
    start: str = "SASRec"  # the label whose runs give GALRec its external SASRec

    @property
    def folder(self) -> Path:
        return self.out / "runs" / self.dataset

    def start_run(self, label: str, seed: int, external: dict | None, retry: bool = False) -> Running:
        """Start one (label, seed) in a fresh Python process; ``external``: GALRec's checkpoints by model. A run
        interrupted with the benchmark (no record) continues from its last epoch's checkpoint when it has one; a
        ``retry`` of a failed run starts clean."""
        model, config_dict = planning.run_config(label, self.overrides, seed)
        files = profile_files(self.profile, model) + [os.path.abspath(path) for path in self.config_files]
        stem = planning.run_stem(label, seed)
        checkpoints = self.folder / CHECKPOINT_FOLDER  # the output folder is made here, when the first run starts
        checkpoints.mkdir(parents=True, exist_ok=True)
        (checkpoints / ".gitignore").write_text("*\n", encoding="utf-8")  # checkpoints are never committed
        resume = None if retry else interrupted_checkpoint(checkpoints / stem)
        if resume is None:
            shutil.rmtree(checkpoints / stem, ignore_errors=True)
        config_dict["checkpoint_dir"] = str(checkpoints / stem)
        if external:
            given = dict(config_dict.get("external_checkpoints") or {})
            external = {name: path for name, path in external.items() if name not in given}  # the user's win
            config_dict["external_checkpoints"] = {**external, **given}
        spec = {
            "label": label,
            "model": model,
            "seed": seed,
            "dataset": self.dataset,
            "config_files": files,
            "config_dict": config_dict,
            "result_file": str(self.folder / f"{stem}.result.json"),
            "record_file": str(self.folder / f"{stem}.record.json"),
            "per_user_file": str(self.folder / f"{stem}.users.csv.gz"),
            "progress_file": str(self.folder / f"{stem}.progress.jsonl"),
            "resume": resume,
        }
        spec_file, log_file = self.folder / f"{stem}.spec.json", self.folder / f"{stem}.log"
        spec_file.write_text(json.dumps(spec, indent=2), encoding="utf-8")
        record_file, progress_file = Path(spec["record_file"]), Path(spec["progress_file"])
        for stale in (record_file, progress_file, Path(spec["per_user_file"])):
            stale.unlink(missing_ok=True)
        with open(log_file, "a" if resume else "w", encoding="utf-8") as log:  # a resumed run's log goes on
            proc = subprocess.Popen(
                [sys.executable, "-m", "recbole_galrec.benchmark", f"{WORKER_FLAG}={spec_file}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=planning.run_environment(self.jobs, dict(os.environ)),
            )
        start = time.perf_counter()
        return Running(label, model, seed, proc, log_file, progress_file, record_file, start, external, resume)

    def finish_run(self, running: Running, wall: float, scrub: dict[str, str]) -> dict:
        """The record of a finished run, its paths relative to the output folder (its progress file removed: the
        log holds the same and more)."""
        running.progress_file.unlink(missing_ok=True)
        if running.record_file.is_file():
            run = json.loads(running.record_file.read_text(encoding="utf-8"))
        else:  # the process died before writing its record (killed, out of memory, ...)
            run = empty_run(running.label, running.model, running.seed)
            run["status"] = "failed"
            tail = last_lines(running.log_file.read_text(encoding="utf-8", errors="replace"))
            run["error"] = f"the run's process exited with status {running.proc.returncode}\n{tail}"
        text = running.log_file.read_text(encoding="utf-8", errors="replace")
        running.log_file.write_text(scrub_paths(text, scrub), encoding="utf-8")
        if run.get("error"):
            run["error"] = scrub_paths(run["error"], scrub)
        run["wall_seconds"] = wall
        run["jobs"] = self.jobs
        run["log"] = relative_to(str(running.log_file), self.out)
        run["per_user"] = relative_to(run.get("per_user"), self.out)
        run["checkpoint"] = relative_to(run.get("checkpoint"), self.out)
        if running.external:
            run["external_checkpoints"] = {name: relative_to(path, self.out) for name, path in running.external.items()}
        return run


def _external_for(bench: Benchmark, results: dict, label: str, seed: int) -> tuple[dict | None, str | None]:
    """GALRec's external checkpoints from this benchmark's runs, or why the run cannot start."""
    deps = planning.dependencies(label, seed, bench.labels, bench.start)
    slot = {provider: name for name, provider in planning.external_providers(bench.start).items()}
    if not deps:
        return None, None
    external = {}
    for dep_label, dep_seed in deps:
        dep = find_run(results, dep_label, dep_seed)
        if dep is None or dep.get("status") != "ok":
            log = f" (log: {dep['log']})" if dep and dep.get("log") else ""
            return None, f"not run: {dep_label} seed {dep_seed}, whose checkpoint it uses, failed{log}"
        path = bench.out / dep["checkpoint"] if dep.get("checkpoint") else None
        if path is None or not path.is_file():
            return None, (
                f"not run: {dep_label} seed {dep_seed}'s checkpoint ({dep.get('checkpoint') or 'not recorded'}) "
                f"is missing; run {dep_label} seed {dep_seed} again (remove its record from the JSON) or leave "
                f"{dep_label} out of --models so that GALRec trains its own"
            )
        external[slot[dep_label]] = str(path)
    return external, None


def interrupted_checkpoint(folder: Path) -> str | None:
    """The last epoch's checkpoint (``*-last.pth``) an interrupted run left in its checkpoint ``folder`` (the newest,
    should there be several), or None."""
    found = sorted(folder.glob("*-last.pth"), key=lambda path: path.stat().st_mtime) if folder.is_dir() else []
    return str(found[-1]) if found else None


def run_benchmark(
    dataset: str,
    labels: list[str],
    seeds: list[int],
    out: Path,
    config_files: list[str],
    overrides: dict,
    profile: str | None,
    command: str,
    jobs: int = 1,
    reference: str | None = None,
    galrec_start: str = "SASRec",
    runs_from: Path | None = None,
) -> dict:
    """Run each (label, seed) not yet recorded as ok (nor taken from ``runs_from``, another benchmark's output), up
    to ``jobs`` at once, rewriting the outputs after each."""
    for label in labels:
        planning.resolve_label(label)
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, not {jobs}.")
    planning.check_overrides(overrides)
    profile_file(profile)  # an unknown profile fails before any run
    if check_user_settings(config_files, overrides).get("nproc", 1) > 1:
        raise ConfigError(
            f"nproc={overrides.get('nproc', 'in a config file')}: the benchmark runs each run as one process (its "
            "timings compare models on equal terms); a multi-process run is run_recbole_galrec.py --nproc=N."
        )
    planning.external_providers(galrec_start)  # an unknown start fails before any run
    bench = Benchmark(dataset, labels, seeds, out, config_files, overrides, profile, jobs, galrec_start)
    check_output(out, bench.folder)  # made when the first run starts: a benchmark refused before leaves nothing
    data_folder = dataset_folder(dataset, config_files, overrides)
    header = {
        "dataset": dataset,
        "command": command,
        "profile": profile or None,
        "config_files": [public_path(path) for path in config_files],
        "machine": machine_info(),
        "settings": public_settings(overrides),
        "data": data_fingerprint(data_folder, dataset),
        "jobs": jobs,
        "reference": reference,
        "galrec_start": galrec_start,
    }
    header = json.loads(json.dumps(header))  # as it reads back from the file, for the comparison on resume
    results = load_results(out / f"{dataset}.json", header)
    runs = planning.order_plan(labels, seeds, galrec_start)
    if runs_from is not None:
        results = take_runs(results, runs_from, out, header, runs)
    recorded = {run["model"] for run in results["runs"]}
    if reference is not None and reference not in labels and reference not in recorded:
        raise ConfigError(
            f"--reference={reference} is neither among --models ({', '.join(labels)}) nor recorded in "
            f"{out / f'{dataset}.json'}: name one of the models."
        )
    scrub = path_replacements(overrides, data_folder, out)
    number = {key: i for i, key in enumerate(runs, 1)}
    pending = [key for key in runs if key not in done_runs(results)]
    failed = {(run["model"], run["seed"]) for run in results["runs"] if run.get("status") != "ok"}
    for key in runs:
        if key not in pending:
            logger.info(f"{_prefix(number, len(runs), *key)}: skipped, already ok in {out / f'{dataset}.json'}")
    running: dict[tuple[str, int], Running] = {}
    start = time.perf_counter()
    try:
        while pending or running:
            for key in list(pending):
                if len(running) >= jobs:
                    break
                if any(dep in pending or dep in running for dep in planning.dependencies(*key, labels, galrec_start)):
                    continue  # waits for the same seed's SASRec and LightGCN
                pending.remove(key)
                external, blocked = _external_for(bench, results, *key)
                if blocked:
                    model = planning.resolve_label(key[0])[0]
                    run = {**empty_run(key[0], model, key[1]), "status": "failed", "error": blocked}
                    _record(bench, results, run, number, len(runs), start)
                    continue
                logger.info(f"{_prefix(number, len(runs), *key)}: start (elapsed {time.perf_counter() - start:.1f} s)")
                job = running[key] = bench.start_run(*key, external, retry=key in failed)
                if job.resumed:
                    logger.info(f"{_prefix(number, len(runs), *key)}: interrupted before, continues from {job.resumed}")
            time.sleep(POLL_SECONDS)
            for key, job in list(running.items()):
                finished = job.proc.poll() is not None  # then its last events are in the file read next
                for message in job.progress.read(job.progress_file):
                    logger.info(f"{_prefix(number, len(runs), *key)}: {message}")
                if finished:
                    del running[key]
                    run = bench.finish_run(job, time.perf_counter() - job.start, scrub)
                    _record(bench, results, run, number, len(runs), start)
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): the runs go down with the benchmark
        _stop([job.proc for job in running.values()])
        raise
    bench.folder.mkdir(parents=True, exist_ok=True)
    write_outputs(results, out)
    logger.info(f"results: {out / f'{dataset}.json'}, {out / f'{dataset}.md'}, {out / f'{dataset}.png'}")
    return results


def _record(bench: Benchmark, results: dict, run: dict, number: dict, total: int, start: float) -> None:
    bench.folder.mkdir(parents=True, exist_ok=True)
    record_run(results, run)
    write_outputs(results, bench.out)
    wall = f", {run['wall_seconds']:.1f} s" if run.get("wall_seconds") is not None else ""
    logger.info(
        f"{_prefix(number, total, run['model'], run['seed'])}: {_run_outcome(run)}{wall} "
        f"(elapsed {time.perf_counter() - start:.1f} s)"
    )


def _prefix(number: dict, total: int, label: str, seed: int) -> str:
    return f"[{number[(label, seed)]}/{total}] {label} seed {seed}"


def _stop(procs: list[subprocess.Popen], grace: float = 30.0) -> None:
    """Terminate worker processes, killing those that have not exited ``grace`` seconds later."""
    for proc in procs:
        proc.terminate()
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run_outcome(run: dict) -> str:
    if run["status"] == "ok":
        return f"ok, ndcg@10 {run['test'].get('ndcg@10', float('nan')):.4f}"
    first = (run.get("error") or "").strip().splitlines()[-1:] or ["unknown error"]
    return f"FAILED ({first[0]}" + (f"; log: {run['log']})" if run.get("log") else ")")
