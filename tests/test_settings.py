"""GALRec's keys: every default documented and valid; each bad value fails with a message naming the key."""

import pickle
import re

import pytest
import yaml

from recbole_galrec.config import PROPERTIES_DIR
from recbole_galrec.errors import ConfigError
from recbole_galrec.settings import GALRecSettings, _typed, check_choice

YAML_FILE = PROPERTIES_DIR / "model" / "GALRec.yaml"


def defaults() -> dict:
    return yaml.safe_load(YAML_FILE.read_text())


def test_defaults_are_valid():
    settings = GALRecSettings.from_config(defaults())
    assert settings.llm_tuning == "lora" and settings.external_models == ["SASRec", "LightGCN"]
    assert settings.uses_item_prompt


def test_every_key_carries_a_type_comment():
    for line in YAML_FILE.read_text().splitlines():
        match = re.match(r"^(\w+):", line)
        if match:
            assert (
                re.search(r"# \((str|int|float|list|dict|bool)\) ", line)
                or line.rstrip().endswith(":")
                or re.match(r'^\w+: ".*"$', line)
            ), f"{match.group(1)} has no '# (type) meaning' comment"


def test_misspelt_key_is_an_error_with_a_suggestion():
    values = defaults() | {"lamda1": 0.5, "lambda_1": 0.5}
    with pytest.raises(ConfigError, match=r"Unknown GALRec config keys: lamda1 \(did you mean lambda1\?\), lambda_1"):
        GALRecSettings.from_config(values)


def test_item_id_embedding_is_read_from_the_config_and_old_settings_keep_their_id_table():
    values = defaults()
    del values["item_id_embedding"]
    with pytest.raises(ConfigError, match="GALRec config keys missing: item_id_embedding"):
        GALRecSettings.from_config(values)
    assert GALRecSettings.from_config(defaults() | {"item_id_embedding": False}).item_id_embedding is False
    # settings unpickled from a checkpoint whose pickle lacks the field: that model has item id embeddings
    old = pickle.loads(pickle.dumps(GALRecSettings.from_config(defaults() | {"item_id_embedding": False})))
    del old.__dict__["item_id_embedding"]
    assert pickle.loads(pickle.dumps(old)).item_id_embedding is True


def test_missing_key_is_an_error():
    values = defaults()
    del values["queue_size"]
    with pytest.raises(ConfigError, match="GALRec config keys missing: queue_size"):
        GALRecSettings.from_config(values)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("llm_tuning", "half", "llm_tuning must be one of lora, full, frozen"),
        ("item_text_mode", "words", "item_text_mode must be one of tokens, embedding, none"),
        ("llm_dtype", "int8", "llm_dtype must be one of"),
        ("train_sample", "some", "train_sample must be one of all, one_per_user"),
        ("contrast_tau", 0.0, "contrast_tau must be > 0"),
        ("queue_momentum", 1.0, r"queue_momentum must be in \[0, 1\)"),
        ("lambda2", -0.1, "lambda2 must be >= 0"),
        ("queue_size", -1, "queue_size must be >= 0"),
        ("llm_num_layers", 0, "llm_num_layers must be >= 1"),
        ("prompt_history_len", "20", "prompt_history_len must be an integer"),
        ("lambda1", "high", "lambda1 must be a number"),
        ("external_models", {"SASRec": 1}, "external_models must be a list"),
        ("external_user_skip", "False", "external_user_skip must be True or False"),
        ("prompt_user_template", "{user} {history}", r"must contain \{neighbors\} exactly once"),
        ("prompt_item_template", "{item} {item}", r"must contain \{item\} exactly once"),
    ],
)
def test_bad_values_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message):
        GALRecSettings.from_config(defaults() | {key: value})


def test_item_prompt_is_skipped_without_l2_and_l3():
    settings = GALRecSettings.from_config(defaults() | {"lambda2": 0.0, "lambda3": 0.0})
    assert not settings.uses_item_prompt


def test_every_ablation_label_is_a_valid_galrec_config_that_changes_it():
    from recbole_galrec.benchmark.plan import ABLATION_LABELS

    full = GALRecSettings.from_config(defaults())
    for label, (model, keys) in ABLATION_LABELS.items():
        assert model == "GALRec", label
        settings = GALRecSettings.from_config({**defaults(), **keys})
        assert settings != full, label


def _bad_value(annotation: str):
    """A value of the wrong type for a field annotated ``annotation``."""
    if "bool" in annotation:
        return "maybe"
    if "int" in annotation or "float" in annotation:
        return "abc"
    return 5  # str, list and dict fields


@pytest.mark.parametrize("mistake", ["bad value", "misspelt"])
def test_every_galrec_key_fails_before_the_dataset_is_loaded(workdir, monkeypatch, mistake, capsys):
    from dataclasses import fields

    from recbole_galrec import cli
    from recbole_galrec.running import steps as run

    def no_dataset(config):
        raise AssertionError("the dataset was created although a GALRec key was wrong")

    monkeypatch.setattr(run, "create_dataset", no_dataset)
    for field in [f for f in fields(GALRecSettings) if f.init]:
        if mistake == "bad value":
            argument = f"--{field.name}={_bad_value(str(field.type))}"
        else:
            argument = f"--{field.name[:-1]}={defaults()[field.name]!r}"
        assert cli.main(["--model=GALRec", "--dataset=ml-100k", argument]) == 2, argument
        message = capsys.readouterr().err
        expected = field.name if mistake == "bad value" else f"Unknown GALRec config keys: {field.name[:-1]}"
        assert message.startswith("error: ") and expected in message, (argument, message)


def test_types_are_read_from_the_annotation_not_its_spelling():
    from typing import Optional  # the other spelling of X | None, on purpose

    assert _typed("k", None, int | None) is None
    assert _typed("k", None, Optional[int]) is None  # noqa: UP045
    assert _typed("k", 3, Optional[int]) == 3  # noqa: UP045
    assert _typed("k", "q", list[str] | None) == ["q"]
    assert _typed("k", 2, float) == 2.0 and isinstance(_typed("k", 2, float), float)
    with pytest.raises(ConfigError, match="k must be set"):
        _typed("k", None, dict[str, str])
    with pytest.raises(ConfigError, match="k must be an integer, got 1.5"):
        _typed("k", 1.5, int | None)
    with pytest.raises(ConfigError, match="k must be a string, got 1"):
        _typed("k", 1, str)
    with pytest.raises(TypeError, match="unsupported annotation"):
        _typed("k", (1,), tuple[int])
    with pytest.raises(TypeError, match="unsupported annotation"):
        _typed("k", 1, int | str)


def test_one_choice_rule_for_keys_and_arguments():
    check_choice("llm_family", "decoder", ("encoder", "decoder"))
    with pytest.raises(ConfigError, match=r"^llm_family must be one of encoder, decoder; got 'seq2seq'\.$"):
        check_choice("llm_family", "seq2seq", ("encoder", "decoder"))
