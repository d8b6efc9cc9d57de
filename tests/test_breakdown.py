"""Where a model helps: paired comparisons per popularity and history-length group."""

import numpy as np
import pandas as pd

from recbole_galrec.benchmark.breakdown import breakdown, history_groups, popularity_groups


def test_popularity_groups_are_cold_items_then_quintiles_of_the_rest():
    counts = np.array([0, 1, 4, 4, 5, 6, 7, 8, 9, 10, 20, 30, 40, 50, 60])
    groups = popularity_groups(counts)
    labels = [label for label, _ in groups]
    assert labels[0] == "0-4" and groups[0][1].sum() == 4
    masks = np.stack([mask for _, mask in groups])
    assert (masks.sum(axis=0) == 1).all()  # every user in exactly one group
    assert len(groups) == 6
    for _, mask in groups[1:]:
        assert counts[mask].min() >= 5


def test_history_groups_merge_equal_edges_and_cover_everyone():
    lengths = np.array([3] * 50 + [4, 5, 6, 7, 8, 9, 10, 11, 12, 13])
    groups = history_groups(lengths)
    masks = np.stack([mask for _, mask in groups])
    assert (masks.sum(axis=0) == 1).all()
    assert groups[0][0].startswith("3-") and len(groups) < 5  # the 3s fill several quintiles: one group


def test_a_model_better_on_cold_items_only_shows_it_in_the_first_group():
    rng = np.random.default_rng(0)
    n = 2000
    users = [str(u) for u in range(n)]
    counts = rng.integers(0, 200, size=n)
    reference = rng.random(n)
    model = reference + np.where(counts <= 4, 0.3, 0.0)  # helps the cold items, nothing else
    frames = [pd.DataFrame({"ndcg@10": values}, index=users) for values in (model, reference)]
    groups_from = pd.DataFrame({"item_count": counts, "history_len": rng.integers(3, 50, size=n)}, index=users)
    result = breakdown(frames[0], frames[1], groups_from, ["ndcg@10"])
    popularity = result["popularity"]
    assert popularity[0]["group"] == "0-4"
    assert popularity[0]["ndcg@10"]["p_value"] < 1e-6 and popularity[0]["ndcg@10"]["relative_difference"] > 0.3
    assert all(row["ndcg@10"]["relative_difference"] == 0 for row in popularity[1:])
    assert sum(row["ndcg@10"]["users"] for row in popularity) == n
    assert sum(row["ndcg@10"]["users"] for row in result["history"]) == n


def test_without_group_columns_there_is_no_breakdown():
    frame = pd.DataFrame({"ndcg@10": [0.1, 0.2]}, index=["a", "b"])
    assert breakdown(frame, frame, frame, ["ndcg@10"]) == {}
