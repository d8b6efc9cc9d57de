"""What flows between the steps: interactions, a source's output, the filtered dataset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

DEFAULT_K = 5
TEXT_FIELDS: tuple[str, ...] = ("title", "categories", "brand")

# Cleaned text fields (a subset of TEXT_FIELDS) per item id.
ItemText = dict[str, dict[str, str]]


class Interaction(NamedTuple):
    """One user-item interaction as read from the input."""

    user: str
    item: str
    timestamp: float


@dataclass
class SourceData:
    """What a source reader returns: interactions in input order and cleaned text per item."""

    records: list[Interaction]
    item_text: ItemText
    origin: str  # the interaction file, for messages


@dataclass
class PreparedDataset:
    """Filtered, ordered interactions and the rows of the item file."""

    interactions: list[Interaction]
    items: list[str]
    text_fields: list[str]
    item_text: ItemText
    stats: dict[str, Any]
