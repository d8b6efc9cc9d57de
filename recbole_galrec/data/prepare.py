"""Turn the raw public datasets used by GAL-Rec into RecBole atomic files.

Usage::

    python -m recbole_galrec.data.prepare amazon \\
        --reviews reviews_Beauty.json.gz --meta meta_Beauty.json.gz --output dataset/amazon-beauty
    python -m recbole_galrec.data.prepare yelp \\
        --business yelp_academic_dataset_business.json \\
        --reviews yelp_academic_dataset_review.json --output dataset/yelp
    python -m recbole_galrec.data.prepare recbole --input raw/Amazon_Beauty --output dataset/amazon-beauty
    python -m recbole_galrec.data.prepare sequences \\
        --sequences Beauty.txt --item-text Beauty_item_text.tsv --output dataset/beauty

``--output DIR/NAME`` names the dataset folder: the command writes ``DIR/NAME/NAME.inter``
(``user_id:token``, ``item_id:token``, ``timestamp:float``), ``DIR/NAME/NAME.item`` (``item_id:token``
and, when the source has them, ``title``, ``categories`` and ``brand`` as ``token_seq`` fields) and
``DIR/NAME/NAME.stats.json``. Existing files of those names are replaced; ``--k`` (default 5) sets the
k-core threshold.

Sources:

``amazon``
    Amazon 2014 review file (one JSON object per line with ``reviewerID``, ``asin`` and
    ``unixReviewTime``) and metadata file (one Python dict literal per line, read with
    ``ast.literal_eval``; JSON lines are accepted as well). Gzipped or plain.
``yelp``
    Yelp Open Dataset business and review files (JSON lines). The review ``date`` is read as UTC;
    the business ``name`` becomes the title and its comma-separated ``categories`` the categories.
``recbole``
    A folder of RecBole atomic files ``X.inter`` (with ``user_id``, ``item_id`` and ``timestamp``
    fields; other names can be given with ``--user-field``, ``--item-field``, ``--time-field``) and
    optionally ``X.item``. Other columns, such as ``rating``, are dropped.
``sequences``
    One line per user, ``user item item ...`` in time order; an item's timestamp is its position in
    the line. ``--item-text`` optionally adds a tab-separated table with a header row whose first
    column is the item id.

Every source goes through the same steps: each user-item pair keeps only its earliest interaction
(ties go to the earlier line), users and items with fewer than k interactions are removed until none
is left, and each user's interactions are written in time order, ties kept in input order. Users are
written in the order of their first remaining interaction in the input, items in the order of their
first appearance in the written ``.inter`` file. Ids are written as they appear in the input.
Text fields have HTML entities decoded and runs of whitespace (tabs, line breaks) collapsed to one
space; a category name's inner spaces become underscores so that it stays one token
(``Nail Polish`` becomes ``Nail_Polish``); a missing value is written as an empty field. Fields that
contain a double quote are quoted CSV-style, which is how RecBole's reader (pandas) expects them.

Bad input raises :class:`PrepareError`, whose message names the file, the line where relevant, the
problem and what to do; the command prints it as ``error: ...`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import ast
import csv
import gzip
import html
import json
import logging
import math
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from operator import attrgetter
from pathlib import Path
from typing import IO, Any, NamedTuple

logger = logging.getLogger(__name__)

DEFAULT_K = 5
TEXT_FIELDS: tuple[str, ...] = ("title", "categories", "brand")
INTER_HEADER: tuple[str, ...] = ("user_id:token", "item_id:token", "timestamp:float")
# Column names that tabular inputs (RecBole .item files, item-text tables) may use for each text field.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "title": ("title", "item_name", "movie_title", "name"),
    "categories": ("categories", "category", "genre", "genres"),
    "brand": ("brand",),
}
RECBOLE_TYPES = frozenset({"token", "token_seq", "float", "float_seq"})
YELP_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d")
GZIP_MAGIC = b"\x1f\x8b"

_WHITESPACE = re.compile(r"\s+")

ItemText = dict[str, dict[str, str]]


class PrepareError(Exception):
    """Unusable input or output; the message names the file, the problem and what to do."""


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


# --------------------------------------------------------------------------- text cleaning


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


def _clean_cell(field: str, cell: str) -> str:
    return _categories_from_cell(cell) if field == "categories" else clean_text(cell)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _snippet(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[:width] + "...")


# --------------------------------------------------------------------------- reading input files


@dataclass(frozen=True)
class _InputFile:
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
            raise self.error(
                f"cannot open ({exc.strerror or exc})", hint="check the file's permissions"
            ) from exc

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
                raise self.error(f"expected {kind}, found {_snippet(text)}", lineno)
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
            raise self.error(f"field {key!r} contains a tab or line break ({_snippet(text)})", lineno)
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
            raise self.error(f"field {key!r} is not a number ({_snippet(str(value))})", lineno)
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


def _header_names(file: _InputFile, lineno: int, header: list[str], typed: bool) -> list[str]:
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


def _read_item_table(
    file: _InputFile, quoting: int, typed: bool, wanted: set[str], id_field: str | None = None
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
    names = _header_names(file, header_line, header, typed)
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
            raise file.error(
                f"expected {len(names)} tab-separated fields as in the header, found {len(row)}", lineno
            )
        item = row[id_column].strip()
        if not item:
            raise file.error("empty item id", lineno)
        item = file.checked_id(item, names[id_column], lineno)
        if item in wanted and item not in item_text:
            item_text[item] = {field: _clean_cell(field, row[column]) for field, column in columns.items()}
    logger.info("read text of %d items from %s", len(item_text), file.path)
    return item_text


# --------------------------------------------------------------------------- sources


def _read_reviews(file: _InputFile, user_key: str, item_key: str, timestamp, allow_literal: bool) -> list:
    """One interaction per review object of ``file``; ``timestamp(review, lineno)`` reads its time."""
    records = []
    for lineno, review in file.objects(allow_literal=allow_literal):
        user = file.identifier(review, user_key, lineno)
        item = file.identifier(review, item_key, lineno)
        records.append(Interaction(user, item, timestamp(review, lineno)))
    logger.info("read %d reviews from %s", len(records), file.path)
    return records


def _item_objects(file: _InputFile, key: str, wanted: set[str], allow_literal: bool):
    """``(item id, object)`` for the first object of each wanted item in ``file``; the others are skipped."""
    seen: set[str] = set()
    for lineno, record in file.objects(allow_literal=allow_literal):
        item = file.identifier(record, key, lineno)
        if item in wanted and item not in seen:
            seen.add(item)
            yield item, record


def read_amazon(reviews: Path, meta: Path) -> SourceData:
    """Amazon 2014: a review file and a metadata file, gzipped or plain."""
    review_file = _InputFile(
        Path(reviews), "--reviews", "an Amazon 2014 review file (reviews_*.json.gz, one JSON object a line)"
    )
    records = _read_reviews(
        review_file,
        "reviewerID",
        "asin",
        lambda review, lineno: review_file.number(review.get("unixReviewTime"), "unixReviewTime", lineno),
        allow_literal=True,
    )

    meta_file = _InputFile(
        Path(meta), "--meta", "an Amazon 2014 metadata file (meta_*.json.gz, one Python dict literal a line)"
    )
    wanted = {record.item for record in records}
    item_text: ItemText = {}
    for item, product in _item_objects(meta_file, "asin", wanted, allow_literal=True):
        fields = {}
        if "title" in product:
            fields["title"] = clean_text(product["title"])
        categories = product.get("categories", product.get("category"))  # 2018 files say "category"
        if categories is not None:
            if not isinstance(categories, list | tuple):
                categories = [categories]
            fields["categories"] = clean_categories(categories)
        if "brand" in product:
            fields["brand"] = clean_text(product["brand"])
        item_text[item] = fields
    logger.info("read metadata of %d reviewed items from %s", len(item_text), meta_file.path)
    return SourceData(records, item_text, str(review_file.path))


def _yelp_timestamp(file: _InputFile, value: object, lineno: int) -> float:
    text = "" if value is None else str(value).strip()
    if not text:
        raise file.error("missing required field 'date'", lineno)
    for date_format in YELP_DATE_FORMATS:
        try:
            parsed = datetime.strptime(text, date_format)
        except ValueError:
            continue
        # timezone.utc rather than datetime.UTC, which needs Python 3.11
        return parsed.replace(tzinfo=timezone.utc).timestamp()  # noqa: UP017
    raise file.error(f"field 'date' is not of the form YYYY-MM-DD HH:MM:SS ({_snippet(text)})", lineno)


def read_yelp(business: Path, reviews: Path) -> SourceData:
    """Yelp Open Dataset: the review and business JSON-lines files."""
    review_file = _InputFile(
        Path(reviews), "--reviews", "Yelp's yelp_academic_dataset_review.json (one JSON object a line)"
    )
    records = _read_reviews(
        review_file,
        "user_id",
        "business_id",
        lambda review, lineno: _yelp_timestamp(review_file, review.get("date"), lineno),
        allow_literal=False,
    )

    business_file = _InputFile(
        Path(business), "--business", "Yelp's yelp_academic_dataset_business.json (one JSON object a line)"
    )
    wanted = {record.item for record in records}
    item_text: ItemText = {}
    for item, place in _item_objects(business_file, "business_id", wanted, allow_literal=False):
        categories = place.get("categories")
        if isinstance(categories, str):
            categories = categories.split(",")
        item_text[item] = {
            "title": clean_text(place.get("name")),
            "categories": clean_categories(categories or []),
        }
    logger.info("read %d reviewed businesses from %s", len(item_text), business_file.path)
    return SourceData(records, item_text, str(review_file.path))


def _find_inter_file(folder: Path) -> Path:
    if not folder.is_dir():
        what = "not found" if not folder.exists() else "not a directory"
        raise PrepareError(f"{folder}: {what}; --input expects the folder that holds a RecBole X.inter file")
    named = folder / f"{folder.resolve().name}.inter"
    if named.is_file():
        return named
    candidates = sorted(path for path in folder.glob("*.inter") if path.is_file())
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise PrepareError(f"{folder}: no .inter file in this folder; --input expects the folder of X.inter")
    raise PrepareError(
        f"{folder}: several .inter files ({', '.join(path.name for path in candidates)}) and none named "
        f"{named.name}; put each dataset in a folder of its own name"
    )


def read_recbole(
    input_dir: Path, user_field: str = "user_id", item_field: str = "item_id", time_field: str = "timestamp"
) -> SourceData:
    """A folder of RecBole atomic files: ``X.inter`` and, if present, ``X.item``."""
    inter_path = _find_inter_file(Path(input_dir))
    inter_file = _InputFile(
        inter_path,
        "--input",
        f"a RecBole .inter file with {user_field}, {item_field} and {time_field} fields",
    )
    rows = inter_file.rows(csv.QUOTE_MINIMAL)
    first = next(rows, None)
    if first is None:
        raise inter_file.error("the file is empty")
    header_line, header = first
    names = _header_names(inter_file, header_line, header, typed=True)
    missing = [field for field in (user_field, item_field, time_field) if field not in names]
    if missing:
        raise inter_file.error(
            f"no {', '.join(map(repr, missing))} field in the header ({', '.join(names)})",
            header_line,
            "name the fields with --user-field, --item-field and --time-field",
        )
    user_col, item_col, time_col = (names.index(field) for field in (user_field, item_field, time_field))
    dropped = [name for name in names if name not in (user_field, item_field, time_field)]
    if dropped:
        logger.info("ignoring the fields %s of %s", ", ".join(dropped), inter_path)
    records = []
    for lineno, row in rows:
        if len(row) != len(names):
            raise inter_file.error(
                f"expected {len(names)} tab-separated fields as in the header, found {len(row)}", lineno
            )
        user = inter_file.checked_id(row[user_col].strip(), user_field, lineno)
        item = inter_file.checked_id(row[item_col].strip(), item_field, lineno)
        if not user or not item:
            raise inter_file.error(f"empty {user_field if not user else item_field}", lineno)
        records.append(Interaction(user, item, inter_file.number(row[time_col], time_field, lineno)))
    logger.info("read %d interactions from %s", len(records), inter_path)

    item_text: ItemText = {}
    item_path = inter_path.with_suffix(".item")
    if item_path.is_file():
        item_file = _InputFile(item_path, "--input", f"a RecBole .item file with an {item_field} field")
        wanted = {record.item for record in records}
        item_text = _read_item_table(item_file, csv.QUOTE_MINIMAL, True, wanted, id_field=item_field)
    else:
        logger.warning("%s not found; items get no text", item_path)
    return SourceData(records, item_text, str(inter_path))


def read_sequences(sequences: Path, item_text: Path | None = None) -> SourceData:
    """One ``user item item ...`` line per user; an item's timestamp is its position in the line."""
    sequence_file = _InputFile(
        Path(sequences), "--sequences", "one line per user of the form 'user item item ...'"
    )
    records = []
    for lineno, text in sequence_file.lines():
        user, *items = text.split()
        if not items:
            raise sequence_file.error(f"user {user!r} has no items", lineno)
        records.extend(
            Interaction(sys.intern(user), sys.intern(item), float(position))
            for position, item in enumerate(items)
        )
    logger.info("read %d interactions from %s", len(records), sequence_file.path)

    texts: ItemText = {}
    if item_text is not None:
        table = _InputFile(
            Path(item_text),
            "--item-text",
            "a tab-separated table with a header row whose first column is the item id",
        )
        texts = _read_item_table(table, csv.QUOTE_NONE, False, {record.item for record in records})
    return SourceData(records, texts, str(sequence_file.path))


# --------------------------------------------------------------------------- filtering


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
    logger.info(
        "kept %d of %d interactions after merging repeated user-item pairs", len(unique), len(records)
    )
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


# --------------------------------------------------------------------------- writing


def check_output(output: Path) -> tuple[Path, str]:
    """The dataset folder and name from ``--output DIR/NAME``; fails early when it cannot be used."""
    folder = Path(output)
    name = folder.name
    if name in ("", ".", ".."):
        raise PrepareError(f"{output}: --output must end with the dataset name, e.g. dataset/amazon-beauty")
    if folder.exists() and not folder.is_dir():
        raise PrepareError(
            f"{folder}: exists and is not a directory; --output names the dataset folder (DIR/NAME), "
            "so remove the file or choose another path"
        )
    return folder, name


def _format_timestamp(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _write_rows(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Write a tab-separated file through a temporary file, so a failure leaves no half-written file."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        with temporary.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise PrepareError(
            f"{path}: cannot write ({exc.strerror or exc}); check that the output folder is writable"
        ) from exc


def write_dataset(prepared: PreparedDataset, output: Path) -> dict[str, Path]:
    """Write ``NAME.inter``, ``NAME.item`` and ``NAME.stats.json`` into the folder ``output``."""
    folder, name = check_output(output)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrepareError(
            f"{folder}: cannot create the output folder ({exc.strerror or exc}); choose another --output"
        ) from exc
    paths = {suffix: folder / f"{name}.{suffix}" for suffix in ("inter", "item", "stats.json")}

    _write_rows(
        paths["inter"],
        INTER_HEADER,
        ((r.user, r.item, _format_timestamp(r.timestamp)) for r in prepared.interactions),
    )
    fields = prepared.text_fields
    _write_rows(
        paths["item"],
        ["item_id:token", *(f"{field}:token_seq" for field in fields)],
        (
            [item, *(prepared.item_text.get(item, {}).get(field, "") for field in fields)]
            for item in prepared.items
        ),
    )
    try:
        paths["stats.json"].write_text(json.dumps(prepared.stats, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise PrepareError(f"{paths['stats.json']}: cannot write ({exc.strerror or exc})") from exc
    for path in paths.values():
        logger.info("wrote %s", path)
    return paths


def format_summary(stats: dict[str, Any]) -> str:
    """One line with the dataset's size, as printed at the end of a run."""
    return (
        f"{stats['dataset']}: {stats['users']} users, {stats['items']} items, "
        f"{stats['interactions']} interactions, density {stats['density']:.6f}, "
        f"mean sequence length {stats['mean_sequence_length']:.2f}"
    )


def prepare(data: SourceData, output: Path, k: int = DEFAULT_K, source: str = "") -> dict[str, Any]:
    """Filter ``data``, write it to ``output`` (``DIR/NAME``) and return the statistics."""
    _, name = check_output(output)
    prepared = build_dataset(data, k, name, source)
    write_dataset(prepared, output)
    logger.info("%s", format_summary(prepared.stats))
    return prepared.stats


# --------------------------------------------------------------------------- command line

_LOADERS: dict[str, Callable[[argparse.Namespace], SourceData]] = {
    "amazon": lambda args: read_amazon(args.reviews, args.meta),
    "yelp": lambda args: read_yelp(args.business, args.reviews),
    "recbole": lambda args: read_recbole(args.input, args.user_field, args.item_field, args.time_field),
    "sequences": lambda args: read_sequences(args.sequences, args.item_text),
}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per source, each with --output, --k and --quiet."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--output",
        type=Path,
        required=True,
        metavar="DIR/NAME",
        help="dataset folder to write; its last part is the dataset name (e.g. dataset/amazon-beauty)",
    )
    common.add_argument(
        "--k",
        type=_positive_int,
        default=DEFAULT_K,
        help=f"minimum number of interactions per user and per item (default {DEFAULT_K})",
    )
    common.add_argument("-q", "--quiet", action="store_true", help="log warnings only")

    parser = argparse.ArgumentParser(
        prog="python -m recbole_galrec.data.prepare",
        description="Write RecBole atomic files (.inter, .item) for a raw recommendation dataset.",
    )
    sources = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")

    amazon = sources.add_parser("amazon", parents=[common], help="Amazon 2014 review and metadata files")
    amazon.add_argument("--reviews", type=Path, required=True, help="reviews_*.json(.gz)")
    amazon.add_argument("--meta", type=Path, required=True, help="meta_*.json(.gz)")

    yelp = sources.add_parser("yelp", parents=[common], help="Yelp Open Dataset JSON files")
    yelp.add_argument("--business", type=Path, required=True, help="yelp_academic_dataset_business.json")
    yelp.add_argument("--reviews", type=Path, required=True, help="yelp_academic_dataset_review.json")

    recbole = sources.add_parser("recbole", parents=[common], help="RecBole atomic files, filtered again")
    recbole.add_argument("--input", type=Path, required=True, help="folder holding X.inter (and X.item)")
    recbole.add_argument("--user-field", default="user_id", help="user field of X.inter (default user_id)")
    recbole.add_argument("--item-field", default="item_id", help="item field of X.inter (default item_id)")
    recbole.add_argument(
        "--time-field", default="timestamp", help="timestamp field of X.inter (default timestamp)"
    )

    sequences = sources.add_parser("sequences", parents=[common], help="'user item item ...' lines")
    sequences.add_argument("--sequences", type=Path, required=True, help="'user item item ...' lines")
    sequences.add_argument(
        "--item-text", type=Path, default=None, help="tab-separated item table with a header, item id first"
    )
    return parser


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``argv``, prepare the dataset and return its statistics; raises :class:`PrepareError`."""
    args = build_parser().parse_args(argv)
    return _run(args)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    check_output(args.output)  # before reading possibly large inputs
    data = _LOADERS[args.source](args)
    return prepare(data, args.output, args.k, args.source)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns 0, or 2 after printing ``error: ...`` for a :class:`PrepareError`."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        stats = _run(args)
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
