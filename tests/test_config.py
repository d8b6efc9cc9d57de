"""Config assembly: precedence of command line > config files > plugin properties > RecBole defaults."""

import pytest
import yaml

from recbole_galrec.cli import parse_overrides
from recbole_galrec.config import build_config, property_files
from recbole_galrec.errors import ConfigError


def write_yaml(path, content):
    path.write_text(yaml.safe_dump(content))
    return str(path)


def test_plugin_properties_override_recbole_defaults(workdir):
    config = build_config("SASRec", "ml-100k")
    # RecBole's own default is MRR@10 and topk [10]; properties/overall.yaml sets the literature's protocol.
    assert config["valid_metric"] == "NDCG@10"
    assert config["topk"] == [5, 10, 20]
    assert config["eval_args"]["order"] == "TO"
    # properties/model/SASRec.yaml: CE needs no training negatives (RecBole's default samples one).
    assert config["train_neg_sample_args"]["distribution"] == "none"
    # properties/dataset/ml-100k.yaml loads the item text.
    assert config["load_col"]["item"] == ["item_id", "movie_title", "class"]


def test_config_file_overrides_properties_and_later_file_wins(workdir):
    first = write_yaml(workdir / "a.yaml", {"valid_metric": "Hit@10", "learning_rate": 0.01})
    second = write_yaml(workdir / "b.yaml", {"learning_rate": 0.02})
    config = build_config("SASRec", "ml-100k", config_file_list=[first, second])
    assert config["valid_metric"] == "Hit@10"
    assert config["learning_rate"] == 0.02


def test_command_line_overrides_config_files(workdir):
    path = write_yaml(workdir / "a.yaml", {"learning_rate": 0.01, "hidden_size": 32})
    overrides = parse_overrides(["--learning_rate=0.005"])
    config = build_config("SASRec", "ml-100k", config_file_list=[path], config_dict=overrides)
    assert config["learning_rate"] == 0.005
    assert config["hidden_size"] == 32


def test_recbole_does_not_read_sys_argv(workdir, monkeypatch):
    monkeypatch.setattr("sys.argv", ["prog", "--learning_rate=0.9"])
    assert build_config("SASRec", "ml-100k")["learning_rate"] == 0.001


def test_property_files_order():
    files = property_files("SASRec", "ml-100k")
    assert [f.rsplit("properties", 1)[1] for f in files] == [
        "/overall.yaml",
        "/model/SASRec.yaml",
        "/dataset/ml-100k.yaml",
    ]
    assert len(property_files("BPR", "some-unknown-dataset")) == 1


def test_parse_overrides_types():
    parsed = parse_overrides(
        ["--learning_rate=1e-3", "--topk=[5,10]", "--train_neg_sample_args=~", "--state=INFO", "--epochs=3"]
    )
    assert parsed == {
        "learning_rate": 0.001,
        "topk": [5, 10],
        "train_neg_sample_args": None,
        "state": "INFO",
        "epochs": 3,
    }


@pytest.mark.parametrize("arg", ["learning_rate=0.1", "--learning_rate", "-x"])
def test_parse_overrides_rejects_malformed(arg):
    with pytest.raises(ConfigError, match="--key=value"):
        parse_overrides([arg])


def test_parse_overrides_rejects_conflicting_duplicates():
    with pytest.raises(ConfigError, match="--epochs is given twice"):
        parse_overrides(["--epochs=1", "--epochs=2"])


def test_missing_config_file(workdir):
    with pytest.raises(ConfigError, match="Config file 'nope.yaml' does not exist"):
        build_config("SASRec", "ml-100k", config_file_list=["nope.yaml"])


def test_invalid_yaml_config_file(workdir):
    bad = workdir / "bad.yaml"
    bad.write_text("learning_rate: [0.1\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        build_config("SASRec", "ml-100k", config_file_list=[str(bad)])


def test_config_file_that_is_not_a_mapping(workdir):
    bad = workdir / "list.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        build_config("SASRec", "ml-100k", config_file_list=[str(bad)])


def test_recbole_rejection_becomes_config_error(workdir):
    with pytest.raises(ConfigError, match="RecBole rejected the configuration: Sequential models .* repeatable"):
        build_config("SASRec", "ml-100k", config_dict={"repeatable": False})


@pytest.mark.parametrize("overrides", [{"world_size": 2}, {"local_rank": 0, "nproc": 1}, {"port": 29500}])
def test_per_process_keys_are_refused(workdir, overrides):
    with pytest.raises(ConfigError, match="set for each process of a multi-process run by the launcher.*Remove them"):
        build_config("Pop", "ml-100k", config_dict=overrides)
    path = write_yaml(workdir / "ddp.yaml", overrides)
    with pytest.raises(ConfigError, match="by the launcher"):
        build_config("Pop", "ml-100k", config_file_list=[path])


@pytest.mark.parametrize("nproc", [0, -2, 1.5, "two", True])
def test_bad_nproc_is_refused(workdir, nproc):
    with pytest.raises(ConfigError, match="the number of processes of the run must be a whole number >= 1"):
        build_config("Pop", "ml-100k", config_dict={"nproc": nproc})


def test_nproc_is_accepted(workdir):
    assert build_config("Pop", "ml-100k", config_dict={"nproc": 1})["nproc"] == 1
    config = build_config("Pop", "ml-100k", config_dict={"nproc": 2})  # the launcher starts the processes, not this
    assert config["nproc"] == 2 and config["single_spec"]
