"""Writing the atomic files (.inter, .item) and the statistics, and the one-line summary."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from recbole_galrec.errors import PrepareError
from recbole_galrec.prepare.records import PreparedDataset
from recbole_galrec.running.files import write_atomic

logger = logging.getLogger(__name__)

INTER_HEADER: tuple[str, ...] = ("user_id:token", "item_id:token", "timestamp:float")


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

    def write(handle) -> None:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        writer.writerows(rows)

    try:
        write_atomic(path, write, newline="")
    except OSError as exc:
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
        ([item, *(prepared.item_text.get(item, {}).get(field, "") for field in fields)] for item in prepared.items),
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
