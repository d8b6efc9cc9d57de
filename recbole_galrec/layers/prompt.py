"""Prompt construction with tensor operations: templates are tokenised once, prompts assembled per batch.

A template is text with placeholders, e.g. ``"[GAL_USER] {user} bought {history} [GAL_HOP] {neighbors} [GAL_PRED]"``.
Bracketed ``[GAL_...]`` words are task tokens (added to the tokenizer). Each prompt position is one of
- ``TOKEN``: a token id (template text, or an item's text in ``tokens`` mode);
- ``USER``: the soft token of a user id;
- ``ITEM``: the soft token of an item id,
and belongs to a segment: ``OWN`` (template text and the prompt's own user/item), ``HOP1`` (the user's history
items, or an item's users) or ``HOP2`` (the user's 2-hop users). The model embeds each position by its kind and
pools hidden states per segment (:meth:`Prompt.segment_mean`); the prompt builder holds no weights, only the
token ids of the templates and item texts, as buffers that follow the model across devices.

Prompts are assembled as fixed-size blocks with a validity mask, then compacted (valid positions first, in
order) by one stable sort per row: no Python loop over samples, no string formatting per sample.
"""

import re
from dataclasses import dataclass

import torch
from torch import nn

TOKEN, USER, ITEM = 0, 1, 2
OWN, HOP1, HOP2 = 0, 1, 2

TASK_TOKEN = re.compile(r"\[GAL_[A-Z0-9_]+\]")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")

USER_PLACEHOLDERS = ("user", "history", "neighbors")
ITEM_PLACEHOLDERS = ("item", "item_users")


@dataclass
class Prompt:
    """A batch of prompts, every tensor ``[B, T]`` (``last``: ``[B]``)."""

    kind: torch.Tensor  # TOKEN / USER / ITEM
    index: torch.Tensor  # token id, user id or item id (0 on padding)
    segment: torch.Tensor  # OWN / HOP1 / HOP2
    attention_mask: torch.Tensor  # 1 on real positions, 0 on padding (padding is at the end of each row)
    last: torch.Tensor  # position of each prompt's last real position, whose state is E0

    def last_states(self, states: torch.Tensor) -> torch.Tensor:
        """The state at each prompt's last real position: ``[B, T, H]`` -> ``[B, H]``."""
        return states[torch.arange(states.shape[0], device=states.device), self.last]

    def embed(self, width: int, tokens, users, items, own_user: torch.Tensor | None = None) -> torch.Tensor:
        """Input vectors ``[B, T, width]`` of the real positions (zero on padding), each kind by its own map, run
        only on the positions of its kind: ``tokens``, ``users`` and ``items`` map ids ``[N]`` to ``[N, width]``;
        ``own_user`` ``[B, width]``, when given, is the vector of each prompt's own user (else its id is mapped)."""
        real = self.attention_mask.bool()  # [B, T]
        is_token, is_item = real & (self.kind == TOKEN), real & (self.kind == ITEM)  # [B, T]
        is_own = real & (self.kind == USER) & (self.segment == OWN)  # [B, T]
        is_own = is_own if own_user is not None else torch.zeros_like(real)
        is_other = real & (self.kind == USER) & ~is_own  # [B, T]
        embeds = torch.zeros(*self.kind.shape, width, device=self.kind.device)  # [B, T, width]
        embeds[is_token] = tokens(self.index[is_token])  # [N_token, width]
        embeds[is_other] = users(self.index[is_other])  # [N_user, width]
        if own_user is not None:
            embeds[is_own] = own_user[is_own.nonzero()[:, 0]]  # each own-user position's prompt row
        embeds[is_item] = items(self.index[is_item])  # [N_item, width]
        return embeds

    def segment_mean(self, states: torch.Tensor, segment: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean state over a segment's real positions ``[B, H]`` and whether the segment is non-empty ``[B]``."""
        mask = ((self.segment == segment) & self.attention_mask.bool()).float()  # [B, T]
        count = mask.sum(dim=1)  # [B]
        pooled = (states * mask[..., None]).sum(dim=1) / count.clamp(min=1)[:, None]  # [B, H]
        return pooled, count > 0


def task_tokens(*templates: str) -> list[str]:
    """The task tokens used by the templates, in order of first use."""
    found: list[str] = []
    for template in templates:
        found += [t for t in TASK_TOKEN.findall(template) if t not in found]
    return found


def tokenize_item_texts(tokenizer, texts: list[str], length: int):
    """Item texts -> ``[n_items, length]`` token ids and mask (no special tokens, padded, truncated)."""
    encoded = tokenizer(
        texts,
        add_special_tokens=False,
        truncation=True,
        max_length=max(length, 1),
        padding="max_length",
        return_tensors="pt",
    )
    return encoded["input_ids"], encoded["attention_mask"]


class PromptBuilder(nn.Module):
    """Assembles user prompts and item prompts from ids.

    Args:
        user_template: must contain ``{user}``, ``{history}`` and ``{neighbors}`` once each.
        item_template: must contain ``{item}`` and ``{item_users}`` once each.
        tokenize: text -> list of token ids (no special tokens added), applied once per template piece.
        item_text_ids: ``[n_items, L_text]`` token ids of each item's text (``tokens`` mode), or ``None``
            to give each item a single position (its soft token, which may carry a text vector).
        item_text_mask: ``[n_items, L_text]`` 1 on real text tokens.

    The token ids are non-persistent buffers: they follow the module across devices (prompts are built there,
    from ids on the same device) and are never saved, since the templates and texts rebuild them.
    """

    def __init__(self, user_template, item_template, tokenize, item_text_ids=None, item_text_mask=None):
        super().__init__()
        self._user_layout = self._register_pieces("user", _split(user_template, USER_PLACEHOLDERS, tokenize))
        self._item_layout = self._register_pieces("item", _split(item_template, ITEM_PLACEHOLDERS, tokenize))
        self.register_buffer("item_text_ids", item_text_ids, persistent=False)
        self.register_buffer("item_text_mask", item_text_mask, persistent=False)

    def _register_pieces(self, prefix: str, pieces: list) -> list[tuple[bool, str]]:
        """Register each text piece as a buffer; the layout is ``(is text, buffer or placeholder name)`` in order."""
        layout = []
        for i, piece in enumerate(pieces):
            if isinstance(piece, str):
                layout.append((False, piece))
            else:
                name = f"{prefix}_text_{i}"
                self.register_buffer(name, piece, persistent=False)
                layout.append((True, name))
        return layout

    def _pieces(self, layout: list[tuple[bool, str]]) -> list:
        return [self.get_buffer(name) if is_text else name for is_text, name in layout]

    @property
    def user_pieces(self) -> list:
        """The user template in order: placeholder names (str) and the token ids of the text between ``[n]``."""
        return self._pieces(self._user_layout)

    @property
    def item_pieces(self) -> list:
        """The item template, as :attr:`user_pieces`."""
        return self._pieces(self._item_layout)

    def user_prompts(self, users: torch.Tensor, history: torch.Tensor, neighbors: torch.Tensor) -> Prompt:
        """Prompts of users ``[B]`` with their history items ``[B, L]`` (0-padded, oldest first) and
        2-hop users ``[B, K]`` (0-padded)."""
        blocks = {
            "user": _ids_block(users[:, None], USER, OWN),
            "history": self._items_block(history, HOP1),
            "neighbors": _ids_block(neighbors, USER, HOP2),
        }
        return _assemble(self.user_pieces, blocks, users.shape[0])

    def item_prompts(self, items: torch.Tensor, item_users: torch.Tensor) -> Prompt:
        """Prompts of items ``[B]`` with their 1-hop users ``[B, K]`` (0-padded)."""
        blocks = {
            "item": self._items_block(items[:, None], OWN),
            "item_users": _ids_block(item_users, USER, HOP1),
        }
        return _assemble(self.item_pieces, blocks, items.shape[0])

    def _items_block(self, items: torch.Tensor, segment: int):
        """Each item as its soft token, followed by its text tokens in ``tokens`` mode. ``items``: ``[B, L]``."""
        soft = _ids_block(items, ITEM, segment)
        if self.item_text_ids is None:
            return soft
        b, n = items.shape
        text = self.item_text_ids[items]  # [B, L, Lt]
        text_valid = self.item_text_mask[items].bool() & (items[:, :, None] != 0)  # [B, L, Lt]
        kind = torch.cat([soft[0].view(b, n, 1), torch.full_like(text, TOKEN)], dim=2)  # [B, L, 1 + Lt]
        index = torch.cat([soft[1].view(b, n, 1), text], dim=2)
        valid = torch.cat([soft[3].view(b, n, 1), text_valid], dim=2)
        return (
            kind.view(b, -1),
            index.view(b, -1),
            torch.full_like(index.view(b, -1), segment),
            valid.view(b, -1),
        )


def _split(template: str, placeholders: tuple[str, ...], tokenize) -> list:
    """Template -> pieces: a placeholder name (str) or the token ids of the text between (LongTensor)."""
    pieces = []
    for i, part in enumerate(_PLACEHOLDER.split(template)):
        if i % 2 == 1:
            if part not in placeholders:
                raise ValueError(f"unknown placeholder {{{part}}} in template {template!r}; use {placeholders}")
            pieces.append(part)
        elif part.strip():
            pieces.append(torch.as_tensor(tokenize(part.strip()), dtype=torch.long))
    return pieces


def _ids_block(ids: torch.Tensor, kind: int, segment: int):
    """One position per id; id 0 is padding. Returns ``(kind, index, segment, valid)``, each ``[B, n]``."""
    return torch.full_like(ids, kind), ids, torch.full_like(ids, segment), ids != 0


def _assemble(pieces: list, blocks: dict, batch: int) -> Prompt:
    """Concatenate template pieces and id blocks, then move each row's valid positions to the front."""
    parts = []
    for piece in pieces:
        if isinstance(piece, str):
            parts.append(blocks[piece])
        else:
            ids = piece.expand(batch, -1)  # [B, n]
            parts.append(
                (
                    torch.full_like(ids, TOKEN),
                    ids,
                    torch.full_like(ids, OWN),
                    torch.ones_like(ids, dtype=torch.bool),
                )
            )
    kind, index, segment, valid = (torch.cat([p[j] for p in parts], dim=1) for j in range(4))  # [B, T_max]
    order = torch.sort((~valid).to(torch.int8), dim=1, stable=True).indices  # valid positions first, in order
    lengths = valid.sum(dim=1)  # [B]
    width = int(lengths.max())
    order = order[:, :width]  # [B, T]
    valid = torch.gather(valid, 1, order)
    return Prompt(
        kind=torch.gather(kind, 1, order) * valid,
        index=torch.gather(index, 1, order) * valid,
        segment=torch.gather(segment, 1, order) * valid,
        attention_mask=valid.long(),
        last=lengths - 1,
    )
