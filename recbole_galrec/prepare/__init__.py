"""Turn the raw public datasets used by GAL-Rec into RecBole atomic files (an offline tool).

Usage::

    python -m recbole_galrec.prepare amazon \\
        --reviews reviews_Beauty.json.gz --meta meta_Beauty.json.gz --output dataset/amazon-beauty
    python -m recbole_galrec.prepare yelp \\
        --business yelp_academic_dataset_business.json \\
        --reviews yelp_academic_dataset_review.json --output dataset/yelp
    python -m recbole_galrec.prepare recbole --input raw/Amazon_Beauty --output dataset/amazon-beauty
    python -m recbole_galrec.prepare sequences \\
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

Bad input raises :class:`~recbole_galrec.errors.PrepareError`, whose message names the file, the line
where relevant, the problem and what to do; the command prints it as ``error: ...`` and exits with
status 2.

Modules, in pipeline order: ``records`` (the data passed between steps), ``text`` (text cleaning),
``inputs`` (opening, decoding and parsing input files), ``sources`` (the four readers), ``build``
(merging, k-core filtering, ordering), ``write`` (the atomic files and statistics) and ``cli``
(:func:`prepare`, the command line). The package imports neither torch nor RecBole.
"""

from recbole_galrec.errors import PrepareError
from recbole_galrec.prepare.build import build_dataset, chronological, deduplicate, k_core
from recbole_galrec.prepare.cli import build_parser, main, prepare, run
from recbole_galrec.prepare.records import DEFAULT_K, Interaction, PreparedDataset, SourceData
from recbole_galrec.prepare.sources import read_amazon, read_recbole, read_sequences, read_yelp
from recbole_galrec.prepare.text import clean_categories, clean_text
from recbole_galrec.prepare.write import check_output, format_summary, write_dataset

__all__ = [
    "DEFAULT_K",
    "Interaction",
    "PrepareError",
    "PreparedDataset",
    "SourceData",
    "build_dataset",
    "build_parser",
    "check_output",
    "chronological",
    "clean_categories",
    "clean_text",
    "deduplicate",
    "format_summary",
    "k_core",
    "main",
    "prepare",
    "read_amazon",
    "read_recbole",
    "read_sequences",
    "read_yelp",
    "run",
    "write_dataset",
]
