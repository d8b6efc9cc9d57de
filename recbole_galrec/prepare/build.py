"""The steps every source goes through: merge repeated pairs, k-core filtering, chronological order."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Any

from recbole_galrec.errors import PrepareError
from recbole_galrec.prepare.records import DEFAULT_K, TEXT_FIELDS, Interaction, PreparedDataset, SourceData

logger = logging.getLogger(__name__)


def deduplicate(records: Sequence[Interaction]) -> list[Interaction]:
    """Each user-item pair's earliest interaction, in input order; equal times go to the earlier line."""
    best: dict[tuple[str, str], int] = {}
    for position, record in enumerate(records):
        key = (record.user, record.item)
        kept = best.get(key)
        if kept is None or record.timestamp < records[kept].timestamp:
            best[key] = position
    return [records[position] for position in sorted(best.values())]


def k_core(records: list[Interaction], k: int) -> tuple[list[Interaction], int]:
    """Remove users and items with fewer than ``k`` interactions, repeatedly, until none is left.

    Returns the remaining interactions, in their order, and the number of passes made.
    """
    users = Counter(record.user for record in records)
    items = Counter(record.item for record in records)
    passes = 0
    while True:
        passes += 1
        kept: list[Interaction] = []
        removed: list[Interaction] = []
        for record in records:
            enough = users[record.user] >= k and items[record.item] >= k
            (kept if enough else removed).append(record)
        if not removed:
            return kept, passes
        for record in removed:  # counts change only after the pass: every pass applies one rule to all
            users[record.user] -= 1
            items[record.item] -= 1
        records = kept


def chronological(records: Iterable[Interaction]) -> list[Interaction]:
    """Group by user, in order of first appearance, and sort each user's interactions by time.

    The sort is stable, so equal timestamps keep the order of ``records`` (the input order).
    """
    histories: dict[str, list[Interaction]] = {}
    for record in records:
        histories.setdefault(record.user, []).append(record)
    by_time = attrgetter("timestamp")
    return [record for history in histories.values() for record in sorted(history, key=by_time)]


def build_dataset(data: SourceData, k: int = DEFAULT_K, name: str = "", source: str = "") -> PreparedDataset:
    """Apply the common rules to what a source reader returned."""
    if k < 1:
        raise PrepareError(f"--k must be at least 1, got {k}")
    records = data.records
    if not records:
        raise PrepareError(f"{data.origin}: no interactions found; check that the file is the right one")
    unique = deduplicate(records)
    logger.info("kept %d of %d interactions after merging repeated user-item pairs", len(unique), len(records))
    remaining, passes = k_core(unique, k)
    if not remaining:
        n_users = len({record.user for record in unique})
        n_items = len({record.item for record in unique})
        raise PrepareError(
            f"{data.origin}: no interactions left after {k}-core filtering of {len(unique)} interactions "
            f"({n_users} users, {n_items} items); use a smaller --k"
        )
    logger.info("%d-core filtering settled after %d passes with %d interactions", k, passes, len(remaining))
    interactions = chronological(remaining)

    items = list(dict.fromkeys(record.item for record in interactions))
    text_fields = [field for field in TEXT_FIELDS if any(field in data.item_text.get(i, {}) for i in items)]
    without_text = sum(1 for item in items if item not in data.item_text)
    without_title = sum(1 for item in items if not data.item_text.get(item, {}).get("title"))
    if without_text:
        logger.warning("%d of %d items have no text in the input", without_text, len(items))
    if not text_fields:
        logger.warning("no item has a title, categories or brand; %s.item will hold only item ids", name)

    n_users = len({record.user for record in interactions})
    stats: dict[str, Any] = {
        "dataset": name,
        "source": source,
        "k": k,
        "raw_interactions": len(records),
        "duplicates_removed": len(records) - len(unique),
        "filter_passes": passes,
        "users": n_users,
        "items": len(items),
        "interactions": len(interactions),
        "density": len(interactions) / (n_users * len(items)),
        "mean_sequence_length": len(interactions) / n_users,
        "items_without_text": without_text,
        "items_without_title": without_title,
    }
    return PreparedDataset(interactions, items, text_fields, data.item_text, stats)
