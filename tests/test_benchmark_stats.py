"""The benchmark's paired comparison over test users: pairing by user id, seeds, notes, and the report."""

import json

import numpy as np
import pandas as pd
import pytest

from recbole_galrec import benchmark
from recbole_galrec.benchmark import stats
from recbole_galrec.running.per_user import PER_USER_METRICS, read_per_user, write_per_user

USERS = [f"u{i}" for i in range(300)]


def frame(values: np.ndarray, users=USERS) -> pd.DataFrame:
    hit = (values > 0).astype(int)
    return pd.DataFrame({"user": users, "ndcg@10": values, "hit@10": hit, "mrr@10": values / 2})


def synthetic(seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = np.where(rng.random(len(USERS)) < 0.4, rng.random(len(USERS)), 0.0)
    return np.clip(values + shift * (values > 0), 0, 1)


def results_with(tmp_path, per_user: dict) -> dict:
    """Results of runs {(label, seed): frame or None}; frames written as per-user files under tmp_path."""
    runs = []
    for (label, seed), data in per_user.items():
        path = None
        if data is not None:
            path = f"runs/{label}-seed{seed}.users.csv.gz"
            (tmp_path / "runs").mkdir(exist_ok=True)
            write_per_user(data, str(tmp_path / path))
        test = {key: 0.1 for key in benchmark.METRIC_COLUMNS}
        runs.append(
            {"model": label, "recbole_model": label, "seed": seed, "status": "ok", "test": test, "per_user": path}
        )
    return {"dataset": "d", "command": "c", "runs": runs}


def test_pairing_is_by_user_id_not_by_row_order(tmp_path):
    ref, model = synthetic(1), synthetic(2, shift=0.1)
    base = stats.compare(results_with(tmp_path, {("R", 1): frame(ref), ("M", 1): frame(model)}), tmp_path, "R")
    # The same values, the model's rows in another order: the same p-value.
    order = np.random.default_rng(3).permutation(len(USERS))
    shuffled = frame(model).iloc[order]
    same = stats.compare(results_with(tmp_path, {("R", 1): frame(ref), ("M", 1): shuffled}), tmp_path, "R")
    assert same["models"]["M"]["ndcg@10"]["p_value"] == base["models"]["M"]["ndcg@10"]["p_value"]
    # Values moved to other users (a wrong pairing): another p-value, the same means.
    wrong = frame(model[order])
    other = stats.compare(results_with(tmp_path, {("R", 1): frame(ref), ("M", 1): wrong}), tmp_path, "R")
    assert other["models"]["M"]["ndcg@10"]["p_value"] != base["models"]["M"]["ndcg@10"]["p_value"]
    assert other["models"]["M"]["ndcg@10"]["mean"] == pytest.approx(base["models"]["M"]["ndcg@10"]["mean"])


def test_paired_test_values_match_scipy_and_the_means():
    from scipy.stats import wilcoxon

    ref, model = synthetic(1), synthetic(1, shift=0.05)
    result = stats.paired_test(model, ref)
    assert result["p_value"] == pytest.approx(wilcoxon(model, ref).pvalue)
    assert result["relative_difference"] == pytest.approx(model.mean() / ref.mean() - 1)
    low, high = result["ci95"]
    assert 0 < low < result["relative_difference"] < high  # every changed user gained: a clear gain
    assert result["p_value"] < 1e-6
    assert stats.paired_test(ref, ref) | {"ci95": None} == {
        "mean": ref.mean(),
        "reference_mean": ref.mean(),
        "relative_difference": 0.0,
        "ci95": None,
        "p_value": 1.0,
    }
    # Deterministic: the bootstrap has a fixed seed.
    assert stats.paired_test(model, ref) == result


def test_seeds_are_averaged_per_user_over_the_seeds_both_models_share(tmp_path):
    per_user = {
        ("R", 1): frame(synthetic(1)),
        ("R", 2): frame(synthetic(2)),
        ("M", 1): frame(synthetic(3)),
        ("M", 2): frame(synthetic(4)),
        ("M", 3): frame(synthetic(5)),  # no reference run of seed 3: left out
    }
    result = stats.compare(results_with(tmp_path, per_user), tmp_path, "R")
    entry = result["models"]["M"]
    assert entry["seeds"] == [1, 2] and entry["users"] == len(USERS)
    mean_model = (synthetic(3) + synthetic(4)) / 2
    mean_ref = (synthetic(1) + synthetic(2)) / 2
    expected = stats.paired_test(np.round(mean_model, 6), np.round(mean_ref, 6))
    assert entry["ndcg@10"]["mean"] == pytest.approx(expected["mean"], abs=1e-6)
    assert entry["ndcg@10"]["p_value"] == pytest.approx(expected["p_value"], rel=1e-3)
    assert result["models"]["R"] == {"reference": True}


def test_runs_without_per_user_metrics_say_so_in_json_and_table(tmp_path):
    results = results_with(tmp_path, {("R", 1): frame(synthetic(1)), ("M", 1): None, ("N", 1): frame(synthetic(2))})
    results["reference"] = "R"
    benchmark.write_outputs(results, tmp_path)
    saved = json.loads((tmp_path / "d.json").read_text())
    assert "no per-user metrics of M" in saved["comparisons"]["models"]["M"]["note"]
    assert "p_value" in saved["comparisons"]["models"]["N"]["ndcg@10"]
    markdown = (tmp_path / "d.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in markdown.splitlines() if line.startswith("| ")}
    assert "no per-user metrics" in rows["M"] and "no per-user metrics" not in rows["N"]
    assert markdown == benchmark.markdown_table(saved)
    assert stats.compare(saved, tmp_path, None) is None
    assert stats.compare(saved, tmp_path, "Absent") is None


def test_per_user_file_round_trip_is_byte_stable(tmp_path):
    data = frame(synthetic(1))
    write_per_user(data, str(tmp_path / "a.csv.gz"))
    write_per_user(data.iloc[::-1], str(tmp_path / "b.csv.gz"))
    assert (tmp_path / "a.csv.gz").read_bytes() == (tmp_path / "b.csv.gz").read_bytes()
    back = read_per_user(tmp_path / "a.csv.gz")
    assert list(back.columns) == list(PER_USER_METRICS) and back.index.dtype == object
    assert np.allclose(back.loc[USERS, "ndcg@10"], data["ndcg@10"], atol=1e-6)


def test_the_report_shows_both_protocols_and_where_a_model_helps(tmp_path):
    """Per-user files with the filtered columns and the group columns: the comparison covers both protocols and
    the report has the filtered columns, the protocols' line and a breakdown by popularity and history."""
    rng = np.random.default_rng(0)
    counts, lengths = rng.integers(0, 100, len(USERS)), rng.integers(3, 40, len(USERS))

    def full(values):
        data = frame(values)
        return data.assign(
            **{"ndcg@10_filtered": values * 1.3, "hit@10_filtered": data["hit@10"], "mrr@10_filtered": values / 2},
            item_count=counts,
            history_len=lengths,
        )

    ref, model = synthetic(1), synthetic(2, shift=0.1)
    results = results_with(tmp_path, {("R", 1): full(ref), ("M", 1): full(model)})
    for run in results["runs"]:
        run["test_viewed_filtered"] = {"ndcg@10": 0.2, "hit@10": 0.3}
    results["comparisons"] = stats.compare(results, tmp_path, "R")
    entry = results["comparisons"]["models"]["M"]
    assert entry["ndcg@10_filtered"]["mean"] == pytest.approx(1.3 * entry["ndcg@10"]["mean"])
    groups = entry["breakdown"]["popularity"]
    assert groups[0]["group"] == "0-4" and sum(g["ndcg@10"]["users"] for g in groups) == len(USERS)
    assert {"ndcg@10", "ndcg@10_filtered"} <= set(groups[0])
    text = benchmark.markdown_table(results)
    assert "ndcg@10 filtered" in text and "filtered ndcg@10 vs R" in text and "viewed filtered" in text
    assert "## Where each model gains or loses against R" in text
    assert "M by test item's training users:" in text and "M by user's earlier items:" in text
    # runs recorded before the filtered protocol: no filtered comparison, and the report still renders
    old = results_with(tmp_path, {("R", 1): frame(ref), ("M", 1): frame(model)})
    old["comparisons"] = stats.compare(old, tmp_path, "R")
    assert "ndcg@10_filtered" not in old["comparisons"]["models"]["M"]
    assert old["comparisons"]["models"]["M"]["breakdown"] == {}
    assert "## Where each model gains" not in benchmark.markdown_table(old)
