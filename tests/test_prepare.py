"""Tests of ``python -m recbole_galrec.prepare`` on small hand-made raw files."""

import gzip
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from recbole_galrec.prepare import (
    PrepareError,
    SourceData,
    clean_categories,
    clean_text,
    main,
    prepare,
    read_amazon,
    read_recbole,
    read_sequences,
    read_yelp,
    run,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

# (user, item, time) in file order. With k=2: the pairs (u1, a), (u4, f) and (u5, a) repeat; once they
# are merged, c, d and f have one user each; dropping them leaves u4 with one item, dropping u4 leaves e
# with one user, dropping e leaves u3 with one item: four passes remove something.
EVENTS = [
    ("u1", "a", 300),
    ("u1", "b", 200),
    ("u2", "b", 100),
    ("u2", "a", 100),  # same time as the line above: file order decides
    ("u1", "a", 150),  # repeat of (u1, a), earlier: this one is kept
    ("u1", "c", 400),
    ("u3", "b", 500),
    ("u3", "d", 510),
    ("u3", "e", 520),
    ("u4", "e", 600),
    ("u4", "f", 610),
    ("u4", "f", 620),  # repeat: without merging, f would keep two interactions
    ("u5", "a", 50),
    ("u5", "b", 60),
    ("u2", "g", 700),
    ("u5", "g", 700),
    ("u5", "a", 50),  # exact repeat
]
EXPECTED_EVENTS = [
    ("u1", "a", 150),
    ("u1", "b", 200),
    ("u2", "b", 100),
    ("u2", "a", 100),
    ("u2", "g", 700),
    ("u5", "a", 50),
    ("u5", "b", 60),
    ("u5", "g", 700),
]
INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float"
EXPECTED_STATS = {
    "k": 2,
    "raw_interactions": 17,
    "duplicates_removed": 3,
    "filter_passes": 5,
    "users": 3,
    "items": 3,
    "interactions": 8,
    "density": 8 / 9,
    "mean_sequence_length": 8 / 3,
}
YELP_EPOCH = int(datetime(2018, 1, 1, tzinfo=timezone.utc).timestamp())  # noqa: UP017


def write_lines(path: Path, lines: list[str], compress: bool = False) -> Path:
    data = "".join(f"{line}\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def read_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return text[:-1].split("\n")


def inter_rows(events: list[tuple[str, str, int]], offset: int = 0) -> list[str]:
    return [INTER_HEADER] + [f"{user}\t{item}\t{time + offset}" for user, item, time in events]


def check_stats(folder: Path, name: str, source: str, **changes: object) -> None:
    expected = {"dataset": name, "source": source, **EXPECTED_STATS, **changes}
    stats = json.loads((folder / f"{name}.stats.json").read_text(encoding="utf-8"))
    assert {key: stats[key] for key in expected} == expected


# --------------------------------------------------------------------------- amazon


def amazon_reviews(path: Path, compress: bool = False) -> Path:
    lines = [
        json.dumps(
            {
                "reviewerID": user,
                "asin": item,
                "unixReviewTime": time,
                "reviewText": "ok\tfine",
                "overall": 5.0,
            }
        )
        for user, item, time in EVENTS
    ]
    return write_lines(path, lines, compress)


def amazon_meta(path: Path, compress: bool = False) -> Path:
    products = [
        {
            "asin": "a",
            "title": "Nail Polish &amp; Top Coat",
            "categories": [["Beauty", "Makeup", "Nails", "Nail Polish"]],
            "brand": "OPI",
        },
        {
            "asin": "b",
            "title": "L&#39;Oreal\tLipstick\nRed  Shade ",
            "categories": [["Beauty"], ["Makeup", "Lips"], ["Beauty", "Makeup"]],
            "price": 9.5,
        },
        {"asin": "d", "title": "Filtered out", "categories": [["Beauty"]], "brand": "X"},
        {"asin": "g", "categories": [["Beauty", "Skin  Care &amp; More"]], "brand": "Nivea"},
    ]
    lines = [repr(product) for product in products]  # Python literals, as in the 2014 meta files
    lines.insert(2, "")
    lines.append(json.dumps({"asin": "c", "title": "A JSON line", "categories": [["Beauty"]]}))
    return write_lines(path, lines, compress)


AMAZON_ITEMS = [
    "item_id:token\ttitle:token_seq\tcategories:token_seq\tbrand:token_seq",
    "a\tNail Polish & Top Coat\tBeauty Makeup Nails Nail_Polish\tOPI",
    "b\tL'Oreal Lipstick Red Shade\tBeauty Makeup Lips\t",
    "g\t\tBeauty Skin_Care_&_More\tNivea",
]


@pytest.mark.parametrize("compression", ["plain", "gzip", "gzip without .gz suffix"])
def test_amazon(tmp_path: Path, compression: str) -> None:
    compress = compression != "plain"
    suffix = ".json.gz" if compression == "gzip" else ".json"
    reviews = amazon_reviews(tmp_path / f"reviews_Beauty{suffix}", compress)
    meta = amazon_meta(tmp_path / f"meta_Beauty{suffix}", compress)
    output = tmp_path / "dataset" / "amazon-beauty"

    stats = run(["amazon", "--reviews", str(reviews), "--meta", str(meta), "--output", str(output), "--k", "2"])

    assert sorted(path.name for path in output.iterdir()) == [
        "amazon-beauty.inter",
        "amazon-beauty.item",
        "amazon-beauty.stats.json",
    ]
    assert read_lines(output / "amazon-beauty.inter") == inter_rows(EXPECTED_EVENTS)
    assert read_lines(output / "amazon-beauty.item") == AMAZON_ITEMS
    check_stats(output, "amazon-beauty", "amazon", items_without_title=1, items_without_text=0)
    assert stats["users"] == 3


def test_amazon_with_k_1_keeps_everything_but_repeats(tmp_path: Path) -> None:
    data = read_amazon(amazon_reviews(tmp_path / "r.json"), amazon_meta(tmp_path / "m.json"))
    stats = prepare(data, tmp_path / "out" / "all", k=1)
    assert stats["interactions"] == 14
    assert stats["filter_passes"] == 1
    items = read_lines(tmp_path / "out" / "all" / "all.item")
    assert items[0] == AMAZON_ITEMS[0]
    assert [row.split("\t")[0] for row in items[1:]] == ["a", "b", "c", "g", "d", "e", "f"]
    assert "c\tA JSON line\tBeauty\t" in items
    assert "e\t\t\t" in items  # no metadata at all: empty fields, never "nan" or "None"


@pytest.mark.parametrize(
    "unsafe_line",
    [
        "__import__('os').system('echo hi')",
        "{'asin': 'a', 'title': __import__('pathlib').Path('{marker}').touch()}",
    ],
)
def test_amazon_meta_code_is_never_run(tmp_path: Path, capfd: pytest.CaptureFixture[str], unsafe_line: str) -> None:
    marker = tmp_path / "was_run"
    meta = write_lines(
        tmp_path / "meta.json", ["{'asin': 'a', 'title': 'T'}", unsafe_line.replace("{marker}", str(marker))]
    )
    reviews = amazon_reviews(tmp_path / "reviews.json")
    with pytest.raises(PrepareError, match=r"meta\.json, line 2: expected a JSON object or a Python dict literal"):
        read_amazon(reviews, meta)
    assert not marker.exists()
    assert "hi" not in capfd.readouterr().out


@pytest.mark.parametrize(
    ("reviews", "meta", "message"),
    [
        (
            ['{"reviewerID": "u1", "asin": "a", "unixReviewTime": 1}', '{"reviewerID": "u1", "asin": "b"}'],
            ["{'asin': 'a'}"],
            r"reviews\.json, line 2: missing required field 'unixReviewTime'; "
            r"--reviews expects an Amazon 2014",
        ),
        (
            ['{"reviewerID": "u1", "unixReviewTime": 1}'],
            ["{'asin': 'a'}"],
            r"reviews\.json, line 1: missing required field 'asin'",
        ),
        (
            ['{"reviewerID": "u1", "asin": "a", "unixReviewTime": "yesterday"}'],
            ["{'asin': 'a'}"],
            r"reviews\.json, line 1: field 'unixReviewTime' is not a number \('yesterday'\)",
        ),
        (
            ["reviewerID,asin,unixReviewTime", "u1,a,1"],
            ["{'asin': 'a'}"],
            r"reviews\.json, line 1: expected a JSON object or a Python dict literal, found 'reviewerID,",
        ),
        (
            ['{"reviewerID": "u1", "asin": "a", "unixReviewTime": 1}'],
            ["{'asin': 'a'}", "", "this is not a dict"],
            r"meta\.json, line 3: expected a JSON object or a Python dict literal, "
            r"found 'this is not a dict'; --meta expects an Amazon 2014 metadata file",
        ),
        (
            ['{"reviewerID": "u1", "asin": "a", "unixReviewTime": 1}'],
            ["['a', 'b']"],
            r"meta\.json, line 1: expected a JSON object or a Python dict literal",
        ),
        (
            ['{"reviewerID": "u1", "asin": "a", "unixReviewTime": 1}'],
            ["{'title': 'no asin'}"],
            r"meta\.json, line 1: missing required field 'asin'",
        ),
        (
            ['{"reviewerID": "u1\\tu2", "asin": "a", "unixReviewTime": 1}'],
            ["{'asin': 'a'}"],
            r"reviews\.json, line 1: field 'reviewerID' contains a tab or line break",
        ),
    ],
)
def test_amazon_bad_input(tmp_path: Path, reviews: list[str], meta: list[str], message: str) -> None:
    with pytest.raises(PrepareError, match=message):
        read_amazon(write_lines(tmp_path / "reviews.json", reviews), write_lines(tmp_path / "meta.json", meta))


def test_missing_file_names_the_option(tmp_path: Path) -> None:
    meta = amazon_meta(tmp_path / "meta.json")
    with pytest.raises(PrepareError, match=r"nowhere\.json\.gz: file not found; check the path given to --reviews"):
        read_amazon(tmp_path / "nowhere.json.gz", meta)
    reviews = amazon_reviews(tmp_path / "reviews.json")
    with pytest.raises(PrepareError, match=r"nowhere\.json: file not found; check the path given to --meta"):
        read_amazon(reviews, tmp_path / "nowhere.json")


def test_truncated_gzip(tmp_path: Path) -> None:
    reviews = amazon_reviews(tmp_path / "reviews.json.gz", compress=True)
    reviews.write_bytes(reviews.read_bytes()[:-20])
    with pytest.raises(PrepareError, match=r"reviews\.json\.gz: cannot read past line \d+ .*download it again"):
        read_amazon(reviews, amazon_meta(tmp_path / "meta.json"))


def test_not_utf8(tmp_path: Path) -> None:
    reviews = amazon_reviews(tmp_path / "reviews.json")
    reviews.write_bytes(reviews.read_bytes() + b'{"reviewerID": "\xff"}\n')
    with pytest.raises(PrepareError, match=r"reviews\.json, line 18: not UTF-8 text"):
        read_amazon(reviews, amazon_meta(tmp_path / "meta.json"))


# --------------------------------------------------------------------------- yelp


def yelp_date(time: int) -> str:
    return datetime.fromtimestamp(YELP_EPOCH + time, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")  # noqa: UP017


def yelp_files(tmp_path: Path) -> tuple[Path, Path]:
    reviews = [
        json.dumps(
            {
                "review_id": f"r{number}",
                "user_id": user,
                "business_id": item,
                "stars": 4.0,
                "date": yelp_date(time),
                "text": "Great\nplace",
            }
        )
        for number, (user, item, time) in enumerate(EVENTS)
    ]
    businesses = [
        {
            "business_id": "a",
            "name": "Joe&#39;s Pizza &amp; Pasta",
            "categories": "Restaurants, Pizza,  Fast Food",
        },
        {"business_id": "b", "name": "Caf\u00e9\tBleu\n", "categories": None},
        {"business_id": "d", "name": "Filtered out", "categories": "Bars"},
        {"business_id": "g", "categories": "Food, Coffee & Tea, Food", "stars": 4.5},
    ]
    return (
        write_lines(tmp_path / "yelp_academic_dataset_business.json", [json.dumps(b) for b in businesses]),
        write_lines(tmp_path / "yelp_academic_dataset_review.json", reviews),
    )


def test_yelp(tmp_path: Path) -> None:
    business, reviews = yelp_files(tmp_path)
    output = tmp_path / "yelp"
    run(["yelp", "--business", str(business), "--reviews", str(reviews), "--output", str(output), "--k", "2"])

    assert read_lines(output / "yelp.inter") == inter_rows(EXPECTED_EVENTS, offset=YELP_EPOCH)
    assert read_lines(output / "yelp.item") == [
        "item_id:token\ttitle:token_seq\tcategories:token_seq",
        "a\tJoe's Pizza & Pasta\tRestaurants Pizza Fast_Food",
        "b\tCaf\u00e9 Bleu\t",
        "g\t\tFood Coffee_&_Tea",
    ]
    check_stats(output, "yelp", "yelp", items_without_title=1)


def test_yelp_accepts_dates_without_time(tmp_path: Path) -> None:
    reviews = write_lines(
        tmp_path / "review.json",
        [json.dumps({"user_id": "u", "business_id": "a", "date": "2018-01-02"})],
    )
    business = write_lines(tmp_path / "business.json", [json.dumps({"business_id": "a", "name": "A"})])
    assert read_yelp(business, reviews).records[0].timestamp == YELP_EPOCH + 86400


@pytest.mark.parametrize(
    ("review", "message"),
    [
        (
            '{"user_id": "u", "business_id": "a", "date": "02/01/2018"}',
            r"review\.json, line 1: field 'date' is not of the form YYYY-MM-DD HH:MM:SS \('02/01/2018'\)",
        ),
        ('{"user_id": "u", "business_id": "a"}', r"review\.json, line 1: missing required field 'date'"),
        (
            "{'user_id': 'u', 'business_id': 'a', 'date': '2018-01-01'}",
            r"review\.json, line 1: expected a JSON object, found .*; --reviews expects Yelp's",
        ),
    ],
)
def test_yelp_bad_review(tmp_path: Path, review: str, message: str) -> None:
    business = write_lines(tmp_path / "business.json", [json.dumps({"business_id": "a", "name": "A"})])
    with pytest.raises(PrepareError, match=message):
        read_yelp(business, write_lines(tmp_path / "review.json", [review]))


def test_yelp_business_without_id(tmp_path: Path) -> None:
    reviews = write_lines(
        tmp_path / "review.json", [json.dumps({"user_id": "u", "business_id": "a", "date": "2018-01-02"})]
    )
    business = write_lines(tmp_path / "business.json", ['{"business_id": "a"}', '{"name": "A"}'])
    with pytest.raises(PrepareError, match=r"business\.json, line 2: missing required field 'business_id'"):
        read_yelp(business, reviews)


# --------------------------------------------------------------------------- recbole


def recbole_folder(tmp_path: Path, name: str = "Amazon_Mini") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    write_lines(
        folder / f"{name}.inter",
        ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
        + [f"{user}\t{item}\t5.0\t{time}" for user, item, time in EVENTS],
    )
    write_lines(
        folder / f"{name}.item",
        [
            "item_id:token\ttitle:token\tsales_type:token\tcategories:token_seq\tbrand:token",
            "a\tNail Polish &amp; Top Coat\tBeauty\t"
            "'Beauty', 'Makeup', 'Nail Polish', 'Arts, Crafts &amp; Sewing'\tOPI",
            'b\t"12"" Brush &#39;Pro&#39;"\tBeauty\t\'Beauty\'\t',
            "d\tFiltered out\tBeauty\t'Beauty'\tX",
            "g\t\tBeauty\t\"Skin  Care\", 'Skin Care'\tNivea",
        ],
    )
    return folder


RECBOLE_ITEMS = [
    "item_id:token\ttitle:token_seq\tcategories:token_seq\tbrand:token_seq",
    "a\tNail Polish & Top Coat\tBeauty Makeup Nail_Polish Arts,_Crafts_&_Sewing\tOPI",
    'b\t"12"" Brush \'Pro\'"\tBeauty\t',
    "g\t\tSkin_Care\tNivea",
]


def test_recbole(tmp_path: Path) -> None:
    folder = recbole_folder(tmp_path)
    output = tmp_path / "dataset" / "mini"
    run(["recbole", "--input", str(folder), "--output", str(output), "--k", "2"])

    assert read_lines(output / "mini.inter") == inter_rows(EXPECTED_EVENTS)
    assert read_lines(output / "mini.item") == RECBOLE_ITEMS
    check_stats(output, "mini", "recbole", items_without_title=1)


def test_written_files_read_back_as_recbole_reads_them(tmp_path: Path) -> None:
    """RecBole reads atomic files with pandas, tab-separated, quotes honoured; check headers and values."""
    pandas = pytest.importorskip("pandas")
    output = tmp_path / "mini"
    prepare(read_recbole(recbole_folder(tmp_path)), output, k=2)
    for suffix, header in [
        ("inter", INTER_HEADER),
        ("item", "item_id:token\ttitle:token_seq\tcategories:token_seq\tbrand:token_seq"),
    ]:
        path = output / f"mini.{suffix}"
        assert read_lines(path)[0] == header
        for field in header.split("\t"):
            name, ftype = field.split(":")
            assert name.isidentifier() and ftype in {"token", "token_seq", "float"}
    items = pandas.read_csv(output / "mini.item", delimiter="\t", dtype=str, engine="python").fillna("")
    assert items["title:token_seq"].tolist() == ["Nail Polish & Top Coat", "12\" Brush 'Pro'", ""]
    inter = pandas.read_csv(output / "mini.inter", delimiter="\t", engine="python")
    assert inter["timestamp:float"].tolist() == [time for _, _, time in EXPECTED_EVENTS]


def test_recbole_other_field_names_and_single_inter_file(tmp_path: Path) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    write_lines(
        folder / "yelp.inter",
        ["review_id:token\tuser_id:token\tbusiness_id:token\tdate:float"]
        + [f"r{n}\t{user}\t{item}\t{time}.5" for n, (user, item, time) in enumerate(EVENTS)],
    )
    write_lines(
        folder / "yelp.item",
        [
            "business_id:token\titem_name:token_seq\tcategories:token_seq",
            "a\tPizza Place\tRestaurants, Pizza",
        ],
    )
    data = read_recbole(folder, item_field="business_id", time_field="date")
    assert data.records[0] == ("u1", "a", 300.5)
    assert data.item_text == {"a": {"title": "Pizza Place", "categories": "Restaurants Pizza"}}
    prepare(data, tmp_path / "out" / "y", k=2)
    assert read_lines(tmp_path / "out" / "y" / "y.inter")[1] == "u1\ta\t150.5"


def test_recbole_without_item_file(tmp_path: Path) -> None:
    folder = recbole_folder(tmp_path)
    (folder / "Amazon_Mini.item").unlink()
    prepare(read_recbole(folder), tmp_path / "out", k=2)
    assert read_lines(tmp_path / "out" / "out.item") == ["item_id:token", "a", "b", "g"]


@pytest.mark.parametrize(
    ("inter", "message"),
    [
        (
            ["user_id:token\titem_id:token\trating:float", "u\ta\t5"],
            r"X\.inter, line 1: no 'timestamp' field in the header \(user_id, item_id, rating\); "
            r"name the fields with --user-field",
        ),
        (
            ["user_id\titem_id\ttimestamp", "u\ta\t1"],
            r"X\.inter, line 1: header field 'user_id' is not of the form name:type",
        ),
        (
            ["user_id:token\titem_id:token\ttimestamp:float", "u\ta\t1", "u\tb"],
            r"X\.inter, line 3: expected 3 tab-separated fields as in the header, found 2",
        ),
        (
            ["user_id:token\titem_id:token\ttimestamp:float", "u\ta\tmonday"],
            r"X\.inter, line 2: field 'timestamp' is not a number",
        ),
        ([], r"X\.inter: the file is empty"),
    ],
)
def test_recbole_bad_inter(tmp_path: Path, inter: list[str], message: str) -> None:
    folder = tmp_path / "X"
    folder.mkdir()
    write_lines(folder / "X.inter", inter)
    with pytest.raises(PrepareError, match=message):
        read_recbole(folder)


def test_recbole_bad_folder(tmp_path: Path) -> None:
    with pytest.raises(PrepareError, match=r"absent: not found; --input expects the folder"):
        read_recbole(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PrepareError, match=r"empty: no \.inter file in this folder"):
        read_recbole(empty)
    both = tmp_path / "both"
    both.mkdir()
    for name in ("one", "two"):
        write_lines(both / f"{name}.inter", ["user_id:token\titem_id:token\ttimestamp:float"])
    with pytest.raises(PrepareError, match=r"several \.inter files \(one\.inter, two\.inter\)"):
        read_recbole(both)


def test_recbole_bad_item_file(tmp_path: Path) -> None:
    folder = recbole_folder(tmp_path)
    write_lines(folder / "Amazon_Mini.item", ["item_id:token\ttitle:token_seq", "a\tA\textra"])
    with pytest.raises(PrepareError, match=r"Amazon_Mini\.item, line 2: expected 2 tab-separated fields"):
        read_recbole(folder)


# --------------------------------------------------------------------------- sequences


SEQUENCES = [
    "u1 a b a c",  # the second a repeats the first: position 0 is kept
    "u2 b a g",
    "",
    "u3 b d e",
    "u4 e f f",
    "u5 a b g",
]
ITEM_TEXT = [
    "item_id\ttitle\tcategories\tbrand\tdescription",
    "a\tNail Polish &amp; Top Coat\tBeauty, Makeup, Nail Polish\tOPI\tignored",
    "b\tL&#39;Oreal   Lipstick\tBeauty Makeup\t \tignored too",
    "d\tFiltered out\tBeauty\tX\t",
    'g\t\tBeauty, Skin Care\tNivea\t"quoted',
]


def test_sequences(tmp_path: Path) -> None:
    sequences = write_lines(tmp_path / "Beauty.txt", SEQUENCES)
    item_text = write_lines(tmp_path / "Beauty_items.tsv", ITEM_TEXT, compress=True)
    output = tmp_path / "beauty"
    run(
        [
            "sequences",
            "--sequences",
            str(sequences),
            "--item-text",
            str(item_text),
            "--output",
            str(output),
            "--k",
            "2",
        ]
    )

    assert read_lines(output / "beauty.inter") == inter_rows(
        [
            ("u1", "a", 0),
            ("u1", "b", 1),
            ("u2", "b", 0),
            ("u2", "a", 1),
            ("u2", "g", 2),
            ("u5", "a", 0),
            ("u5", "b", 1),
            ("u5", "g", 2),
        ]
    )
    assert read_lines(output / "beauty.item") == [
        "item_id:token\ttitle:token_seq\tcategories:token_seq\tbrand:token_seq",
        "a\tNail Polish & Top Coat\tBeauty Makeup Nail_Polish\tOPI",
        "b\tL'Oreal Lipstick\tBeauty Makeup\t",
        "g\t\tBeauty Skin_Care\tNivea",
    ]
    check_stats(output, "beauty", "sequences", raw_interactions=16, duplicates_removed=2)


def test_sequences_without_item_text(tmp_path: Path) -> None:
    sequences = write_lines(tmp_path / "s.txt", SEQUENCES)
    prepare(read_sequences(sequences), tmp_path / "s", k=2)
    assert read_lines(tmp_path / "s" / "s.item") == ["item_id:token", "a", "b", "g"]


@pytest.mark.parametrize(
    ("sequences", "item_text", "message"),
    [
        (
            ["u1 a b", "u2"],
            None,
            r"s\.txt, line 2: user 'u2' has no items; --sequences expects one line per user",
        ),
        (
            ["u1 a b"],
            ["item_id\ttitle", "a\tA\tB"],
            r"t\.tsv, line 2: expected 2 tab-separated fields as in the",
        ),
        (["u1 a b"], [], r"t\.tsv: the file is empty; --item-text expects a tab-separated table"),
        (["u1 a b"], ["id\ttitle\ttitle"], r"t\.tsv, line 1: the header repeats a field name"),
    ],
)
def test_sequences_bad_input(tmp_path: Path, sequences: list[str], item_text: list[str] | None, message: str) -> None:
    table = None if item_text is None else write_lines(tmp_path / "t.tsv", item_text)
    with pytest.raises(PrepareError, match=message):
        read_sequences(write_lines(tmp_path / "s.txt", sequences), table)


# --------------------------------------------------------------------------- common rules and output


def test_clean_text_and_categories() -> None:
    assert clean_text(None) == ""
    assert clean_text(float("nan")) == ""
    assert clean_text("  A&amp;B\t\r\n C&nbsp;D ") == "A&B C D"
    assert clean_categories([["Nail Polish", "Nail  Polish"], "&#39;Tools&#39;", "", None]) == "Nail_Polish 'Tools'"


def test_nothing_left_after_filtering(tmp_path: Path) -> None:
    data = read_sequences(write_lines(tmp_path / "s.txt", SEQUENCES))
    with pytest.raises(PrepareError, match=r"s\.txt: no interactions left after 4-core filtering of 14 interactions"):
        prepare(data, tmp_path / "out", k=4)
    assert not (tmp_path / "out").exists()


def test_no_interactions_at_all(tmp_path: Path) -> None:
    with pytest.raises(PrepareError, match=r"s\.txt: no interactions found"):
        prepare(read_sequences(write_lines(tmp_path / "s.txt", ["", "  "])), tmp_path / "out", k=1)


def test_output_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    data = SourceData([], {}, "in.txt")
    with pytest.raises(PrepareError, match=r"taken: exists and is not a directory; --output names the dataset"):
        prepare(data, tmp_path / "taken", k=1)
    with pytest.raises(PrepareError, match=r"--output must end with the dataset name"):
        prepare(data, Path("."), k=1)


def test_output_is_checked_before_reading(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    with pytest.raises(PrepareError, match=r"taken: exists and is not a directory"):
        run(["sequences", "--sequences", str(tmp_path / "absent.txt"), "--output", str(tmp_path / "taken")])


def test_rerun_replaces_files(tmp_path: Path) -> None:
    sequences = write_lines(tmp_path / "s.txt", SEQUENCES)
    output = tmp_path / "out"
    prepare(read_sequences(sequences), output, k=1)
    prepare(read_sequences(sequences), output, k=2)
    assert sorted(path.name for path in output.iterdir()) == ["out.inter", "out.item", "out.stats.json"]
    assert len(read_lines(output / "out.inter")) == 9


def test_main_prints_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sequences = write_lines(tmp_path / "s.txt", SEQUENCES)
    assert main(["sequences", "--sequences", str(sequences), "--output", str(tmp_path / "s"), "--k", "2", "-q"]) == 0
    assert capsys.readouterr().out == (
        "s: 3 users, 3 items, 8 interactions, density 0.888889, mean sequence length 2.67\n"
    )


def test_main_reports_errors_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sequences", "--sequences", str(tmp_path / "absent.txt"), "--output", str(tmp_path / "s")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {tmp_path / 'absent.txt'}: file not found")


def test_command_line_error_exit_code(tmp_path: Path) -> None:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), environment.get("PYTHONPATH")]))
    meta = amazon_meta(tmp_path / "meta.json")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "recbole_galrec.prepare",
            "amazon",
            "--reviews",
            "missing_reviews.json.gz",
            "--meta",
            str(meta),
            "--output",
            "dataset/amazon-beauty",
        ],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "error: missing_reviews.json.gz: file not found; check the path given to --reviews" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "dataset").exists()
