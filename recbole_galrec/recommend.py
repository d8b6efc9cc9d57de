"""Recommendations from a trained checkpoint: ``python -m recbole_galrec.recommend --checkpoint=FILE --users=ID,ID``.

For each user (raw ids, as in the atomic files) the top-k items after the user's whole known history (its
training, validation and test interactions), with their scores and, where the dataset has text, titles.
Works for GALRec and for every RecBole model this package trains: the model is rebuilt from the checkpoint
alone (a GALRec checkpoint carries its external tables and item text vectors; the language model is loaded
from its ``llm_path`` and checked against the checkpoint's digest). The dataset must be where it was
(``data_path``). From Python::

    from recbole_galrec.recommend import Recommender

    recommender = Recommender.from_checkpoint("saved/GALRec-....pth")
    for row in recommender.recommend(["1", "2"], k=10):
        print(row["user"], row["items"])
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from recbole.utils import FeatureType

from recbole_galrec import compat
from recbole_galrec.errors import ConfigError, GALRecError
from recbole_galrec.running import checkpoints
from recbole_galrec.running.files import write_atomic

logger = logging.getLogger("recbole_galrec.recommend")  # (not __name__: "__main__" under python -m)


class Recommender:
    """A trained model, its dataset, and each user's whole known history."""

    def __init__(self, config, dataset, model, single_interactions: dict[int, list[int]] | None = None):
        """``dataset``: the whole dataset (all interactions), ``model`` built on its training split.
        ``single_interactions``: the item of each user with one interaction, which a sequential dataset holds
        no sample of (:func:`_keeping_single_interactions`)."""
        self.config, self.dataset, self.model = config, dataset, model.eval()
        self.uid_field, self.iid_field = dataset.uid_field, dataset.iid_field
        self.user_ids = dataset.field2token_id[self.uid_field]  # raw id -> internal id
        self.item_tokens = dataset.field2id_token[self.iid_field]  # internal id -> raw id
        self.histories = _histories(dataset)
        for user, items in (single_interactions or {}).items():
            self.histories.setdefault(user, list(items))
        self.titles = _titles(dataset)

    @classmethod
    def from_checkpoint(cls, path: str, device: str | None = None) -> Recommender:
        """Rebuild the model of a checkpoint written by this package (any model), on ``device`` (default: the
        CPU unless the checkpoint's device is available)."""
        from recbole_galrec.running.steps import construct_model, load_data

        compat.apply()
        state = checkpoints.load(path)  # a missing, truncated or foreign file is a message naming it
        config = state["config"]
        config["device"] = torch.device(device) if device else _usable(config["device"])
        single: dict[int, list[int]] = {}
        with _keeping_single_interactions(single):
            dataset, train_data, _, _ = load_data(config)
        if config["model"] == "GALRec":
            from recbole_galrec.model.encoders import ExternalEmbeddings
            from recbole_galrec.running.model_inputs import galrec_inputs

            stored = state["other_parameter"]
            external = [ExternalEmbeddings.from_dict(e) for e in stored["external"]]
            train_data._dataset.galrec_inputs = galrec_inputs(
                config, train_data._dataset, external=external, item_text_vectors=stored["item_text_vectors"]
            )
        model = construct_model(config, train_data)
        model.load_state_dict(state["state_dict"])
        model.load_other_parameter(state.get("other_parameter"))
        return cls(config, dataset, model, single)

    def users(self) -> list[str]:
        """Every user's raw id, in internal id order (padding excluded); for a sequential model, only users with
        a history to rank after (the others are named in a warning)."""
        users = [str(t) for t in self.dataset.field2id_token[self.uid_field][1:]]
        without = self._without_history(users)
        if without:
            logger.warning(f"{len(without):,} users have no interaction to rank after and are left out: {without[:5]}")
        left_out = set(without)
        return [u for u in users if u not in left_out]

    def _without_history(self, users: list[str]) -> list[str]:
        """The users (raw ids) a sequential model cannot rank for: no interaction at all in the dataset."""
        if not hasattr(self.model, "ITEM_SEQ"):
            return []
        return [u for u in users if not self.histories.get(self.user_ids[u])]

    @torch.no_grad()
    def scores(self, users: list[int]) -> torch.Tensor:
        """Full-ranking scores ``[len(users), n_items]`` after each user's whole known history."""
        from recbole.data.interaction import Interaction

        data = {self.uid_field: torch.tensor(users)}
        if hasattr(self.model, "ITEM_SEQ"):  # a sequential model reads the history itself
            length = self.config["MAX_ITEM_LIST_LENGTH"]
            seq = torch.zeros(len(users), length, dtype=torch.long)
            seq_len = torch.zeros(len(users), dtype=torch.long)
            for row, user in enumerate(users):
                tail = self.histories.get(user, [])[-length:]
                seq[row, : len(tail)] = torch.tensor(tail, dtype=torch.long)
                seq_len[row] = len(tail)
            data[self.model.ITEM_SEQ] = seq
            data[self.model.ITEM_SEQ_LEN] = seq_len
        interaction = Interaction(data).to(self.config["device"])
        scores = self.model.full_sort_predict(interaction).view(len(users), -1).float().cpu()  # [B, n_items]
        scores[:, 0] = -torch.inf  # padding item
        return scores

    def recommend(
        self, users: Iterable[str], k: int = 10, exclude_history: bool = False, batch_size: int = 256
    ) -> Iterator[dict]:
        """For each raw user id: ``{"user", "items": [raw item ids, best first], "scores", "titles"?}``."""
        users = [str(u) for u in users]
        unknown = [u for u in users if u not in self.user_ids]
        if unknown:
            raise ConfigError(
                f"--users: {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''} not in dataset "
                f"'{self.config['dataset']}' ({len(unknown)} unknown). Users are raw ids as in its .inter file."
            )
        if not 1 <= k < len(self.item_tokens):
            raise ConfigError(f"--k must be between 1 and {len(self.item_tokens) - 1}, got {k}.")
        without = self._without_history(users)
        if without:
            raise ConfigError(
                f"--users: {', '.join(without[:5])}{' ...' if len(without) > 5 else ''} have no interaction in "
                f"dataset '{self.config['dataset']}': {self.config['model']} ranks items after a user's history. "
                "Leave them out (--users=all does)."
            )
        for start in range(0, len(users), batch_size):
            chunk = users[start : start + batch_size]
            ids = [self.user_ids[u] for u in chunk]
            scores = self.scores(ids)
            if exclude_history:
                for row, user in enumerate(ids):
                    scores[row, self.histories.get(user, [])] = -torch.inf
            top = scores.topk(k, dim=1)
            for row, user in enumerate(chunk):
                items = top.indices[row].tolist()
                out = {
                    "user": user,
                    "items": [str(self.item_tokens[i]) for i in items],
                    "scores": [round(float(v), 6) for v in top.values[row]],
                }
                if self.titles:
                    out["titles"] = [self.titles[i] for i in items]
                yield out
            if len(users) > batch_size:
                logger.info(f"recommended for {min(start + batch_size, len(users)):,} of {len(users):,} users")


def _usable(device) -> torch.device:
    device = torch.device(device)
    return device if device.type == "cpu" or torch.cuda.is_available() else torch.device("cpu")


def _histories(dataset) -> dict[int, list[int]]:
    """Each user's items in time order over the whole dataset (training, validation and test), in the order
    RecBole itself gives them (ties in time as its split has them)."""
    feat = dataset.inter_feat
    if dataset.iid_field + dataset.config["LIST_SUFFIX"] in feat:
        # a sequential dataset holds one row per prefix and next item: read as the training split is read
        from recbole_galrec.data.dataset import training_histories

        return training_histories(dataset)
    histories: dict[int, list[int]] = {}
    for user, item in zip(feat[dataset.uid_field].tolist(), feat[dataset.iid_field].tolist(), strict=True):
        histories.setdefault(user, []).append(item)
    return histories


@contextmanager
def _keeping_single_interactions(kept: dict[int, list[int]]):
    """While a dataset is built: note in ``kept`` the item of each user with exactly one interaction before
    RecBole's sequential augmentation, which keeps no sample of such a user (a sample needs a history and a next
    item), so that the user is still ranked after that item."""
    from recbole.data.dataset import SequentialDataset

    original = SequentialDataset.data_augmentation

    def augmentation(self):
        users = self.inter_feat[self.uid_field].numpy()
        items = self.inter_feat[self.iid_field].numpy()
        ids, first, counts = np.unique(users, return_index=True, return_counts=True)
        kept.update({int(u): [int(items[i])] for u, i, n in zip(ids, first, counts, strict=True) if n == 1})
        original(self)

    SequentialDataset.data_augmentation = augmentation
    try:
        yield kept
    finally:
        SequentialDataset.data_augmentation = original


def _titles(dataset) -> list[str] | None:
    """Each item's text by internal id: GALRec's dataset's own, else the ``.item`` fields named by
    ``item_text_fields`` (when set and loaded), else every token and token-sequence field the ``.item`` file
    loaded besides the item id; None without any."""
    texts = getattr(dataset, "item_texts", None)
    if texts and any(texts):
        return list(texts)
    feat = dataset.item_feat
    if feat is None:
        return None
    loaded = [field for field in feat.columns if field != dataset.iid_field]
    configured = dataset.config.final_config_dict.get("item_text_fields") or []
    configured = [configured] if isinstance(configured, str) else list(configured)
    textual = [f for f in loaded if dataset.field2type[f] in (FeatureType.TOKEN, FeatureType.TOKEN_SEQ)]
    fields = [f for f in configured if f in loaded] or textual
    if not fields:
        return None
    parts = [_field_strings(dataset, field) for field in fields]
    titles = [" ".join(p for p in item_parts if p) for item_parts in zip(*parts, strict=True)]
    return titles if any(titles[1:]) else None


def _field_strings(dataset, field: str) -> list[str]:
    """One string per item (internal id) of ``item_feat[field]``: its tokens joined by spaces, '_' read as a space."""
    values = dataset.item_feat[field]
    if dataset.field2type[field] in (FeatureType.TOKEN, FeatureType.TOKEN_SEQ):
        vocabulary = dataset.field2id_token[field]
        rows = np.asarray(values).reshape(len(values), -1).tolist()
        words = [" ".join(str(vocabulary[t]) for t in row if t != 0) for row in rows]  # token 0: padding
    else:
        words = [str(v) for v in np.asarray(values).tolist()]
    return [w.replace("_", " ").strip() for w in words]


def _write_rows(rows: Iterable[dict], output: str) -> int:
    """Write one JSON line per row to a temporary file beside ``output``, renamed to ``output`` once every row is
    written (:func:`recbole_galrec.running.files.write_atomic`): a failure leaves no file (or the previous one)
    behind. Returns the rows written."""
    count = 0

    def write(f) -> None:
        nonlocal count
        for row in rows:
            f.write(json.dumps(row) + "\n")
            count += 1

    write_atomic(output, write)
    return count


def _check_output(output: str) -> None:
    """ConfigError unless ``output`` can be written: not a folder, in a folder that exists or can be made."""
    if os.path.isdir(output):
        raise ConfigError(
            f"--output '{output}' is a folder; give a file name, e.g. {os.path.join(output, 'top.jsonl')}."
        )
    folder = os.path.dirname(os.path.abspath(output))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--output '{output}': its folder cannot be created ({err.strerror or err}).") from None
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"--output '{output}': its folder '{folder}' is not writable; give another path.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_galrec.recommend",
        description="Top-k items per user from a trained checkpoint, after each user's whole known history.",
    )
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by a run of this package")
    parser.add_argument("--users", required=True, help="comma-separated raw user ids, or 'all'")
    parser.add_argument("--k", type=int, default=10, help="items per user (default: 10)")
    parser.add_argument("--exclude-history", action="store_true", help="never recommend an item the user has had")
    parser.add_argument("--output", default=None, help="write one JSON line per user to this file instead")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the checkpoint's, if available)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S", level=logging.WARNING)
    logging.getLogger("recbole_galrec").setLevel(logging.INFO)  # this package's progress; RecBole's only if wrong
    try:
        # the arguments first: a bad one fails before the checkpoint, the dataset and the model load
        if args.k < 1:
            raise ConfigError(f"--k must be at least 1, got {args.k}.")
        named = None if args.users == "all" else [u.strip() for u in args.users.split(",") if u.strip()]
        if named == []:
            raise ConfigError("--users names no user.")
        if args.output:
            _check_output(args.output)
        recommender = Recommender.from_checkpoint(args.checkpoint, args.device)
        users = recommender.users() if named is None else named
        rows = recommender.recommend(users, k=args.k, exclude_history=args.exclude_history)
        if args.output:
            count = _write_rows(rows, args.output)
            logger.info(f"{count:,} users' recommendations written to {args.output}")
        else:
            for row in rows:
                print(f"user {row['user']}:")
                for rank, item in enumerate(row["items"]):
                    title = f"  {row['titles'][rank]}" if "titles" in row else ""
                    print(f"  {rank + 1:>3}. {item:<12} {row['scores'][rank]:>10.4f}{title}")
    except GALRecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
