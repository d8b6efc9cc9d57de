"""The readers of the four sources: Amazon 2014, Yelp, RecBole atomic files, sequence files."""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recbole_galrec.errors import PrepareError
from recbole_galrec.prepare.inputs import InputFile, header_names, read_item_table
from recbole_galrec.prepare.records import Interaction, ItemText, SourceData
from recbole_galrec.prepare.text import clean_categories, clean_text, snippet

logger = logging.getLogger(__name__)

YELP_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d")


def _read_reviews(
    file: InputFile,
    user_key: str,
    item_key: str,
    timestamp: Callable[[dict[str, Any], int], float],
    allow_literal: bool,
) -> list[Interaction]:
    """One interaction per review object of ``file``; ``timestamp(review, lineno)`` reads its time."""
    records = []
    for lineno, review in file.objects(allow_literal=allow_literal):
        user = file.identifier(review, user_key, lineno)
        item = file.identifier(review, item_key, lineno)
        records.append(Interaction(user, item, timestamp(review, lineno)))
    logger.info("read %d reviews from %s", len(records), file.path)
    return records


def _item_objects(
    file: InputFile, key: str, wanted: set[str], allow_literal: bool
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(item id, object)`` for the first object of each wanted item in ``file``; the others are skipped."""
    seen: set[str] = set()
    for lineno, record in file.objects(allow_literal=allow_literal):
        item = file.identifier(record, key, lineno)
        if item in wanted and item not in seen:
            seen.add(item)
            yield item, record


def _read_source(
    review_file: InputFile,
    user_key: str,
    item_key: str,
    timestamp: Callable[[dict[str, Any], int], float],
    text_file: InputFile,
    text_fields: Callable[[dict[str, Any]], dict[str, str]],
    allow_literal: bool,
    read_what: str,
) -> SourceData:
    """The reviews of ``review_file`` and the text fields of each reviewed item's first object in ``text_file``
    (its id under ``item_key`` too); ``read_what`` names what was read in the log (``%d`` the item count)."""
    records = _read_reviews(review_file, user_key, item_key, timestamp, allow_literal=allow_literal)
    wanted = {record.item for record in records}
    item_text: ItemText = {
        item: text_fields(obj) for item, obj in _item_objects(text_file, item_key, wanted, allow_literal=allow_literal)
    }
    logger.info("read %s from %s", read_what % len(item_text), text_file.path)
    return SourceData(records, item_text, str(review_file.path))


def _amazon_text(product: dict[str, Any]) -> dict[str, str]:
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
    return fields


def read_amazon(reviews: Path, meta: Path) -> SourceData:
    """Amazon 2014: a review file and a metadata file, gzipped or plain."""
    review_file = InputFile(
        Path(reviews), "--reviews", "an Amazon 2014 review file (reviews_*.json.gz, one JSON object a line)"
    )
    meta_file = InputFile(
        Path(meta), "--meta", "an Amazon 2014 metadata file (meta_*.json.gz, one Python dict literal a line)"
    )
    return _read_source(
        review_file,
        "reviewerID",
        "asin",
        lambda review, lineno: review_file.number(review.get("unixReviewTime"), "unixReviewTime", lineno),
        meta_file,
        _amazon_text,
        allow_literal=True,
        read_what="metadata of %d reviewed items",
    )


def _yelp_timestamp(file: InputFile, value: object, lineno: int) -> float:
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
    raise file.error(f"field 'date' is not of the form YYYY-MM-DD HH:MM:SS ({snippet(text)})", lineno)


def _yelp_text(place: dict[str, Any]) -> dict[str, str]:
    categories = place.get("categories")
    if isinstance(categories, str):
        categories = categories.split(",")
    return {"title": clean_text(place.get("name")), "categories": clean_categories(categories or [])}


def read_yelp(business: Path, reviews: Path) -> SourceData:
    """Yelp Open Dataset: the review and business JSON-lines files."""
    review_file = InputFile(
        Path(reviews), "--reviews", "Yelp's yelp_academic_dataset_review.json (one JSON object a line)"
    )
    business_file = InputFile(
        Path(business), "--business", "Yelp's yelp_academic_dataset_business.json (one JSON object a line)"
    )
    return _read_source(
        review_file,
        "user_id",
        "business_id",
        lambda review, lineno: _yelp_timestamp(review_file, review.get("date"), lineno),
        business_file,
        _yelp_text,
        allow_literal=False,
        read_what="%d reviewed businesses",
    )


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
    inter_file = InputFile(
        inter_path,
        "--input",
        f"a RecBole .inter file with {user_field}, {item_field} and {time_field} fields",
    )
    rows = inter_file.rows(csv.QUOTE_MINIMAL)
    first = next(rows, None)
    if first is None:
        raise inter_file.error("the file is empty")
    header_line, header = first
    names = header_names(inter_file, header_line, header, typed=True)
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
        item_file = InputFile(item_path, "--input", f"a RecBole .item file with an {item_field} field")
        wanted = {record.item for record in records}
        item_text = read_item_table(item_file, csv.QUOTE_MINIMAL, True, wanted, id_field=item_field)
    else:
        logger.warning("%s not found; items get no text", item_path)
    return SourceData(records, item_text, str(inter_path))


def read_sequences(sequences: Path, item_text: Path | None = None) -> SourceData:
    """One ``user item item ...`` line per user; an item's timestamp is its position in the line."""
    sequence_file = InputFile(Path(sequences), "--sequences", "one line per user of the form 'user item item ...'")
    records = []
    for lineno, text in sequence_file.lines():
        user, *items = text.split()
        if not items:
            raise sequence_file.error(f"user {user!r} has no items", lineno)
        records.extend(
            Interaction(sys.intern(user), sys.intern(item), float(position)) for position, item in enumerate(items)
        )
    logger.info("read %d interactions from %s", len(records), sequence_file.path)

    texts: ItemText = {}
    if item_text is not None:
        table = InputFile(
            Path(item_text),
            "--item-text",
            "a tab-separated table with a header row whose first column is the item id",
        )
        texts = read_item_table(table, csv.QUOTE_NONE, False, {record.item for record in records})
    return SourceData(records, texts, str(sequence_file.path))
