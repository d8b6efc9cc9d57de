"""Extractors: a trained external model -> its user and item tables (and SASRec's frozen sequence encoder), in
the external dataset's internal id order, stored with the tokens that align them with any build of the data."""

from __future__ import annotations

from collections.abc import Callable

import torch

from recbole_galrec.data.dataset import training_histories
from recbole_galrec.external.plan import ExternalRun


def padded_training_histories(train_dataset, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each user's training history (:func:`recbole_galrec.data.dataset.training_histories`) as SASRec input:
    ``item_seq`` [user_num, max_len] (the last ``max_len`` items, left-aligned, 0-padded) and ``item_seq_len``
    [user_num] (0 for users without a training sample)."""
    item_seq = torch.zeros(train_dataset.user_num, max_len, dtype=torch.long)
    item_seq_len = torch.zeros(train_dataset.user_num, dtype=torch.long)
    for user, items in training_histories(train_dataset).items():
        tail = items[-max_len:]
        item_seq[user, : len(tail)] = torch.as_tensor(tail, dtype=torch.long)
        item_seq_len[user] = len(tail)
    return item_seq, item_seq_len


@torch.no_grad()
def _extract_sasrec(model, train_data, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
    model.eval()
    item_seq, item_seq_len = padded_training_histories(train_data._dataset, model.max_seq_length)
    user = torch.zeros(item_seq.size(0), model.hidden_size)
    with_history = torch.nonzero(item_seq_len > 0).flatten()
    device = model.item_embedding.weight.device
    for start in range(0, len(with_history), batch_size):
        users = with_history[start : start + batch_size]
        output = model.forward(item_seq[users].to(device), item_seq_len[users].to(device))
        user[users] = output.float().cpu()
    encoder = {
        "hparams": {
            "max_seq_length": model.max_seq_length,
            "hidden_size": model.hidden_size,
            "layer_norm_eps": model.layer_norm_eps,
            "n_layers": model.n_layers,
            "n_heads": model.n_heads,
            "inner_size": model.inner_size,
            "hidden_act": model.hidden_act,
        },
        "state": {
            name: tensor.detach().float().cpu().clone()
            for name, tensor in model.state_dict().items()
            if name.split(".")[0] in ("position_embedding", "LayerNorm", "trm_encoder")
        },
    }
    return user, model.item_embedding.weight.detach().float().cpu(), encoder


@torch.no_grad()
def _extract_lightgcn(model, train_data, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, None]:
    model.eval()
    user, item = model.forward()
    return user.detach().float().cpu(), item.detach().float().cpu(), None


EXTRACTORS: dict[str, Callable] = {"SASRec": _extract_sasrec, "LightGCN": _extract_lightgcn}


def extract_payload(run: ExternalRun, model, train_data, valid_result) -> dict:
    batch_size = int(run.config["eval_batch_size"] or 1024)
    user, item, encoder = EXTRACTORS[run.name](model, train_data, batch_size)
    dataset = train_data._dataset
    user_tokens = [str(t) for t in dataset.field2id_token[dataset.uid_field]]
    item_tokens = [str(t) for t in dataset.field2id_token[dataset.iid_field]]
    if user.size(0) != len(user_tokens) or item.size(0) != len(item_tokens):
        raise RuntimeError(
            f"{run.name} extractor returned {user.size(0)} users / {item.size(0)} items for a dataset of "
            f"{len(user_tokens)} / {len(item_tokens)}"
        )
    # Row 0 is RecBole's padding id: not stored, so that it stays zero after alignment.
    return {
        "name": run.name,
        "user_tokens": user_tokens[1:],
        "item_tokens": item_tokens[1:],
        "user": user[1:].float().contiguous().clone(),
        "item": item[1:].float().contiguous().clone(),
        "encoder": encoder,
        "config": run.key_config,
        "valid_result": None if valid_result is None else {str(k): float(v) for k, v in valid_result.items()},
    }
