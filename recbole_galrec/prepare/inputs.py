"""Reading the input files: opening (gzip or plain), decoding, parsing, and messages that name the place."""

from __future__ import annotations

import ast
import csv
import gzip
import json
import logging
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from recbole_galrec.errors import PrepareError
from recbole_galrec.prepare.records import ItemText
from recbole_galrec.prepare.text import clean_cell, snippet

logger = logging.getLogger(__name__)

# Column names that tabular inputs (RecBole .item files, item-text tables) may use for each text field.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "title": ("title", "item_name", "movie_title", "name"),
    "categories": ("categories", "category", "genre", "genres"),
    "brand": ("brand",),
}
RECBOLE_TYPES = frozenset({"token", "token_seq", "float", "float_seq"})
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class InputFile:
    """An input file with what is needed to report problems in it."""

    path: Path
    option: str  # the command-line option that names the file
    expected: str  # what the file should be, e.g. "an Amazon 2014 review file"

    def error(self, problem: str, lineno: int | None = None, hint: str | None = None) -> PrepareError:
        where = f"{self.path}, line {lineno}" if lineno is not None else f"{self.path}"
        return PrepareError(f"{where}: {problem}; {hint or f'{self.option} expects {self.expected}'}")

    def open(self) -> IO[bytes]:
        """Open for reading bytes, decompressing when the file starts with the gzip magic bytes."""
        if not self.path.exists():
            raise self.error("file not found", hint=f"check the path given to {self.option}")
        if not self.path.is_file():
            raise self.error("not a regular file", hint=f"{self.option} expects {self.expected}")
        try:
            with self.path.open("rb") as raw:
                compressed = raw.read(2) == GZIP_MAGIC
            return gzip.open(self.path, "rb") if compressed else self.path.open("rb")
        except OSError as exc:
            raise self.error(f"cannot open ({exc.strerror or exc})", hint="check the file's permissions") from exc

    def decoded_lines(self) -> Iterator[tuple[int, str]]:
        """Yield ``(line number, text)`` for every line, line break included, decoded from UTF-8.

        Decoding line by line gives the exact line of an encoding error; a leading byte order mark
        is dropped.
        """
        lineno = 0
        with self.open() as handle:
            try:
                for raw in handle:
                    lineno += 1
                    text = raw.decode("utf-8")
                    yield lineno, text.removeprefix("\ufeff") if lineno == 1 else text
            except UnicodeDecodeError as exc:
                raise self.error(
                    f"not UTF-8 text ({exc.reason})",
                    lineno,
                    f"{self.option} expects {self.expected} in UTF-8",
                ) from exc
            except (OSError, EOFError) as exc:
                raise self.error(
                    f"cannot read past line {lineno} ({exc})",
                    hint="the file may be truncated; download it again",
                ) from exc

    def lines(self) -> Iterator[tuple[int, str]]:
        """Yield ``(line number, stripped line)`` for every non-blank line."""
        for lineno, line in self.decoded_lines():
            text = line.strip()
            if text:
                yield lineno, text

    def objects(self, allow_literal: bool) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield ``(line number, dict)`` for a file of JSON objects (or Python dict literals) per line."""
        kind = "a JSON object or a Python dict literal" if allow_literal else "a JSON object"
        for lineno, text in self.lines():
            record = _parse_object(text, allow_literal)
            if not isinstance(record, dict):
                raise self.error(f"expected {kind}, found {snippet(text)}", lineno)
            yield lineno, record

    def rows(self, quoting: int) -> Iterator[tuple[int, list[str]]]:
        """Yield ``(line number, cells)`` for every non-blank row of a tab-separated file."""
        reader = csv.reader((line for _, line in self.decoded_lines()), delimiter="\t", quoting=quoting)
        try:
            for row in reader:
                if any(cell.strip() for cell in row):
                    yield reader.line_num, row
        except csv.Error as exc:
            raise self.error(f"malformed tab-separated row ({exc})", reader.line_num) from exc

    def identifier(self, record: dict[str, Any], key: str, lineno: int) -> str:
        """A required id field as a stripped string."""
        value = record.get(key)
        text = "" if value is None else str(value).strip()
        if not text:
            raise self.error(f"missing required field {key!r}", lineno)
        return self.checked_id(text, key, lineno)

    def checked_id(self, text: str, key: str, lineno: int) -> str:
        if any(char in text for char in "\t\r\n"):
            raise self.error(f"field {key!r} contains a tab or line break ({snippet(text)})", lineno)
        return sys.intern(text)

    def number(self, value: object, key: str, lineno: int) -> float:
        """A required numeric field as a finite float."""
        if value is None or (isinstance(value, str) and not value.strip()):
            raise self.error(f"missing required field {key!r}", lineno)
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise self.error(f"field {key!r} is not a number ({snippet(str(value))})", lineno)
        return number


_UNPARSED = object()


def _parse_object(text: str, allow_literal: bool) -> object:
    """Parse a line as JSON, then, if allowed, as a Python literal (never evaluated as code)."""
    try:
        return json.loads(text)
    except ValueError:
        if not allow_literal:
            return _UNPARSED
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _UNPARSED


def header_names(file: InputFile, lineno: int, header: list[str], typed: bool) -> list[str]:
    """Field names of a header row; with ``typed``, cells must be RecBole's ``name:type``."""
    names = []
    for cell in header:
        name, sep, ftype = cell.strip().partition(":")
        if typed and (not sep or ftype not in RECBOLE_TYPES):
            raise file.error(
                f"header field {cell!r} is not of the form name:type with a RecBole type "
                f"({', '.join(sorted(RECBOLE_TYPES))})",
                lineno,
            )
        names.append(name.strip())
    if len(set(names)) != len(names):
        raise file.error(f"the header repeats a field name ({', '.join(names)})", lineno)
    return names


def read_item_table(
    file: InputFile, quoting: int, typed: bool, wanted: set[str], id_field: str | None = None
) -> ItemText:
    """Text fields of the items in ``wanted`` from a tab-separated table with a header row.

    The item id is the column ``id_field``, or the first column when it is ``None``; text columns are
    found by :data:`FIELD_ALIASES`; other columns are ignored.
    """
    rows = file.rows(quoting)
    first = next(rows, None)
    if first is None:
        raise file.error("the file is empty")
    header_line, header = first
    names = header_names(file, header_line, header, typed)
    if id_field is None:
        id_column = 0
    elif id_field in names:
        id_column = names.index(id_field)
    else:
        raise file.error(f"no {id_field!r} field in the header ({', '.join(names)})", header_line)
    columns: dict[str, int] = {}
    for field, aliases in FIELD_ALIASES.items():
        found = [index for index, name in enumerate(names) if name in aliases and index != id_column]
        if found:
            columns[field] = min(found, key=lambda index: aliases.index(names[index]))
    if not columns:
        logger.warning("%s has no title, categories or brand column; items get no text", file.path)

    item_text: ItemText = {}
    for lineno, row in rows:
        if len(row) != len(names):
            raise file.error(f"expected {len(names)} tab-separated fields as in the header, found {len(row)}", lineno)
        item = row[id_column].strip()
        if not item:
            raise file.error("empty item id", lineno)
        item = file.checked_id(item, names[id_column], lineno)
        if item in wanted and item not in item_text:
            item_text[item] = {field: clean_cell(field, row[column]) for field, column in columns.items()}
    logger.info("read text of %d items from %s", len(item_text), file.path)
    return item_text
