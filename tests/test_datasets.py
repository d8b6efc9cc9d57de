"""The property files of the paper's three datasets read the literature's versions whole.

Each dataset is read as a benchmark run reads it (the package's ``properties/dataset/<name>.yaml``), split as every
model splits it, with its item text as GALRec and SASRecText read it. Skipped when ``../shared/datasets`` (or
``GALREC_SHARED_DATASETS``) lacks the dataset.
"""

import pytest

from recbole_galrec.config import build_config
from recbole_galrec.data import create_dataset

from .conftest import SHARED_DATASETS

# users, items, interactions, items with text (S3-Rec's 5-core versions; docs/datasets.md)
LITERATURE = {
    "amazon-beauty": (22363, 12101, 198502, 12101),
    "amazon-toys-games": (19412, 11924, 167597, 11924),
    "yelp": (30431, 20033, 316354, 20033),
}


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(LITERATURE))
def test_literature_dataset_is_read_whole(workdir, name):
    if not (SHARED_DATASETS / name / f"{name}.inter").is_file():
        pytest.skip(f"{name} not found under {SHARED_DATASETS}")
    users, items, interactions, with_text = LITERATURE[name]
    config = build_config("SASRecText", name, config_dict={"data_path": str(SHARED_DATASETS)})
    dataset = create_dataset(config)
    # RecBole's ids count a padding user and item.
    assert (dataset.user_num - 1, dataset.item_num - 1, dataset.inter_num) == (users, items, interactions)
    train, valid, test = dataset.build()
    # Leave-one-out: one validation and one test row per user; training rows are the other interactions minus
    # each user's first item (never a target).
    assert (len(valid), len(test), len(train)) == (users, users, interactions - 3 * users)
    assert sum(bool(text) for text in train.item_texts[1:]) == with_text
