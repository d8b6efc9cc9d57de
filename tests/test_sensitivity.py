"""``python -m recbole_galrec.analysis sensitivity``: its argument errors (before any run), the labels of its
variants, its summary and chart, one run end to end on ml-100k with a tiny GALRec, resumed, and SIGTERM."""

import json
import re
import subprocess
import sys

import pytest

from recbole_galrec.analysis import sensitivity
from recbole_galrec.analysis.sensitivity_report import mean_curve, point, write_chart
from recbole_galrec.benchmark import plan as planning
from recbole_galrec.errors import ConfigError
from tests.conftest import MACHINE_PATH, REPO_ROOT, TINY_SASREC, save_tiny_bert, terminate_when_running

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--param=seed", "--values=1,2"], r"--param=seed: seed is set by --seeds"),
        (["--param=checkpoint_dir", "--values=a,b"], r"checkpoint_dir is set by the benchmark"),
        (["--param=contrast_ta", "--values=0.1,0.2"], r"not a GALRec key \(did you mean contrast_tau\?\)"),
        (["--param=epochs", "--values=1,2"], r"--param=epochs is not a GALRec key\. .* set for every run"),
        (["--param=contrast_tau", "--values=0.1"], r"needs at least 2 values of contrast_tau"),
        (["--param=contrast_tau", "--values=0.1,,0.2"], r"has an empty value"),
        (["--param=contrast_tau", "--values=0.1,0.10"], r"names contrast_tau=0.1 twice"),
        (["--param=contrast_tau", "--values=1,1.0"], r"names contrast_tau=1.0 twice"),  # one value as GALRec reads it
        (
            ["--param=contrast_tau", "--values=0.1,-1"],
            r"GALRec with contrast_tau=-1 is refused: contrast_tau must be > 0",
        ),
        (["--param=prompt_history_len", "--values=2,2.5"], r"prompt_history_len must be an integer, got 2\.5"),
        (
            ["--param=item_text_mode", "--values=embedding,bad"],
            r"item_text_mode must be one of tokens, embedding, none",
        ),
        (["--param=contrast_tau", "--values=0.1,0.2", "--contrast_tau=0.3"], r"drop --contrast_tau=\.\.\."),
        (["--param=contrast_tau", "--values=0.1,0.2", "--seeds=2020"], r"--seeds=2020 would mean 2,020 runs"),
        (["--param=contrast_tau", "--values=0.1,0.2", "--jobs=0"], r"--jobs must be at least 1"),
        (["--param=contrast_tau", "--values=0.1,0.2", "--profile=gpu"], r"Available profiles: cpu"),
    ],
)
def test_bad_arguments_exit_2_before_any_run(workdir, capsys, args, message):
    assert sensitivity.main([*args, "--output=out"]) == 2
    err = capsys.readouterr().err
    assert re.search(f"^error: .*{message}", err, re.MULTILINE), err
    assert "Traceback" not in err and not (workdir / "out").exists()


def test_missing_param_is_an_argparse_error(workdir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sensitivity.main(["--values=0.1,0.2", "--output=out"])
    assert exit_info.value.code == 2 and "the following arguments are required: --param" in capsys.readouterr().err


@pytest.mark.parametrize("value", [0.05, 1e-05, 20, True, False, None, "none", "[GAL_USER] {user}", [5, 10]])
def test_a_setting_label_reads_back_its_value(value):
    label = planning.setting_label("GALRec", "key", value)
    assert label.startswith("GALRec[key=") and label.endswith("]")
    assert planning.resolve_label(label) == ("GALRec", {"key": value})
    assert type(planning.resolve_label(label)[1]["key"]) is type(value)


def test_a_setting_label_adds_its_key_to_its_base_label():
    assert planning.setting_label("GALRec", "contrast_tau", 0.05) == "GALRec[contrast_tau=0.05]"
    model, extra = planning.resolve_label("GALRec-noLM[queue_size=8]")
    assert model == "GALRec" and extra == {**planning.MODEL_LABELS["GALRec-noLM"][1], "queue_size": 8}
    # the label's key wins over the common overrides; the seed over everything
    assert planning.run_config("GALRec[lambda1=0.5]", {"lambda1": 0.1, "epochs": 2}, seed=7) == (
        "GALRec",
        {"show_progress": False, "lambda1": 0.5, "epochs": 2, "seed": 7},
    )
    assert planning.dependencies("GALRec[lambda1=0.5]", 1, ["SASRec", "GALRec[lambda1=0.5]"]) == [("SASRec", 1)]
    with pytest.raises(ConfigError, match="'0.5' cannot be written in a label"):
        planning.setting_label("GALRec", "llm_path", "0.5")  # the command line reads it as a number too
    with pytest.raises(ConfigError, match="Unknown model label 'NoSuch'"):
        planning.resolve_label("NoSuch[a=1]")


def _run(label, seed, ndcg, status="ok", filtered=True, curve=None):
    metrics = {"ndcg@10": ndcg, "hit@10": 2 * ndcg}
    run = {"model": label, "seed": seed, "status": status, "test": metrics, "valid": metrics}
    if filtered:
        run |= {"test_viewed_filtered": metrics, "valid_viewed_filtered": metrics}
    if curve is not None:  # [(epoch, recbole, viewed_filtered)]; records made before the benchmark kept it have none
        run["valid_curve"] = [{"epoch": e, "recbole": r, "viewed_filtered": f} for e, r, f in curve]
    return run if status == "ok" else {**run, "test": None, "valid": None}


def test_a_point_has_each_runs_validation_curve_and_the_mean_of_their_last_scores():
    runs = [
        _run("A", 1, 0.1, curve=[(-1, 0.30, 0.40), (1, 0.20, 0.25), (3, 0.10, 0.15)]),
        _run("A", 2, 0.1, curve=[(-1, 0.30, 0.40), (1, 0.40, None)]),  # no filtered score at its last validation
        _run("A", 3, 0.1),  # a record without a curve
        _run("A", 4, 0.1, status="failed", curve=[(-1, 0.9, 0.9)]),
    ]
    entry = point(runs, 0.05, "A", seeds=[1, 2, 3, 4])
    assert list(entry["valid_curves"]) == ["1", "2"]
    assert entry["valid_curves"]["1"][1] == {"epoch": 1, "recbole": 0.20, "viewed_filtered": 0.25}
    last = entry["last_valid"]
    assert last["epochs"] == [3, 1]
    assert last["recbole"]["mean"] == pytest.approx(0.25) and last["recbole"]["std"] == pytest.approx(0.2121320344)
    assert last["viewed_filtered"] == {"mean": 0.15, "std": None}
    # the mean curve keeps the epochs every seed validated at
    epochs, scores = mean_curve(entry["valid_curves"], "recbole")
    assert epochs == [-1, 1] and scores == pytest.approx([0.30, 0.30])
    assert mean_curve(entry["valid_curves"], "viewed_filtered") == ([-1], [pytest.approx(0.40)])
    assert mean_curve({}, "recbole") == ([], [])


def test_a_point_is_the_mean_and_std_of_its_runs():
    runs = [
        _run("A", 1, 0.1),
        _run("A", 2, 0.3, filtered=False),  # a record of before the filtered protocol
        _run("A", 3, 0.5, status="failed"),
        _run("A", 4, 0.9),  # another seed than the analysis's
        _run("B", 1, 0.7),
    ]
    entry = point(runs, 0.05, "A", seeds=[1, 2, 3])
    assert (entry["value"], entry["label"], entry["seeds"], entry["failed_seeds"]) == (0.05, "A", [1, 2], [3])
    test = entry["recbole"]["test"]
    assert test["ndcg@10"]["mean"] == pytest.approx(0.2) and test["ndcg@10"]["std"] == pytest.approx(0.1414213562)
    assert entry["recbole"]["valid"]["hit@10"]["mean"] == pytest.approx(0.4)
    assert entry["viewed_filtered"]["test"]["ndcg@10"] == {"mean": 0.1, "std": None}  # one record holds it
    assert point(runs, 0.1, "C", seeds=[1])["recbole"]["test"]["ndcg@10"] is None


@pytest.mark.parametrize("values", [[0.01, 0.1, 1.0], ["tokens", "none"]])
def test_chart_of_several_seeds_and_of_values_that_are_not_numbers(tmp_path, values):
    runs = [
        _run(str(v), seed, 0.1 + 0.01 * i + 0.001 * seed, curve=[(-1, 0.1, 0.12), (1, 0.1 + 0.01 * i, 0.13)])
        for i, v in enumerate(values)
        for seed in (1, 2)
    ]
    data = {
        "param": "p",
        "values": values,
        "seeds": [1, 2],
        "dataset": "d",
        "profile": "cpu",
        "points": [point(runs, v, str(v), [1, 2]) for v in values],
    }
    write_chart(data, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:8] == PNG


def _tiny_backbone(folder) -> str:
    """A random 1-layer BERT with the offline MiniLM's tokenizer, saved as a model folder."""
    return save_tiny_bert(folder, layers=1)


def _cli(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "recbole_galrec.analysis", "sensitivity", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_end_to_end_on_ml100k_and_resumed(workdir):
    """Two values of score_lr_scale (the scoring maps' learning rate, so that one epoch from a random start tells
    them apart): SASRec and LightGCN run once and start both variants; the JSON holds each variant's run records'
    metrics; the same command again runs nothing."""
    settings = {
        **TINY_SASREC,
        "train_batch_size": 128,
        "embedding_size": 16,  # LightGCN's
        "user_inter_num_interval": "[0,40]",  # 305 users
        "llm_path": _tiny_backbone(workdir / "backbone"),
        "prompt_history_len": 5,
        "prompt_num_neighbors": 3,
        "queue_size": 16,
        "train_sample": "one_per_user",
        "score_start": "random",
        "learning_rate": 0.01,
    }
    args = [
        "--param=score_lr_scale",
        "--values=0.05,2",
        "--output=out",
        *[f"--{key}={value}" for key, value in settings.items()],
    ]
    proc = _cli(args, workdir)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = workdir / "out"
    results = json.loads((out / "ml-100k.json").read_text())
    labels = ["GALRec[score_lr_scale=0.05]", "GALRec[score_lr_scale=2.0]"]
    runs = {run["model"]: run for run in results["runs"]}
    assert sorted(runs) == sorted(["SASRec", "LightGCN", *labels]) and all(r["status"] == "ok" for r in runs.values())
    data = json.loads((out / "sensitivity-score_lr_scale.json").read_text())
    assert (data["param"], data["values"], data["seeds"]) == ("score_lr_scale", [0.05, 2.0], [2020])
    assert data["command"].startswith("python -m recbole_galrec.analysis sensitivity --param=score_lr_scale")
    assert data["external_models"] == ["SASRec", "LightGCN"] and data["benchmark_results"] == "ml-100k.json"
    assert [entry["label"] for entry in data["points"]] == labels
    for entry, value in zip(data["points"], [0.05, 2.0], strict=True):
        run = runs[entry["label"]]
        assert entry["value"] == value and entry["seeds"] == [2020]
        assert entry["valid_curves"] == {"2020": run["valid_curve"]}
        assert [validation["epoch"] for validation in run["valid_curve"]][:2] == [-1, 0]  # GALRec validates its start
        assert entry["last_valid"]["recbole"] == {"mean": run["valid_curve"][-1]["recbole"], "std": None}
        for protocol, split, key in [
            ("recbole", "valid", "valid"),
            ("recbole", "test", "test"),
            ("viewed_filtered", "valid", "valid_viewed_filtered"),
            ("viewed_filtered", "test", "test_viewed_filtered"),
        ]:
            for metric in ("ndcg@10", "hit@10"):
                assert entry[protocol][split][metric] == {"mean": run[key][metric], "std": None}
        # the run got its value, and the benchmark's SASRec and LightGCN of its seed as its external models
        spec = json.loads(
            (out / "runs" / "ml-100k" / f"{planning.run_stem(entry['label'], 2020)}.spec.json").read_text()
        )
        assert spec["config_dict"]["score_lr_scale"] == value
        assert run["external_checkpoints"] == {
            "SASRec": runs["SASRec"]["checkpoint"],
            "LightGCN": runs["LightGCN"]["checkpoint"],
        }
    first, second = (entry["recbole"]["test"]["ndcg@10"]["mean"] for entry in data["points"])
    assert first != second  # the values led to different models
    assert (out / "sensitivity-score_lr_scale.png").read_bytes()[:8] == PNG
    text = (out / "sensitivity-score_lr_scale.json").read_text() + (out / "ml-100k.json").read_text()
    assert str(workdir) not in text and str(REPO_ROOT) not in text
    # The same command again: every run skipped, the records unchanged, the analysis written again.
    (out / "sensitivity-score_lr_scale.png").unlink()
    again = _cli(args, workdir)
    assert again.returncode == 0, again.stderr[-4000:]
    assert again.stderr.count(": skipped, already ok") == 4 and ": start (elapsed" not in again.stderr
    assert json.loads((out / "ml-100k.json").read_text())["runs"] == results["runs"]
    assert json.loads((out / "sensitivity-score_lr_scale.json").read_text())["points"] == data["points"]
    assert (out / "sensitivity-score_lr_scale.png").read_bytes()[:8] == PNG


def test_terminated_analysis_stops_its_run(workdir):
    """SIGTERM to the analysis ends the benchmark run it is waiting on (here its SASRec): no worker is left behind."""
    args = ["recbole_galrec.analysis", "sensitivity", "--param=contrast_tau", "--values=0.1,0.2", "--epochs=100"]
    terminate_when_running([*args, "--output=out"], workdir, workers=1)


COMMITTED = REPO_ROOT / "docs" / "results" / "sensitivity"


@pytest.mark.parametrize("path", sorted(COMMITTED.glob("sensitivity-*.json")), ids=lambda path: path.stem)
def test_committed_analysis_is_what_its_run_records_give(path):
    """Each committed sensitivity-<param>.json is what its benchmark's committed run records give, value by value, and
    its chart is beside it (the records themselves: tests/test_benchmark.py's committed-results test)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    results = json.loads((COMMITTED / data["benchmark_results"]).read_text(encoding="utf-8"))
    assert path.stem == f"sensitivity-{data['param']}" and data["dataset"] == results["dataset"]
    assert (data["profile"], data["settings"]) == (results.get("profile"), results.get("settings") or {})
    assert len(data["points"]) >= 2 and [entry["value"] for entry in data["points"]] == data["values"]
    for entry in data["points"]:
        assert entry["label"] == planning.setting_label("GALRec", data["param"], entry["value"])
        assert entry["seeds"] == data["seeds"] and not entry["failed_seeds"], entry["label"]
        assert entry == point(results["runs"], entry["value"], entry["label"], data["seeds"])
    assert data["command"].startswith(f"python -m recbole_galrec.analysis sensitivity --dataset={data['dataset']} ")
    assert f"--param={data['param']} " in data["command"] + " "
    assert path.with_suffix(".png").read_bytes()[:8] == PNG
    assert not MACHINE_PATH.search(path.read_text(encoding="utf-8"))
