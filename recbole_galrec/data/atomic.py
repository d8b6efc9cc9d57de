"""RecBole's atomic files, read as what they are and checked before RecBole loads them.

An atomic file is text with one record per line, fields separated by ``field_separator`` (a tab) and no quoting:
a header line of ``name:type`` fields (type: token, token_seq, float, float_seq), then rows with the header's
number of fields. RecBole 1.2.1 reads them with pandas' default quoting, so a value starting with ``"`` opens a
quoted field that can swallow tabs and lines; inside :func:`tsv_reading` it reads them with quoting off.

:func:`check_atomic_files` reads each file the run loads (the ``.inter`` file, or the ``benchmark_filename``
ones, and the ``.user`` and ``.item`` files when present and listed in ``load_col``) once before RecBole does,
and stops with a :class:`~recbole_galrec.errors.DataError` naming the file, the line (the header is line 1) and
the fix when a file is empty or header-only, a header field is not ``name:type``, a row has another number of
fields than the header, a loaded column is absent, a float column holds a non-number, a timestamp is missing,
or (``duplicate_interactions: error``) an interaction is repeated. A UTF-8 byte-order mark is read away.
"""

import codecs
import csv
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd

from recbole_galrec.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

FEATURE_TYPES = ("token", "token_seq", "float", "float_seq")
UTF8_BOM = codecs.BOM_UTF8
SHOWN = 5  # lines named in a message
DUPLICATE_POLICIES = ("error", "drop")  # duplicate_interactions


@dataclass
class Reading:
    """How RecBole must read a dataset's files (:func:`tsv_reading`), as found by :func:`check_atomic_files`."""

    encoding: str | None = None  # the encoding to read with, when a byte-order mark must be read away
    drop_duplicates: dict[str, list[str]] = field(default_factory=dict)  # file -> its key header fields
    checked: set[str] = field(default_factory=set)  # the files checked, by absolute path


def _lines(numbers) -> str:
    """'line 5' or 'lines 5, 9, ...' for a message: the first SHOWN."""
    numbers = list(numbers)
    shown = ", ".join(str(n) for n in numbers[:SHOWN]) + (", ..." if len(numbers) > SHOWN else "")
    return f"line{'s' if len(numbers) > 1 else ''} {shown}"


def _rows(count: int) -> str:
    return f"{count} row{'s' if count != 1 else ''}"


def loaded_columns(config, source: str) -> tuple[list[str] | None, set[str]] | None:
    """RecBole's choice of the columns of one file (``Dataset._get_load_and_unload_col``): ``None`` when the
    file is not loaded, else (the columns ``load_col`` lists, ``None`` for all; the columns ``unload_col`` lists)."""
    load_col, unload_col = config["load_col"], config["unload_col"]
    listed = None
    if load_col is not None:
        if source not in load_col:
            return None
        listed = None if load_col[source] == "*" else list(load_col[source])
    unloaded = set(unload_col[source]) if unload_col and source in unload_col else set()
    if listed and unloaded:
        raise ConfigError(
            f"load_col['{source}'] and unload_col['{source}'] are both given; RecBole takes one of them per file: "
            "list the columns to load, or the columns to leave out."
        )
    return listed, unloaded


def atomic_files(config) -> list[tuple[str, str]]:
    """``(source, path)`` of each atomic file RecBole will read for the run's dataset, among those on disk."""
    name, folder = config["dataset"], config["data_path"]
    benchmark = config["benchmark_filename"]
    inter = [f"{name}.{part}.inter" for part in benchmark] if benchmark else [f"{name}.inter"]
    candidates = [("inter", file) for file in inter] + [(source, f"{name}.{source}") for source in ("user", "item")]
    return [
        (source, os.path.join(folder, file))
        for source, file in candidates
        if os.path.isfile(os.path.join(folder, file)) and loaded_columns(config, source) is not None
    ]


def check_atomic_files(config) -> Reading:
    """Check every atomic file the run loads (see the module's description); return how RecBole must read them."""
    _check_knowledge_files(config)
    reading = Reading()
    for part in config["benchmark_filename"] or []:
        path = os.path.join(config["data_path"], f"{config['dataset']}.{part}.inter")
        if not os.path.isfile(path):
            raise DataError(f"'{path}' not found: benchmark_filename lists '{part}'. Add the file or fix the list.")
    for source, path in atomic_files(config):
        listed, unloaded = loaded_columns(config, source)
        header, blank, encoding = _scan(path, config)
        if encoding != _encoding(config):
            reading.encoding = encoding
            logger.info(f"'{path}' starts with a UTF-8 byte-order mark: read without it")
        names = [f.split(":")[0] for f in header]
        absent = [c for c in listed or [] if c not in names]
        if absent:
            raise DataError(
                f"'{path}' has no column {', '.join(map(repr, absent))}, which load_col['{source}'] lists (its "
                f"columns: {', '.join(header)}). Add the column to the file, or leave it out of load_col['{source}']."
            )
        loaded = [
            f for f, n in zip(header, names, strict=True) if (listed is None or n in listed) and n not in unloaded
        ]
        _check_ids(config, source, path, [f.split(":")[0] for f in loaded])
        keys = _check_values(config, source, path, header, loaded, blank, encoding)
        if keys:
            reading.drop_duplicates[os.path.abspath(path)] = keys
        reading.checked.add(os.path.abspath(path))
    return reading


def _check_knowledge_files(config) -> None:
    """A knowledge-aware model reads the .kg and .link files: ``load_col`` must name them (RecBole fails with a
    TypeError otherwise)."""
    from recbole.utils import ModelType

    load_col = config["load_col"]
    if config["MODEL_TYPE"] != ModelType.KNOWLEDGE or load_col is None:
        return
    missing = [source for source in ("kg", "link") if source not in load_col]
    if missing:
        head, relation, tail = (
            config[k] for k in ("HEAD_ENTITY_ID_FIELD", "RELATION_ID_FIELD", "TAIL_ENTITY_ID_FIELD")
        )
        raise ConfigError(
            f"{config['model']} is a knowledge-aware model and reads the dataset's .kg and .link files, but load_col "
            f"has no {' and no '.join(repr(s) for s in missing)} entry. Add them to load_col, e.g. kg: [{head}, "
            f"{relation}, {tail}] and link: [{config['ITEM_ID_FIELD']}, {config['ENTITY_ID_FIELD']}], or read every "
            "column of every file with load_col: ~."
        )


def _encoding(config) -> str:
    return config["encoding"] or "utf-8"


def _scan(path: str, config) -> tuple[list[str], list[int], str]:
    """The header fields, the blank lines (which pandas skips) and the encoding to read ``path`` with, after
    checking the header and every row's number of fields."""
    encoding = _encoding(config)
    with open(path, "rb") as f:
        if f.read(len(UTF8_BOM)) == UTF8_BOM:
            if codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig"):
                raise DataError(
                    f"'{path}' starts with a UTF-8 byte-order mark, but the files are read as {encoding} (encoding). "
                    "Save the file as UTF-8 and drop the encoding key, or save it without the mark."
                )
            encoding = "utf-8-sig"
    separator = config["field_separator"]
    blank, wrong, count, wrong_count = [], [], 0, 0
    try:
        with open(path, encoding=encoding) as f:
            head = f.readline()
            header = _header(path, head.rstrip("\n"), separator)
            width = len(header)
            for number, line in enumerate(f, start=2):
                fields = line.count(separator) + 1
                if fields == width:
                    count += 1
                elif fields == 1 and not line.strip():
                    blank.append(number)  # pandas skips a line that is empty or only spaces
                else:
                    wrong_count += 1
                    if len(wrong) <= SHOWN:
                        wrong.append((number, fields))
    except UnicodeDecodeError:
        raise DataError(
            f"'{path}' {_lines([_undecodable_line(path, encoding)])} is not {encoding} text. Save the file as UTF-8, "
            "or give its encoding with the encoding key (e.g. --encoding=latin-1)."
        ) from None
    if wrong:
        number, fields = wrong[0]
        word = "tab" if separator == "\t" else repr(separator)
        cause = (
            f"a {word} inside a value? atomic files are {word}-separated without quoting"
            if fields > width
            else f"a missing value? every row has one field per column, an empty one too, separated by {word}s"
        )
        more = ", ..." if wrong_count > len(wrong) else ""
        others = f"; {wrong_count - 1} more such {_lines([n for n, _ in wrong[1:]])}{more}" if wrong_count > 1 else ""
        raise DataError(
            f"'{path}' line {number}: {fields} fields, the header has {width} ({cause}){others}. Fix those lines: "
            f"replace each {word} inside a value by a space, and give every column a value (possibly empty)."
        )
    if count == 0:
        raise DataError(
            f"'{path}' has a header but no rows. Add its rows (one per line, the header's fields separated by tabs), "
            "or point data_path and dataset to the files that hold them."
        )
    return header, blank, encoding


def _header(path: str, head: str, separator: str) -> list[str]:
    if not head.strip():
        raise DataError(
            f"'{path}' is empty" + (" on line 1" if head else "") + ": an atomic file starts with a header line "
            "naming each column as name:type, e.g. 'user_id:token<TAB>item_id:token<TAB>timestamp:float'."
        )
    header = head.split(separator)
    for column in header:
        name, colon, kind = column.partition(":")
        if not name or not colon or kind not in FEATURE_TYPES:
            raise DataError(
                f"'{path}' line 1: the header field {column!r} is not name:type with a type among "
                f"{', '.join(FEATURE_TYPES)}. Write each column of the header as name:type, separated by tabs."
            )
    return header


def _undecodable_line(path: str, encoding: str) -> int:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError:
                return number
    return 1  # the whole file decodes line by line (a multi-byte encoding): no single line to name


def _check_ids(config, source: str, path: str, loaded: list[str]) -> None:
    """The id columns each file must load, and the timestamp a time-ordered split needs."""
    needed = {
        "inter": [("USER_ID_FIELD", "the user id"), ("ITEM_ID_FIELD", "the item id")],
        "user": [("USER_ID_FIELD", "the user id")],
        "item": [("ITEM_ID_FIELD", "the item id")],
    }[source]
    for key, what in needed:
        column = config[key]
        if column is not None and column not in loaded:
            raise DataError(
                f"'{path}' loads no '{column}' column ({what}, {key}); its loaded columns: {', '.join(loaded)}. Name "
                f"that column {column} in the file's header (as {column}:token) and in load_col['{source}'], or set "
                f"{key} to the column that holds {what}."
            )
    eval_args = config["eval_args"] or {}
    time = config["TIME_FIELD"]
    if source == "inter" and eval_args.get("order") == "TO" and time not in loaded:
        raise DataError(
            f"The split orders each user's interactions by time (eval_args order: TO), but '{path}' loads no "
            f"'{time}' column (TIME_FIELD); its loaded columns: {', '.join(loaded)}. Add it to the file (as "
            f"{time}:float) and to load_col['inter'], or order them as they are in the file with eval_args: "
            "{order: RO}."
        )


def _check_values(config, source, path, header, loaded, blank, encoding) -> list[str] | None:
    """Numbers in the loaded float columns; for an ``.inter`` file, no missing timestamp and no repeated
    interaction (or, with ``duplicate_interactions: drop``, the key header fields to drop repeats on)."""
    floats = [f for f in loaded if f.endswith(":float")]
    by_name = {f.split(":")[0]: f for f in loaded} if source == "inter" else {}
    ids = [by_name[config[k]] for k in ("USER_ID_FIELD", "ITEM_ID_FIELD") if config[k] in by_name]
    time = by_name.get(config["TIME_FIELD"])
    columns = [f for f in header if f in floats or f in ids or f == time]
    if not columns:
        return None
    frame = pd.read_csv(
        path,
        sep=config["field_separator"],
        header=None,
        skiprows=1,
        names=header,
        usecols=columns,
        dtype=str,
        quoting=csv.QUOTE_NONE,
        encoding=encoding,
        skip_blank_lines=False,  # row i is line i + 2; the blank lines pandas skips are dropped by number
        engine="c",
    )
    frame.index = frame.index + 2
    frame = frame.drop(index=[n for n in blank if n in frame.index])
    for column in floats:
        name = column.split(":")[0]
        numbers = pd.to_numeric(frame[column], errors="coerce")
        wrong = frame[column].notna() & numbers.isna()
        if wrong.any():
            lines = wrong[wrong].index
            hint = "timestamps as numbers, e.g. Unix seconds" if column == time else f"or declare it {name}:token"
            others = f" ({int(wrong.sum())} such values, {_lines(lines)})" if len(lines) > 1 else ""
            raise DataError(
                f"'{path}' line {lines[0]}: {name} {frame[column][lines[0]]!r} is not a number, and the header "
                f"declares {column}{others}. Write numbers in that column ({hint})."
            )
        frame[column] = numbers
    if time is not None and frame[time].isna().any():
        lines = frame.index[frame[time].isna()]
        raise DataError(
            f"'{path}': {_rows(len(lines))} {'have' if len(lines) != 1 else 'has'} no timestamp ({_lines(lines)}). "
            "Every interaction needs its time (the split orders each user's interactions by it; RecBole would put "
            "the mean time there): fill them in or delete those rows."
        )
    keys = [c for c in (*ids, time) if c in frame.columns]
    return _duplicates(config, path, frame, keys) if source == "inter" and len(keys) >= 2 else None


def _duplicates(config, path: str, frame: pd.DataFrame, keys: list[str]) -> list[str] | None:
    """Stop on rows repeating an earlier row's user, item and timestamp, or (``duplicate_interactions: drop``)
    warn and return the key header fields to drop them on."""
    repeated = frame.duplicated(subset=keys, keep="first")
    if not repeated.any():
        return None
    group = frame.groupby(keys, sort=False, dropna=False).ngroup()
    first = {g: line for line, g in group[~repeated].items()}
    pairs = [f"line {line} repeats line {first[group[line]]}" for line in repeated[repeated].index[:SHOWN]]
    what = (
        f"'{path}' holds {int(repeated.sum())} duplicate interactions: rows repeating an earlier row's "
        f"{', '.join(k.split(':')[0] for k in keys)} ({', '.join(pairs)}{', ...' if repeated.sum() > SHOWN else ''})"
    )
    policy = config["duplicate_interactions"] or "error"
    if policy == "drop":
        logger.warning(f"{what}: dropped, keeping the first of each (duplicate_interactions: drop).")
        return keys
    raise DataError(
        f"{what}. Repeated interactions inflate the metrics (a repeated item is both in a user's history and the "
        "item to predict). Remove them from the file, or set duplicate_interactions: drop to keep the first of each."
    )


class _UnquotedPandas:
    """pandas as RecBole's dataset module sees it inside :func:`tsv_reading`: ``read_csv`` reads without quoting,
    checks a file :func:`check_atomic_files` has not seen (a downloaded dataset, ``.kg`` and ``.link`` files) and
    drops the repeated interactions ``duplicate_interactions: drop`` asks to drop."""

    def __init__(self, config, reading: Reading):
        self._config, self._reading = config, reading

    def __getattr__(self, name):
        return getattr(pd, name)

    def read_csv(self, filepath, *args, **kwargs):
        path = os.path.abspath(filepath)
        if path not in self._reading.checked:
            header, blank, encoding = _scan(path, self._config)
            if encoding != _encoding(self._config):
                raise DataError(f"'{path}' starts with a UTF-8 byte-order mark: save it without the mark.")
            _check_values(self._config, "other", path, header, list(kwargs.get("usecols") or header), blank, encoding)
            self._reading.checked.add(path)
        frame = pd.read_csv(filepath, *args, quoting=csv.QUOTE_NONE, **kwargs)
        keys = self._reading.drop_duplicates.get(path)
        if keys:
            frame = frame.drop_duplicates(subset=keys, keep="first").reset_index(drop=True)
        return frame


@contextmanager
def tsv_reading(config, reading: Reading):
    """RecBole's dataset module reads atomic files as :class:`_UnquotedPandas` says (its one ``pd.read_csv``
    call), with the encoding ``reading`` found, while the block runs; then as before."""
    from recbole.data.dataset import dataset as recbole_dataset

    saved_pd = recbole_dataset.pd
    had_encoding, saved_encoding = "encoding" in config, config["encoding"]
    recbole_dataset.pd = _UnquotedPandas(config, reading)
    if reading.encoding:
        config["encoding"] = reading.encoding
    try:
        yield
    finally:
        recbole_dataset.pd = saved_pd
        if reading.encoding:
            if had_encoding:
                config["encoding"] = saved_encoding
            else:
                del config.final_config_dict["encoding"]
