"""Faults a run meets, each a message (exit status 2, no traceback) before any training; results that belong to
their own run (own checkpoint files, a resume checked against the run, counters over the whole resumed run);
outputs that are whole or absent."""

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_SASREC

POP = {"epochs": 1, "show_progress": False}


def _no_data(*args, **kwargs):
    raise AssertionError("the run loaded its data before the fault was found")


@pytest.fixture
def no_data(monkeypatch):
    """The run fails the test if it gets as far as loading its data."""
    monkeypatch.setattr("recbole_galrec.quick_start.load_data", _no_data)


def _main(argv, capsys) -> tuple[int, str]:
    from recbole_galrec.cli import main

    status = main(argv)
    return status, capsys.readouterr().err


@pytest.fixture(scope="module")
def pop_run(tmp_path_factory):
    """Pop trained on ml-100k (one epoch: RecBole's trainer of memory-based models) and a copy of its checkpoint."""
    from recbole_galrec.quick_start import run_recbole_galrec

    root = tmp_path_factory.mktemp("pop")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        settings = {**POP, "checkpoint_dir": str(root / "saved")}
        result = run_recbole_galrec("Pop", "ml-100k", config_dict=settings)
    shutil.copy(result.checkpoint, root / "best.pth")
    return {"result": result, "best": root / "best.pth", "settings": settings}


def _toy_dataset(root: Path) -> Path:
    """``root/toy``: 20 users with 8 interactions each and a user ``solo`` with one; 30 items with a name
    (token_seq) and a genre (token)."""
    folder = root / "toy"
    folder.mkdir()
    inter = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user in range(1, 21):
        inter += [f"u{user}\ti{(3 * user + 7 * step) % 30 + 1}\t{100 * user + step}" for step in range(8)]
    inter.append("solo\ti5\t5000")
    (folder / "toy.inter").write_text("\n".join(inter) + "\n", encoding="utf-8")
    items = ["item_id:token\tname:token_seq\tgenre:token"]
    items += [f"i{item}\tFilm {item} Story\tg{item % 3}" for item in range(1, 31)]
    (folder / "toy.item").write_text("\n".join(items) + "\n", encoding="utf-8")
    return folder


def _toy_settings(root: Path) -> dict:
    """A tiny SASRec on the toy dataset under ``root`` (item text: its ``name`` field)."""
    return {
        **TINY_SASREC,
        "data_path": str(root),
        "checkpoint_dir": str(root / "saved"),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "name", "genre"]},
        "item_text_fields": ["name"],
    }


@pytest.fixture(scope="module")
def toy_sasrec(tmp_path_factory):
    """A tiny SASRec trained one epoch on the toy dataset."""
    from recbole_galrec.quick_start import run_recbole_galrec

    root = tmp_path_factory.mktemp("toy")
    _toy_dataset(root)
    settings = _toy_settings(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        result = run_recbole_galrec("SASRec", "toy", config_dict=settings)
    return {"root": root, "checkpoint": result.checkpoint}


# ---------------------------------------------------------------------------------------------- 1: checkpoint names
class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(2))

    def other_parameter(self):
        return None

    def load_other_parameter(self, para):
        pass


def test_two_trainers_started_in_the_same_second_get_their_own_files(workdir, monkeypatch):
    from recbole.trainer import Trainer

    from recbole_galrec.config import build_config
    from recbole_galrec.running.checkpoints import last_file
    from recbole_galrec.running.trainer import run_trainer

    monkeypatch.setattr("recbole.trainer.trainer.get_local_time", lambda: "Jan-01-2026_00-00-00")
    config = build_config("Pop", "ml-100k", config_dict={"checkpoint_dir": str(workdir / "saved")})
    first, second = run_trainer(Trainer)(config, _Tiny()), run_trainer(Trainer)(config, _Tiny())
    assert first.saved_model_file != second.saved_model_file
    assert last_file(first.saved_model_file) != last_file(second.saved_model_file)
    assert os.path.basename(first.saved_model_file).startswith("Pop-Jan-01-2026_00-00-00")


def test_a_file_another_live_run_writes_is_refused(tmp_path):
    from recbole_galrec.errors import ConfigError
    from recbole_galrec.running import checkpoints

    path = str(tmp_path / "Pop-run.pth")
    claim = checkpoints.claim(path)
    with pytest.raises(ConfigError, match=f"another run \\(process {os.getpid()}\\) is writing '{path}'"):
        checkpoints.claim(path)
    claim.release()
    checkpoints.claim(path).release()  # free again once the first run is done
    assert not list(tmp_path.iterdir())


def test_resuming_the_files_of_a_live_run_is_refused(pop_run, workdir, capsys, no_data):
    from recbole_galrec.running import checkpoints

    best_file = torch.load(pop_run["best"], weights_only=False)["best_file"]
    held = checkpoints.claim(best_file)  # as the run that writes them holds them while it lives
    args = [f"--{key}={value}" for key, value in pop_run["settings"].items()]
    try:
        status, err = _main(["--model=Pop", f"--resume={pop_run['best']}", *args], capsys)
    finally:
        held.release()
    assert status == 2 and f"another run (process {os.getpid()}) is writing '{best_file}'" in err, err


# ------------------------------------------------------------------------------------- 2: resume is this run's
def test_resume_refuses_a_checkpoint_of_other_settings(pop_run, workdir, capsys, no_data):
    args = [f"--{key}={value}" for key, value in pop_run["settings"].items()]
    checkpoint = pop_run["best"]
    status, err = _main(["--model=Pop", f"--resume={checkpoint}", *args, "--MAX_ITEM_LIST_LENGTH=30"], capsys)
    assert status == 2 and "Traceback" not in err, err
    assert f"'{checkpoint}'" in err and "MAX_ITEM_LIST_LENGTH: checkpoint 50, this run 30" in err


def test_resume_refuses_a_checkpoint_of_other_data(toy_sasrec, workdir, capsys, no_data):
    """The same settings on a copy of the dataset with one row less: refused, naming the file that differs."""
    shutil.copytree(toy_sasrec["root"] / "toy", workdir / "toy")
    inter = workdir / "toy" / "toy.inter"
    inter.write_text("".join(inter.read_text(encoding="utf-8").splitlines(keepends=True)[:-1]), encoding="utf-8")
    settings = {**_toy_settings(toy_sasrec["root"]), "data_path": str(workdir)}
    args = [f"--{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in settings.items()]
    checkpoint = toy_sasrec["checkpoint"]
    status, err = _main(["--model=SASRec", "--dataset=toy", f"--resume={checkpoint}", *args], capsys)
    assert status == 2 and "Traceback" not in err, err
    assert f"'{checkpoint}'" in err and "other data: toy.inter differs" in err


# ------------------------------------------------------------------------------- 6: a resumed run's counters
def test_a_resumed_run_counts_the_whole_run(workdir, monkeypatch):
    """A run resumed from the checkpoint written after its first epoch reports the samples and times of both
    epochs, as the uninterrupted run does. Its two validations tie, and the best is the later one, as RecBole
    decides (its checkpoint, best epoch and time to best)."""
    from recbole_galrec.quick_start import run_recbole_galrec
    from recbole_galrec.running import trainer as trainer_module
    from recbole_galrec.running.checkpoints import last_file

    _toy_dataset(workdir)
    # a learning rate that changes no score: both validations (before and after the resume) reach the best score
    settings = {**_toy_settings(workdir), "epochs": 2, "learning_rate": 1e-10}
    original = trainer_module._RunTrainer._save_last

    def keeping(self, epoch, finished=False):
        original(self, epoch, finished)
        if epoch == 0 and not finished:
            shutil.copy(last_file(self.saved_model_file), workdir / "epoch0-last.pth")

    monkeypatch.setattr(trainer_module._RunTrainer, "_save_last", keeping)
    whole = run_recbole_galrec("SASRec", "toy", config_dict=settings)
    monkeypatch.setattr(trainer_module._RunTrainer, "_save_last", original)
    resumed = run_recbole_galrec("SASRec", "toy", config_dict=settings, resume=str(workdir / "epoch0-last.pth"))
    assert resumed.epochs_run == whole.epochs_run == 2
    assert resumed.test_result == whole.test_result
    assert resumed.train_samples == whole.train_samples
    assert [validation["epoch"] for validation in whole.valid_curve] == [0, 1]
    assert resumed.valid_curve == whole.valid_curve  # the validation before the resume is kept
    assert whole.valid_curve[0]["recbole"] == whole.valid_curve[1]["recbole"] == whole.best_valid_score
    assert whole.best_valid_epoch == resumed.best_valid_epoch == 1  # a tie: the later validation is the best
    # the fit's seconds when the first validation's checkpoint was written: the best is the later validation
    before = torch.load(workdir / "epoch0-last.pth", weights_only=False)["counters"]["fit_seconds"]
    assert whole.time_to_best_seconds > before
    assert resumed.time_to_best_seconds > before  # the time before the resume counts


def test_recbole_takes_a_tie_as_the_new_best():
    """The rule the trainer's best filtered result follows (through early_stopping itself) and that its time to
    best and the benchmark's terminal mirror."""
    from recbole.utils import early_stopping

    assert early_stopping(0.05, 0.05, 3, 10, bigger=True) == (0.05, 0, False, True)
    assert early_stopping(1.0, 1.0, 3, 10, bigger=False) == (1.0, 0, False, True)


def _interrupted_after_epoch_2(workdir, monkeypatch, settings) -> str:
    """A toy SASRec run of four epochs whose process ends right after writing epoch 2's -last checkpoint (and
    with it its lock on the run's files); that checkpoint's path."""
    from recbole_galrec.quick_start import run_recbole_galrec
    from recbole_galrec.running import trainer as trainer_module
    from recbole_galrec.running.checkpoints import last_file

    class Interrupted(Exception):
        pass

    original = trainer_module._RunTrainer._save_last

    def interrupting(self, epoch, finished=False):
        original(self, epoch, finished)
        if epoch == 2:
            self._release_files()
            raise Interrupted(last_file(self.saved_model_file))

    with monkeypatch.context() as patch, pytest.raises(Interrupted) as interrupted:
        patch.setattr(trainer_module._RunTrainer, "_save_last", interrupting)
        run_recbole_galrec("SASRec", "toy", config_dict={**settings, "epochs": 4})
    return str(interrupted.value)


def test_the_best_epoch_is_a_validated_one_when_training_ends_between_validations(workdir, monkeypatch):
    """Epochs validated every second one: after three epochs the only validation is epoch 1's. The result's best
    epoch is 1 (not the last epoch less the validations since the best); a four-epoch run interrupted after
    epoch 2 and resumed reports best epoch 1 to the benchmark's terminal; resumed under a cap of 3, which it has
    reached, it ends as the three-epoch run does, tested on epoch 1's weights, not epoch 2's."""
    from recbole_galrec.quick_start import run_recbole_galrec
    from recbole_galrec.running import progress

    _toy_dataset(workdir)
    settings = {**_toy_settings(workdir), "epochs": 3, "eval_step": 2, "stopping_step": 10}
    whole = run_recbole_galrec("SASRec", "toy", config_dict=settings)
    assert (whole.epochs_run, [validation["epoch"] for validation in whole.valid_curve]) == (3, [1])
    assert whole.best_valid_epoch == 1

    capped = run_recbole_galrec(
        "SASRec", "toy", config_dict=settings, resume=_interrupted_after_epoch_2(workdir, monkeypatch, settings)
    )
    assert (capped.epochs_run, capped.best_valid_epoch, capped.valid_curve) == (3, 1, whole.valid_curve)
    assert capped.test_result == whole.test_result

    checkpoint, events = _interrupted_after_epoch_2(workdir, monkeypatch, settings), workdir / "progress.jsonl"
    with progress.to_file(str(events)):
        run_recbole_galrec("SASRec", "toy", config_dict={**settings, "epochs": 4}, resume=checkpoint)
    start = next(json.loads(line) for line in events.read_text().splitlines() if "training_start" in line)
    assert start["resumed"]["epochs"] == 3 and start["resumed"]["best_epoch"] == 1


def test_a_time_budget_stops_training_and_a_larger_one_resumes_it(workdir):
    """train_time_budget: no epoch starts once it is spent; the best model so far is tested and the result says
    so; --resume with a larger budget trains on to the epochs of the uninterrupted run."""
    from recbole_galrec.quick_start import run_recbole_galrec
    from recbole_galrec.running.checkpoints import last_file

    _toy_dataset(workdir)
    settings = {**_toy_settings(workdir), "epochs": 3, "stopping_step": 10}
    whole = run_recbole_galrec("SASRec", "toy", config_dict=settings)
    assert (whole.epochs_run, whole.time_budget_spent) == (3, False)

    cut = run_recbole_galrec("SASRec", "toy", config_dict={**settings, "train_time_budget": 1e-6})
    assert (cut.epochs_run, cut.time_budget_spent, cut.stopped_early) == (1, True, True)
    assert set(cut.test_result) == set(whole.test_result) and cut.test_viewed_filtered

    resumed = run_recbole_galrec("SASRec", "toy", config_dict=settings, resume=last_file(cut.checkpoint))
    assert (resumed.epochs_run, resumed.time_budget_spent) == (3, False)
    assert resumed.test_result == whole.test_result  # resumed exactly: the same run as the uninterrupted one


def test_an_interrupted_run_resumes_under_a_raised_epoch_cap(workdir, monkeypatch):
    """A run interrupted after its first epoch continues under a larger ``epochs`` exactly as a run with that cap
    from the start; a cap below the epochs the checkpoint has trained is another run, refused."""
    from recbole_galrec.errors import ResumeError
    from recbole_galrec.quick_start import run_recbole_galrec
    from recbole_galrec.running import trainer as trainer_module
    from recbole_galrec.running.checkpoints import last_file

    _toy_dataset(workdir)
    settings = {**_toy_settings(workdir), "stopping_step": 10}
    original = trainer_module._RunTrainer._save_last

    def keeping(self, epoch, finished=False):  # the last-epoch checkpoint of each epoch, as an interruption leaves it
        original(self, epoch, finished)
        if not finished:
            shutil.copy(last_file(self.saved_model_file), workdir / f"cap{self.epochs}-epoch{epoch}-last.pth")

    monkeypatch.setattr(trainer_module._RunTrainer, "_save_last", keeping)
    run_recbole_galrec("SASRec", "toy", config_dict={**settings, "epochs": 2})
    whole = run_recbole_galrec("SASRec", "toy", config_dict={**settings, "epochs": 3})
    monkeypatch.setattr(trainer_module._RunTrainer, "_save_last", original)

    raised = run_recbole_galrec(
        "SASRec", "toy", config_dict={**settings, "epochs": 3}, resume=str(workdir / "cap2-epoch0-last.pth")
    )
    assert (raised.epochs_run, raised.max_epochs) == (whole.epochs_run, 3) == (3, 3)
    assert raised.test_result == whole.test_result and raised.valid_curve == whole.valid_curve

    with pytest.raises(ResumeError, match="epochs: checkpoint 3, this run 1"):  # two epochs trained, cap 1
        run_recbole_galrec(
            "SASRec", "toy", config_dict={**settings, "epochs": 1}, resume=str(workdir / "cap3-epoch1-last.pth")
        )


@pytest.mark.parametrize("budget", [0, -5, "soon"])
def test_a_bad_time_budget_is_a_message(budget):
    from recbole_galrec.errors import ConfigError
    from recbole_galrec.recbole_keys import check

    with pytest.raises(ConfigError, match=r"train_time_budget must be a finite number > 0, or ~ \(none\).*got"):
        check({"train_time_budget": budget})
    check({"train_time_budget": None})
    check({"train_time_budget": 30})


# ------------------------------------------------------------------------- 3: recommend for every user, atomically
def test_a_user_with_one_interaction_gets_recommendations(toy_sasrec, capsys):
    from recbole_galrec.recommend import Recommender, main

    assert main([f"--checkpoint={toy_sasrec['checkpoint']}", "--users=solo", "--k=3"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("user solo:") and len(printed.strip().splitlines()) == 4

    recommender = Recommender.from_checkpoint(toy_sasrec["checkpoint"])
    solo = recommender.user_ids["solo"]
    assert [recommender.item_tokens[i] for i in recommender.histories[solo]] == ["i5"]
    output = toy_sasrec["root"] / "all.jsonl"
    assert main([f"--checkpoint={toy_sasrec['checkpoint']}", "--users=all", "--k=3", f"--output={output}"]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 21 and all(len(row["items"]) == 3 for row in rows)


def test_a_failed_recommendation_leaves_no_output_file(toy_sasrec, tmp_path, monkeypatch, capsys):
    from recbole_galrec.errors import ConfigError
    from recbole_galrec.recommend import Recommender, main

    def failing(self, users, k=10, exclude_history=False, batch_size=256):
        yield {"user": users[0], "items": ["i1"], "scores": [1.0]}
        raise ConfigError("failed half way")

    monkeypatch.setattr(Recommender, "recommend", failing)
    output = tmp_path / "all.jsonl"
    assert main([f"--checkpoint={toy_sasrec['checkpoint']}", "--users=all", f"--output={output}"]) == 2
    assert "failed half way" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------- 7: titles from the text fields
def test_titles_come_from_the_datasets_text_fields(toy_sasrec):
    from recbole_galrec.recommend import Recommender, _titles

    recommender = Recommender.from_checkpoint(toy_sasrec["checkpoint"])
    (row,) = recommender.recommend(["u1"], k=2)
    assert row["titles"] == [f"Film {item[1:]} Story" for item in row["items"]]  # item_text_fields: [name]
    recommender.config.final_config_dict.pop("item_text_fields")
    titles = _titles(recommender.dataset)  # no setting: the text columns the .item file loaded
    item = recommender.dataset.field2token_id[recommender.iid_field]["i7"]
    assert titles[item] == "Film 7 Story g1"


# ---------------------------------------------------------------------------- 4: messages instead of tracebacks
@pytest.fixture
def truncated(pop_run, tmp_path) -> Path:
    path = tmp_path / "Pop-truncated.pth"
    data = pop_run["best"].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_a_truncated_checkpoint_to_resume_is_a_message(truncated, workdir, capsys, no_data):
    status, err = _main(["--model=Pop", f"--resume={truncated}"], capsys)
    assert status == 2 and "Traceback" not in err, err
    assert f"'{truncated}'" in err and "truncated" in err


def test_a_truncated_checkpoint_to_recommend_from_is_a_message(truncated, workdir, capsys):
    from recbole_galrec.recommend import main

    assert main([f"--checkpoint={truncated}", "--users=1"]) == 2
    err = capsys.readouterr().err
    assert f"'{truncated}'" in err and "truncated" in err


def test_an_external_cache_file_is_not_a_checkpoint(workdir, capsys):
    from recbole_galrec.recommend import main
    from recbole_galrec.running.checkpoints import save_atomic

    cache = workdir / "saved" / "external" / "ml-100k-SASRec-0123456789ab.pt"
    payload = {"name": "SASRec", "user_tokens": ["1"], "item_tokens": ["1"], "user": torch.zeros(1, 2)}
    save_atomic({**payload, "item": torch.zeros(1, 2)}, str(cache))
    assert main([f"--checkpoint={cache}", "--users=1"]) == 2
    err = capsys.readouterr().err
    assert f"'{cache}'" in err and "external model's cache" in err

    other = workdir / "other.pth"
    torch.save({"weights": torch.zeros(2)}, other)
    assert main([f"--checkpoint={other}", "--users=1"]) == 2
    assert f"'{other}' is not a checkpoint" in capsys.readouterr().err


def test_a_checkpoint_dir_that_cannot_be_created_is_a_message(workdir, capsys, no_data):
    (workdir / "a-file").write_text("x")
    status, err = _main(["--model=Pop", f"--checkpoint_dir={workdir / 'a-file' / 'saved'}"], capsys)
    assert status == 2 and "Traceback" not in err, err
    assert f"checkpoint_dir '{workdir / 'a-file' / 'saved'}'" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_checkpoint_dir_is_a_message(workdir, capsys, no_data):
    folder = workdir / "read-only"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        status, err = _main(["--model=Pop", f"--checkpoint_dir={folder}"], capsys)
    finally:
        folder.chmod(stat.S_IRWXU)
    assert status == 2 and f"checkpoint_dir '{folder}'" in err, err


def test_a_benchmark_output_that_names_a_file_is_a_message(workdir, capsys):
    from recbole_galrec.benchmark.cli import main

    (workdir / "results.txt").write_text("x")
    assert main(["--models=Pop", "--output=results.txt"]) == 2
    err = capsys.readouterr().err
    assert "--output 'results.txt'" in err and "Traceback" not in err
    assert (workdir / "results.txt").read_text() == "x"


# ------------------------------------------------------------------------------------- 5: arguments checked first
def test_an_llm_path_without_a_model_is_refused_before_the_data(workdir, capsys, no_data):
    empty = workdir / "not-a-model"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    status, err = _main(["--model=GALRec", f"--llm_path={empty}", "--external_models=[SASRec]"], capsys)
    assert status == 2 and "Traceback" not in err, err
    assert f"llm_path '{empty}'" in err and "config.json" in err


@pytest.mark.parametrize("k", ["0", "-3"])
def test_a_bad_k_is_refused_before_the_checkpoint_loads(k, workdir, capsys, monkeypatch):
    from recbole_galrec.recommend import Recommender, main

    monkeypatch.setattr(Recommender, "from_checkpoint", _no_data)
    assert main(["--checkpoint=missing.pth", "--users=1", f"--k={k}"]) == 2
    assert f"--k must be at least 1, got {k}" in capsys.readouterr().err


def test_a_non_integer_k_is_refused_before_the_checkpoint_loads(workdir, capsys, monkeypatch):
    from recbole_galrec.recommend import Recommender, main

    monkeypatch.setattr(Recommender, "from_checkpoint", _no_data)
    with pytest.raises(SystemExit) as exited:
        main(["--checkpoint=missing.pth", "--users=1", "--k=2.5"])
    assert exited.value.code == 2 and "--k: invalid int value: '2.5'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- 7: small ones
def test_a_benchmark_that_fails_before_any_run_leaves_no_folder(workdir, capsys):
    from recbole_galrec.benchmark.cli import main

    assert main(["--models=Pop", "--output=out", "--reference=GRU4Rec"]) == 2
    assert "--reference=GRU4Rec is neither among --models" in capsys.readouterr().err
    assert not (workdir / "out").exists()


def test_checkpoints_are_written_with_the_umasks_mode(tmp_path):
    from recbole_galrec.running.checkpoints import save_atomic

    old = os.umask(0o022)
    try:
        save_atomic({"epoch": 0}, str(tmp_path / "run.pth"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "run.pth").stat().st_mode) == 0o644


def test_a_result_file_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """A reader in another process (the search's table, run beside its configurations) never sees half a result
    file: a write that fails midway leaves the previous file as it was."""
    from recbole_galrec.running.result import RunResult

    path = tmp_path / "result.json"
    path.write_text('{"before": 1}')
    result = RunResult.__new__(RunResult)
    monkeypatch.setattr(RunResult, "to_dict", lambda self: {"a": 1, "b": object()})  # fails after "a" is written
    with pytest.raises(TypeError):
        result.write(str(path))
    assert json.loads(path.read_text()) == {"before": 1} and [p.name for p in tmp_path.iterdir()] == ["result.json"]
    monkeypatch.setattr(RunResult, "to_dict", lambda self: {"a": 1})
    result.write(str(path))
    assert json.loads(path.read_text()) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["result.json"]
