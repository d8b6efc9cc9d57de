"""RecBole's common keys: a bad value stops the run at start-up, naming the key; good values and every shipped
property file pass; use_gpu says where the run is."""

import logging

import pytest
import torch

from recbole_galrec import recbole_keys
from recbole_galrec.config import PROFILE_DIR, PROPERTIES_DIR, available_profiles, build_config, profile_files
from recbole_galrec.errors import ConfigError

# One wrong type and one out-of-range value (where the key has a range) per checked key, as the command line
# writes them.
BAD_VALUES = {
    "epochs": ["abc", "-1", "2.5"],
    "train_batch_size": ["abc", "0"],
    "eval_batch_size": ["[64]", "0"],
    "learner": ["adamm", "3"],
    "learning_rate": ["fast", "0", "-1e-3", ".nan"],
    "weight_decay": ["none", "-0.1"],
    "eval_step": ["abc", "-1"],
    "stopping_step": ["abc", "-2"],
    "metrics": ["[Accuracy]", "5", "[]", "[NDCG, AUC]"],
    "topk": ["abc", "0", "[5, a]", "[]"],
    "valid_metric": ["5", "Recall@10", "NDCG@15", "NDCG", "[NDCG@10]"],
    "MAX_ITEM_LIST_LENGTH": ["abc", "0"],
    "seed": ["abc", "-1", "4294967296"],
    "use_gpu": ["maybe", "1"],
    "reproducibility": ["maybe"],
    "show_progress": ["0"],
    "worker": ["abc", "-1"],
    "nproc": ["two", "0"],
}

GOOD_VALUES = {
    "epochs": [0, 1, 300],
    "train_batch_size": [1, 2048],
    "eval_batch_size": [1, 4096],
    "learner": ["adam", "AdamW", "sgd", "sparse_adam"],
    "learning_rate": [1e-3, 1, "1e-3"],
    "weight_decay": [0, 0.0, 1e-4],
    "eval_step": [0, 1, 5],
    "stopping_step": [0, 3],
    "metrics": ["NDCG", ["Hit", "NDCG", "MRR"], ["recall", "ndcg", "GAUC", "ItemCoverage"]],
    "topk": [10, [5, 10, 20]],
    "MAX_ITEM_LIST_LENGTH": [1, 50],
    "seed": [0, 2020, 2**32 - 1],
    "use_gpu": [True, False],
    "reproducibility": [True, False],
    "show_progress": [True, False],
    "worker": [0, 2],
    "nproc": [1, 2],
}

# Keys whose values must agree, given together.
GOOD_COMBINATIONS = [
    {"metrics": ["Hit", "NDCG"], "topk": [5], "valid_metric": "hit@5"},
    {"metrics": ["NDCG", "GAUC"], "valid_metric": "GAUC"},
    {"metrics": ["ItemCoverage", "NDCG"], "topk": 20, "valid_metric": "ItemCoverage@20"},
    {"metrics": ["Recall"], "valid_metric": "NDCG@10", "eval_step": 0},  # no validation: valid_metric unused
]


def test_every_checked_key_has_bad_and_good_values():
    assert set(BAD_VALUES) == set(recbole_keys.RULES)
    assert set(GOOD_VALUES) | {"valid_metric"} == set(recbole_keys.RULES)


def test_every_bad_value_fails_before_the_dataset_is_loaded(workdir, monkeypatch, capsys):
    from recbole_galrec import cli
    from recbole_galrec.running import steps as run

    def no_dataset(config):
        raise AssertionError("the dataset was created although a RecBole key was wrong")

    monkeypatch.setattr(run, "create_dataset", no_dataset)
    for key, values in BAD_VALUES.items():
        for value in values:
            argument = f"--{key}={value}"
            assert cli.main(["--model=GALRec", "--dataset=ml-100k", argument]) == 2, argument
            message = capsys.readouterr().err
            assert message.startswith("error: ") and key in message, (argument, message)
            assert "Traceback" not in message


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": "abc"}, r"epochs must be an integer >= 0 .*, got 'abc'\."),
        ({"learning_rate": 0}, r"learning_rate must be a finite number > 0, got 0\."),
        ({"seed": -1}, r"seed must be an integer from 0 to 4294967295, got -1\."),
        ({"topk": [5, "a"]}, r"topk must be an integer >= 1, or a non-empty list of them, got \[5, 'a'\]\."),
        ({"metrics": ["Accuracy"]}, r"metrics must be one of AUC, .*NDCG.*, got \['Accuracy'\]\."),
        ({"metrics": ["NDCG", "AUC"]}, r"mixes ranking metrics \(NDCG\) and value metrics \(AUC\)"),
        ({"valid_metric": "Recall@10"}, r"valid_metric 'Recall@10' must be one of metrics \['Hit', 'NDCG', 'MRR'\]"),
        ({"valid_metric": "NDCG@15"}, r"valid_metric 'NDCG@15' must end in @k with k one of topk \[5, 10, 20\]"),
        ({"metrics": ["GAUC"], "valid_metric": "GAUC@10"}, r"GAUC has no cut-off; write GAUC"),
        ({"learner": "adamm"}, r"learner must be one of adam, adamw, sgd, adagrad, rmsprop, sparse_adam"),
    ],
)
def test_messages_name_key_value_and_what_is_allowed(workdir, overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_config("SASRec", "ml-100k", config_dict=overrides)


@pytest.mark.parametrize("model", ["GALRec", "SASRec"])
def test_good_values_pass(workdir, model):
    for key, values in GOOD_VALUES.items():
        for value in values:
            config = build_config(model, "ml-100k", config_dict={key: value})
            assert config[key] is not None, (key, value)
    for overrides in GOOD_COMBINATIONS:
        build_config(model, "ml-100k", config_dict=overrides)


def test_every_shipped_property_file_passes(workdir):
    for path in sorted((PROPERTIES_DIR / "model").glob("*.yaml")):
        build_config(path.stem, "ml-100k")
    for path in sorted((PROPERTIES_DIR / "dataset").glob("*.yaml")):
        build_config("SASRec", path.stem)


@pytest.mark.parametrize("profile", available_profiles())
def test_every_profile_passes(workdir, profile):
    models = {"GALRec", "SASRec", "Pop"} | {path.stem for path in (PROFILE_DIR / profile).glob("*.yaml")}
    for model in sorted(models):
        build_config(model, "ml-100k", config_file_list=profile_files(profile, model))


@pytest.fixture
def fresh_warning(monkeypatch, caplog):
    """The CPU warning not given yet in this process, and captured."""
    monkeypatch.setattr(recbole_keys, "_cpu_warning_given", False)
    caplog.set_level(logging.WARNING, logger=recbole_keys.__name__)
    return caplog


def _cpu_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == recbole_keys.__name__ and r.levelno == logging.WARNING]


def test_use_gpu_without_a_gpu_warns_that_the_run_is_on_the_cpu(workdir, monkeypatch, fresh_warning):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = build_config("SASRec", "ml-100k", config_dict={"use_gpu": True})
    assert config["device"].type == "cpu"
    (message,) = _cpu_warnings(fresh_warning)
    assert "use_gpu is True" in message and "no CUDA GPU" in message and "on the CPU" in message
    build_config("SASRec", "ml-100k", config_dict={"use_gpu": True})  # once per process
    assert len(_cpu_warnings(fresh_warning)) == 1


def test_use_gpu_false_runs_on_the_cpu_without_warning(workdir, monkeypatch, fresh_warning):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # RecBole alone would pick cuda
    assert build_config("SASRec", "ml-100k", config_dict={"use_gpu": False})["device"].type == "cpu"
    assert build_config("SASRec", "ml-100k", config_dict={"use_gpu": True})["device"].type == "cuda"
    assert _cpu_warnings(fresh_warning) == []
