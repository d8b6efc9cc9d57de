"""Cleaning of the text fields (title, categories, brand) read from the sources."""

from __future__ import annotations

import ast
import html
import math
import re
from collections.abc import Iterable, Iterator

_WHITESPACE = re.compile(r"\s+")


def clean_text(value: object) -> str:
    """Decode HTML entities and collapse whitespace; ``None`` and NaN become ``""``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return _WHITESPACE.sub(" ", html.unescape(str(value))).strip()


def clean_categories(names: Iterable[object]) -> str:
    """Join category names into a space-separated token sequence, one token per name, without repeats."""
    tokens: list[str] = []
    for name in _flatten(names):
        token = clean_text(name).replace(" ", "_")
        if token and token not in tokens:
            tokens.append(token)
    return " ".join(tokens)


def clean_cell(field: str, cell: str) -> str:
    """A table cell of the text field ``field``, cleaned."""
    return _categories_from_cell(cell) if field == "categories" else clean_text(cell)


def snippet(text: str, width: int = 60) -> str:
    """``text`` quoted and cut to ``width`` characters, to show bad input in a message."""
    return repr(text if len(text) <= width else text[:width] + "...")


def _flatten(values: Iterable[object]) -> Iterator[object]:
    for value in values:
        if isinstance(value, list | tuple):
            yield from _flatten(value)
        else:
            yield value


def _categories_from_cell(cell: str) -> str:
    """Categories from a table cell.

    Three forms are understood: quoted names separated by commas, as in RecBole's Amazon files
    (``'Beauty', 'Arts, Crafts & Sewing'``, read as a Python literal, never run); names separated by
    commas, as in Yelp (``Food, Coffee & Tea``); and, without commas, space-separated tokens that are
    kept as they are.
    """
    text = cell.strip()
    if text[:1] in ("'", '"'):
        try:
            names = ast.literal_eval(f"[{text}]")
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            names = None
        if isinstance(names, list) and all(isinstance(name, str) for name in names):
            return clean_categories(names)
    if "," in text:
        return clean_categories(_unquote(part.strip()) for part in text.split(","))
    return " ".join(clean_text(text).split())


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text
