"""Dataset classes this package adds to RecBole, picked by name: ``<Model>Dataset``."""

import os

import numpy as np
from recbole.data.dataset import SequentialDataset
from recbole.utils import FeatureType

from recbole_galrec.data.graph import TrainingGraph
from recbole_galrec.errors import ConfigError, DataError

__all__ = ["GALRecDataset", "ItemTextDataset", "SASRecTextDataset", "training_histories"]


class ItemTextDataset(SequentialDataset):
    """RecBole's sequential dataset plus each item's text, built after the split.

    After :meth:`build` every returned split carries ``item_texts``: one string per internal item id (``""`` for
    padding and for items without text), from the ``.item`` fields named by ``item_text_fields`` (the model's
    settings, ``config.settings``).

    Items of the ``.inter`` file without a ``.item`` row are named in a warning: RecBole drops their
    interactions (``filter_inter_by_user_or_item``, on by default, for every model alike) or, with it off,
    keeps them with empty text. A dataset in which no item has text stops with :class:`DataError`.
    """

    # How to run without text, said where the text is missing (a model that can run without it says how).
    _without_text = ""

    def _uses_text(self) -> bool:
        return True

    def _atomic_file(self, suffix: str) -> str:
        return os.path.join(self.dataset_path, f"{self.dataset_name}.{suffix}")

    def _filter_inter_by_user_or_item(self):
        """RecBole's filter, after a warning naming the ``.item`` file when items of the ``.inter`` file have no
        row in it."""
        if self.item_feat is not None:
            iids = self.inter_feat[self.iid_field]
            lacking = ~iids.isin(self.item_feat[self.iid_field].values)
            if lacking.any():
                head = (
                    f"'{self._atomic_file('item')}' has no row for {iids[lacking].nunique()} items of "
                    f"'{self._atomic_file('inter')}' ({int(lacking.sum())} interactions)"
                )
                if self.config["filter_inter_by_user_or_item"] is True:
                    self.logger.warning(
                        f"{head}: their interactions are dropped. Add their rows to the .item file, or set "
                        "filter_inter_by_user_or_item: False to keep them with empty text."
                    )
                else:
                    self.logger.warning(f"{head}: they are kept, with empty text (filter_inter_by_user_or_item).")
        super()._filter_inter_by_user_or_item()

    def _item_texts(self) -> list[str]:
        """Each item's text: the configured fields' tokens joined by spaces ('_' read as a space)."""
        fields = list(self.config.settings.item_text_fields)
        if not self._uses_text():
            return [""] * self.item_num
        loaded = list(self.item_feat.columns) if self.item_feat is not None else []
        present = [f for f in fields if f in loaded]
        if not present:
            raise ConfigError(
                f"None of the item text fields {fields} is loaded for dataset '{self.dataset_name}' "
                f"from '{self._atomic_file('item')}' (loaded item fields: {sorted(loaded)}). "
                "Set item_text_fields to fields of its .item file and list them in load_col['item']"
                f"{self._without_text}."
            )
        missing = sorted(set(fields) - set(present))
        if missing:
            self.logger.warning(f"item text fields {missing} are not loaded; using {present}")
        parts = [self._field_strings(field) for field in present]
        texts = [" ".join(p for p in item_parts if p) for item_parts in zip(*parts, strict=True)]
        texts[0] = ""  # padding item
        if not any(texts):
            raise DataError(
                f"No item has text: the item text fields {present} are empty for every item in "
                f"'{self._atomic_file('item')}'. Fill them in that file or set item_text_fields to fields that "
                f"hold text{self._without_text}."
            )
        self.logger.info(f"item text: {sum(bool(t) for t in texts[1:])} of {self.item_num - 1} items have text")
        return texts

    def _field_strings(self, field: str) -> list[str]:
        """One string per item row of ``item_feat[field]`` (rows are internal item ids; called after RecBole
        turned the features into padded tensors)."""
        values = self.item_feat[field]
        kind = self.field2type[field]
        if kind in (FeatureType.TOKEN, FeatureType.TOKEN_SEQ):
            vocabulary = np.asarray(self.field2id_token[field], dtype=object)
            ids = np.asarray(values).reshape(len(values), -1)
            words = [
                " ".join(str(vocabulary[i]) for i in row if i != 0)  # token id 0 is the field's padding
                for row in ids
            ]
        else:
            words = [str(v) for v in np.asarray(values).tolist()]
        return [w.replace("_", " ").strip() for w in words]

    def build(self):
        datasets = super().build()
        self.item_texts = self._item_texts()
        for split in datasets:
            split.item_texts = self.item_texts
        return datasets


class SASRecTextDataset(ItemTextDataset):
    """SASRecText's dataset: each item's text (:class:`ItemTextDataset`), from which its item table starts."""

    _without_text = ", or run SASRec, which needs no text"


class GALRecDataset(ItemTextDataset):
    """Each item's text (:class:`ItemTextDataset`; none with ``item_text_mode: none``) plus what GALRec's prompts
    need, built after the split from the TRAINING split only (no user's validation or test interaction enters
    it): every returned split carries ``training_graph``, a :class:`~recbole_galrec.data.graph.TrainingGraph`
    (the training interactions, from which each sample's 2-hop users and each item's 1-hop users are chosen).
    """

    _without_text = ", or switch text off with item_text_mode: none and score_text_weight: 0"

    def _uses_text(self) -> bool:
        return self.config.settings.item_text_mode != "none"

    def build(self):
        datasets = super().build()
        train = datasets[0]
        histories = training_histories(train)
        graph = TrainingGraph(
            histories,
            n_users=self.user_num,
            n_items=self.item_num,
            num_neighbors=self.config.settings.prompt_num_neighbors,
            seed=self.config["seed"],
        )
        self.logger.info(
            f"training graph of {graph.user_item._nnz()} user-item pairs "
            f"({sum(len(h) for h in histories.values())} training interactions of {len(histories)} users)"
        )
        for split in datasets:
            split.training_graph = graph
        return datasets


def training_histories(train) -> dict[int, list[int]]:
    """Each user's training items, oldest first, read from RecBole's augmented training split.

    RecBole turns a user's sequence ``s1 .. sn`` into samples ``<s1> -> s2``, ``<s1, s2> -> s3`` ... in time
    order and keeps the last two targets for validation and test. The training targets plus the first item
    of the first sample are therefore exactly the user's training interactions, and never truncated by
    ``MAX_ITEM_LIST_LENGTH``.
    """
    users = train.inter_feat[train.uid_field].numpy()
    targets = train.inter_feat[train.iid_field].numpy()
    first_items = train.inter_feat[train.iid_field + train.config["LIST_SUFFIX"]][:, 0].numpy()
    histories: dict[int, list[int]] = {}
    for user, target, first in zip(users.tolist(), targets.tolist(), first_items.tolist(), strict=True):
        if user not in histories:
            histories[user] = [first]
        histories[user].append(target)
    return histories
