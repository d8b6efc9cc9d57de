"""What GALRec's passes hand each other: a sample's inputs, and the hidden states of user and item prompts."""

from dataclasses import dataclass

import torch

from recbole_galrec.layers.prompt import Prompt


@dataclass
class SampleInputs:
    """Everything a sample feeds the model besides the frozen tables: a function of the sample's own history
    and of other users' training interactions only (tests/test_galrec.py checks this for training samples)."""

    user_prompt: Prompt
    own_user: torch.Tensor  # [B, Du] the own user's external vectors, from the sample's history
    item_prompt: Prompt | None  # the target's prompt, without the sample's user (None when L2 and L3 are off)
    history: torch.Tensor  # [B, L] the sample's history items (0-padded, oldest first)


@dataclass
class UserStates:
    e0: torch.Tensor  # [B, H] state at the prompt's last position
    e2: torch.Tensor  # [B, H] mean state over the 2-hop users
    has_e2: torch.Tensor  # [B] the sample has at least one 2-hop user
    external: torch.Tensor  # [B, Du] the own user's external vectors, recomputed from the sample's history
    history: torch.Tensor  # [B, L] the sample's history items (0-padded, oldest first)


@dataclass
class ItemStates:
    e0: torch.Tensor  # [B, H]
    e1: torch.Tensor  # [B, H] mean state over the item's 1-hop users
    has_e1: torch.Tensor  # [B]
