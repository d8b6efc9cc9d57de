"""The external vectors' cache files (read back with checks; written atomically by
:func:`recbole_galrec.running.checkpoints.save_atomic`) and their alignment by token
with the ids of the dataset a GALRec run built."""

from __future__ import annotations

import os
from collections.abc import Mapping
from logging import getLogger

import torch

logger = getLogger("recbole_galrec.external")


def read_cache(path: str, name: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: rebuild it
        logger.warning(f"external {name}: cache {path} is unreadable ({err}); rebuilding it")
        return None
    required = {"name", "user_tokens", "item_tokens", "user", "item"}
    if not isinstance(payload, dict) or not required <= payload.keys() or payload["name"] != name:
        logger.warning(f"external {name}: cache {path} is not a {name} cache; rebuilding it")
        return None
    return payload


def align(tokens: list[str], vectors: torch.Tensor, token2id: Mapping, n_rows: int, what: str, name: str):
    """Place each token's vector at the row of that token in the target dataset; other rows stay zero."""
    out = torch.zeros(n_rows, vectors.size(1), dtype=torch.float32)
    source, target = [], []
    for row, token in enumerate(tokens):
        index = token2id.get(token)
        if index is not None and index != 0:
            source.append(row)
            target.append(index)
    if source:
        out[torch.tensor(target)] = vectors[torch.tensor(source)].float()
    missing = n_rows - 1 - len(set(target))
    if missing:
        logger.warning(f"external {name}: {missing} of {n_rows - 1} {what}s have no {name} vector (left zero)")
    unused = len(tokens) - len(source)
    if unused:
        logger.warning(f"external {name}: {unused} {name} {what}s are not in this dataset (dropped)")
    return out


def token2id(dataset, field: str) -> Mapping:
    mapping = getattr(dataset, "field2token_id", {}).get(field)
    if mapping is None:
        mapping = {str(t): i for i, t in enumerate(dataset.field2id_token[field])}
    return mapping
