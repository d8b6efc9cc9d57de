"""Frozen encoders of the external models' user vectors, recomputed from a history.

A prompt's own user never takes an external model's row fitted on all of its training edges (for a training
prefix that row knows the target): each external model has an encoder that recomputes the user's vector
from the history in the prompt. SASRec's is its own frozen sequence encoder (:class:`SASRecUserEncoder`);
LightGCN has none, so the vector is the mean of its item vectors over the history
(:class:`HistoryMeanEncoder`). :class:`ExternalEmbeddings` is one external model's tables and encoder, as
:mod:`recbole_galrec.external` hands them to the model.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn


def recent_items(item_seq: torch.Tensor, item_seq_len: torch.Tensor, length: int) -> torch.Tensor:
    """The last ``length`` items of each left-aligned, 0-padded sequence ``[B, L]``, again left-aligned and
    0-padded: ``[B, length]``."""
    offsets = torch.arange(length, device=item_seq.device)  # [length]
    start = (item_seq_len - length).clamp(min=0)  # [B]
    positions = (start[:, None] + offsets).clamp(max=item_seq.shape[1] - 1)  # [B, length]
    taken = torch.gather(item_seq, 1, positions)  # [B, length]
    return taken * (offsets[None, :] < item_seq_len.clamp(max=length)[:, None])


class SASRecUserEncoder(nn.Module):
    """A trained SASRec's sequence encoder, frozen: item history ``[B, L]`` -> user vector ``[B, d]``.

    Built from the ``encoder`` entry of a SASRec cache (hyperparameters and the weights of the position
    embedding, input LayerNorm and transformer), with ``item_table`` ``[n_items, d]``: SASRec's item
    embeddings aligned with the ids of the dataset it is used on. It computes what RecBole's ``SASRec.forward``
    computes in evaluation mode, from the last ``max_seq_length`` items of each history. Always in
    evaluation mode (no dropout) and without gradients; its weights are not part of the model's trainable state
    (a GALRec checkpoint carries them among its frozen inputs: :meth:`ExternalEmbeddings.to_dict`).
    """

    def __init__(self, encoder: Mapping, item_table: torch.Tensor):
        super().__init__()
        from recbole.model.layers import TransformerEncoder

        h = encoder["hparams"]
        self.hparams = dict(h)
        self.max_seq_length = int(h["max_seq_length"])
        self.register_buffer("item_table", item_table.float(), persistent=False)  # [n_items, d]
        self.position_embedding = nn.Embedding(self.max_seq_length, int(h["hidden_size"]))
        self.LayerNorm = nn.LayerNorm(int(h["hidden_size"]), eps=float(h["layer_norm_eps"]))
        self.trm_encoder = TransformerEncoder(
            n_layers=int(h["n_layers"]),
            n_heads=int(h["n_heads"]),
            hidden_size=int(h["hidden_size"]),
            inner_size=int(h["inner_size"]),
            hidden_dropout_prob=0.0,
            attn_dropout_prob=0.0,
            hidden_act=str(h["hidden_act"]),
            layer_norm_eps=float(h["layer_norm_eps"]),
        )
        self.load_state_dict(encoder["state"])
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True):
        return super().train(False)  # frozen: never in training mode

    @torch.no_grad()
    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        item_seq = recent_items(item_seq, item_seq_len, min(self.max_seq_length, item_seq.shape[1]))  # [B, L]
        length = item_seq_len.clamp(min=1, max=item_seq.shape[1])  # [B]
        positions = torch.arange(item_seq.shape[1], device=item_seq.device)  # [L]
        hidden = self.item_table[item_seq] + self.position_embedding(positions)[None]  # [B, L, d]
        hidden = self.LayerNorm(hidden)
        causal = torch.tril((item_seq != 0)[:, None, None, :].expand(-1, -1, item_seq.shape[1], -1))
        mask = torch.where(causal, 0.0, -10000.0)  # [B, 1, L, L], as RecBole's get_attention_mask
        hidden = self.trm_encoder(hidden, mask, output_all_encoded_layers=False)[-1]  # [B, L, d]
        user = hidden[torch.arange(hidden.shape[0], device=hidden.device), length - 1]  # [B, d]
        return user * (item_seq_len > 0)[:, None]  # no history: zero, as a user without a training sample


class HistoryMeanEncoder(nn.Module):
    """The user vector of a model without a sequence encoder (LightGCN), recomputed from a history: the mean
    of the model's item vectors over the history's items ``[B, L]`` -> ``[B, d]`` (zero for an empty one).

    LightGCN's own row of a user is fitted on all of the user's training edges, so for a training prefix it
    already encodes the prefix's target; this vector is a function of the prefix alone (a LightGCN user
    vector is, after one propagation layer, a normalised sum of its items' vectors). Frozen, not saved."""

    def __init__(self, item_table: torch.Tensor):
        super().__init__()
        self.register_buffer("item_table", item_table.float(), persistent=False)  # [n_items, d]

    @torch.no_grad()
    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        valid = (item_seq != 0).float()[..., None]  # [B, L, 1]
        total = (self.item_table[item_seq] * valid).sum(dim=1)  # [B, d]
        return total / valid.sum(dim=1).clamp(min=1.0)


@dataclass
class ExternalEmbeddings:
    """One external model's vectors, rows in the GALRec dataset's internal id order (row 0: padding).

    ``encoder`` recomputes the model's user vector from any history: :class:`SASRecUserEncoder` for SASRec,
    :class:`HistoryMeanEncoder` for LightGCN. A prompt's own user takes it; other users keep ``user``."""

    name: str
    user: torch.Tensor  # [n_users, d] float32
    item: torch.Tensor  # [n_items, d] float32
    encoder: nn.Module

    def to_dict(self) -> dict:
        """Plain tensors and numbers (what a checkpoint stores); :meth:`from_dict` rebuilds the same tables."""
        spec = None
        if isinstance(self.encoder, SASRecUserEncoder):
            spec = {"hparams": dict(self.encoder.hparams), "state": self.encoder.state_dict()}
        return {"name": self.name, "user": self.user, "item": self.item, "encoder": spec}

    @classmethod
    def from_dict(cls, stored: Mapping) -> "ExternalEmbeddings":
        item = stored["item"]
        spec = stored.get("encoder")
        encoder = SASRecUserEncoder(spec, item) if spec else HistoryMeanEncoder(item)
        return cls(stored["name"], stored["user"], item, encoder)
