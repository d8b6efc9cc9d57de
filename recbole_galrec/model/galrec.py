"""GALRec: Graph-Aware Learning for language-model-driven sequential recommendation.

A batch flows as follows (see the README, section "GALRec"):

1. Prompts (:mod:`recbole_galrec.prompt`): the user prompt holds the user's soft token, its history items
   (1-hop; soft token, plus text tokens in ``tokens`` mode) and its 2-hop users; the item prompt (only built
   when lambda2 or lambda3 > 0) holds the target item and its 1-hop users.
2. Soft tokens: external user vectors (SASRec, LightGCN; :mod:`recbole_galrec.external`) mapped by a small
   MLP into the backbone's hidden size. The prompt's own user takes SASRec's vector of the prompt's own history,
   recomputed by SASRec's frozen encoder (a training prefix, the validation history and the test history each
   get theirs); other users (2-hop, an item's users) take the vectors of their training histories. An item's
   soft token is a learnable id embedding plus one linear map of its frozen features: its external vectors
   and, in ``embedding`` mode, its text vector encoded once by the backbone. The item map is linear on purpose:
   L0 scores every item at every step, and with a linear map ``q . (W x_i + b)`` is computed as
   ``(q W) . x_i + q . b``, never materialising all item vectors (``B * F * n_items`` instead of
   ``n_items * F * H`` multiply-adds per step).
3. Backbone (:mod:`recbole_galrec.backbone`): hidden states; E0 is the state at the prompt's last position,
   E1 / E2 the mean state over the 1-hop / 2-hop segment.
4. Losses (:mod:`recbole_galrec.losses`): L0 cross-entropy of the next item over all items (scores:
   ``query . soft token of the item``, the query being ``head(E0_u)``, plus with ``external_user_skip`` a
   linear map of the own user's external vectors), and three InfoNCE terms with a MoCo-style queue each
   (:mod:`recbole_galrec.queue`): L1 (E0_u, E2_u), L2 (E0_u, E0_i), L3 (E2_u, E1_i). The L2-norm term of the
   paper is the optimiser's ``weight_decay``.

``state_dict()`` holds only trainable state (adapters, mapping layers, heads, queues), never the frozen
backbone, and ``load_state_dict`` accepts exactly that.
"""

import copy
from dataclasses import dataclass
from logging import getLogger

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

from recbole_galrec.backbone import load_backbone
from recbole_galrec.errors import ConfigError
from recbole_galrec.external import load_external_embeddings, recent_items
from recbole_galrec.losses import info_nce
from recbole_galrec.prompt import HOP1, HOP2, ITEM, OWN, TOKEN, USER, Prompt, PromptBuilder, task_tokens
from recbole_galrec.queue import KeyQueue
from recbole_galrec.settings import GALRecSettings

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class UserStates:
    e0: torch.Tensor  # [B, H] state at the prompt's last position
    e2: torch.Tensor  # [B, H] mean state over the 2-hop users
    has_e2: torch.Tensor  # [B] the user has at least one 2-hop user
    external: torch.Tensor  # [B, Du] the own user's external vectors (SASRec's from the prompt's history)


@dataclass
class ItemStates:
    e0: torch.Tensor  # [B, H]
    e1: torch.Tensor  # [B, H] mean state over the item's 1-hop users
    has_e1: torch.Tensor  # [B]


def _mlp(d_in: int, d_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out))


class GALRec(SequentialRecommender):
    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        logger = getLogger()

        # load dataset info
        if not hasattr(dataset, "hop_tables"):
            raise ConfigError(
                "GALRec needs its dataset hook (GALRecDataset); build the dataset with "
                "recbole_galrec.data.create_dataset."
            )
        self.settings = s = GALRecSettings.from_config(config)
        self.USER_ID = config["USER_ID_FIELD"]
        self.n_users = dataset.user_num
        self.register_buffer("user_users", dataset.hop_tables.user_users, persistent=False)  # [n_users, K]
        self.register_buffer("item_users", dataset.hop_tables.item_users, persistent=False)  # [n_items, K]

        # backbone and prompts
        self.backbone = load_backbone(
            s.llm_path,
            tuning=s.llm_tuning,
            lora_r=s.llm_lora_r,
            lora_alpha=s.llm_lora_alpha,
            lora_dropout=s.llm_lora_dropout,
            lora_target_modules=s.llm_lora_target_modules,
            num_layers=s.llm_num_layers,
            dtype=s.llm_dtype,
            added_tokens=task_tokens(s.prompt_user_template, s.prompt_item_template),
        )
        hidden = self.backbone.hidden_size
        text_ids, text_mask = self._tokenize_item_texts(dataset.item_texts)
        self.prompts = PromptBuilder(
            s.prompt_user_template,
            s.prompt_item_template,
            tokenize=lambda text: self.backbone.tokenizer(text, add_special_tokens=False)["input_ids"],
            item_text_ids=text_ids if s.item_text_mode == "tokens" else None,
            item_text_mask=text_mask if s.item_text_mode == "tokens" else None,
        ).to(config["device"])  # prompts are built where the batch is; the model follows to config["device"]

        # soft tokens: external embeddings (frozen) -> mapping layers
        external = load_external_embeddings(config, dataset)
        logger.info(
            f"external embeddings: {[(e.name, tuple(e.user.shape[1:]), tuple(e.item.shape[1:])) for e in external]}"
        )
        ext_user = torch.cat([e.user for e in external], dim=1) if external else torch.zeros(self.n_users, 0)
        self.register_buffer("external_user", ext_user.float(), persistent=False)  # [n_users, Du]
        # Sequential external models give the prompt's own user the vector of the prompt's history, computed at
        # run time by their frozen encoder; (first column, encoder) per such model.
        self.user_encoders = nn.ModuleList(e.encoder for e in external if e.encoder is not None)
        columns = torch.cumsum(torch.tensor([0] + [e.user.shape[1] for e in external]), 0).tolist()
        self._encoder_columns = [columns[i] for i, e in enumerate(external) if e.encoder is not None]
        self.user_map = _mlp(ext_user.shape[1], hidden) if ext_user.shape[1] else None
        self.user_id_embedding = None if self.user_map else nn.Embedding(self.n_users, hidden, padding_idx=0)
        features = [e.item.float() for e in external]  # [n_items, Di] each
        if s.item_text_mode == "embedding":
            device = config["device"]
            self.backbone.to(device)
            text = self.backbone.encode_text(text_ids.to(device), text_mask.to(device), s.llm_batch_size)
            features.append(text.float().cpu())  # [n_items, H]
        item_features = torch.cat(features, dim=1) if features else torch.zeros(self.n_items, 0)
        self.register_buffer("item_features", item_features, persistent=False)  # [n_items, F], frozen
        self.item_map = nn.Linear(item_features.shape[1], hidden) if item_features.shape[1] else None
        self.item_id_embedding = nn.Embedding(self.n_items, hidden, padding_idx=0)

        # heads, queues and loss
        self.user_head = nn.Linear(hidden, hidden)
        self.user_skip = nn.Linear(ext_user.shape[1], hidden) if s.external_user_skip and ext_user.shape[1] else None
        self.contrast_head = nn.Linear(hidden, s.contrast_dim)
        self.key_head = None
        if s.queue_momentum > 0:  # MoCo: keys from a slowly moving copy of the head
            self.key_head = copy.deepcopy(self.contrast_head).requires_grad_(False)
        self.queues = nn.ModuleList([KeyQueue(s.queue_size, s.contrast_dim) for _ in range(3)])
        self.loss_fct = nn.CrossEntropyLoss()

        self._init_weights()
        logger.info(
            f"GALRec trainable parameters: {sum(p.numel() for p in self.parameters() if p.requires_grad):,}"
        )

    def _init_weights(self):
        """Small normal init for the layers GALRec adds; the backbone keeps its own weights."""
        for module in (
            self.user_map,
            self.item_map,
            self.user_head,
            self.user_skip,
            self.contrast_head,
            self.item_id_embedding,
            self.user_id_embedding,
        ):
            if module is None:
                continue
            for sub in module.modules():
                if isinstance(sub, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(sub.weight, std=0.02)
                if isinstance(sub, nn.Linear) and sub.bias is not None:
                    nn.init.zeros_(sub.bias)
        if self.key_head is not None:
            self.key_head.load_state_dict(self.contrast_head.state_dict())

    def _tokenize_item_texts(self, texts: list[str]):
        """Item texts -> ``[n_items, item_text_len]`` token ids and mask, tokenised once."""
        length = max(self.settings.item_text_len, 1)
        encoded = self.backbone.tokenizer(
            texts,
            add_special_tokens=False,
            truncation=True,
            max_length=length,
            padding="max_length",
            return_tensors="pt",
        )
        return encoded["input_ids"], encoded["attention_mask"]

    # ----------------------------------------------------------------- soft tokens and prompts
    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """Soft tokens of item ids of any shape ``[...]`` -> ``[..., H]``: id embedding + map(features)."""
        vectors = self.item_id_embedding(items)
        if self.item_map is not None:
            vectors = vectors + self.item_map(self.item_features[items])
        return vectors

    def item_scores(self, query: torch.Tensor) -> torch.Tensor:
        """``query . item_vectors(i)`` for every item i: ``[B, H]`` -> ``[B, n_items]``, without building
        all item vectors (the map is linear)."""
        scores = query @ self.item_id_embedding.weight.T  # [B, n_items]
        if self.item_map is not None:
            projected = query @ self.item_map.weight  # [B, F]
            scores = scores + projected @ self.item_features.T + (query @ self.item_map.bias)[:, None]
        return scores

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """Soft tokens of user ids of any shape ``[...]`` -> ``[..., H]`` (external vectors of the training
        history)."""
        if self.user_map is not None:
            return self.user_map(self.external_user[users])
        return self.user_id_embedding(users)

    def own_user_features(self, users, item_seq, item_seq_len) -> torch.Tensor:
        """External vectors of a prompt's own user ``[B, Du]``: each sequential external model's part is
        recomputed from the prompt's history ``item_seq`` ``[B, L]``, the others are the users' rows."""
        features = self.external_user[users].clone()  # [B, Du]
        for column, encoder in zip(self._encoder_columns, self.user_encoders, strict=True):
            vector = encoder(item_seq, item_seq_len)  # [B, d]
            features[:, column : column + vector.shape[1]] = vector
        return features

    def own_user_vectors(self, users, features) -> torch.Tensor:
        """Soft token of a prompt's own user ``[B, H]`` from :meth:`own_user_features`."""
        return self.user_map(features) if self.user_map is not None else self.user_id_embedding(users)

    def query(self, user: "UserStates") -> torch.Tensor:
        """The scoring query ``[B, H]``: a head on E0_u, plus (``external_user_skip``) a linear map of the own
        user's external vectors, a skip connection around the backbone."""
        query = self.user_head(user.e0)
        if self.user_skip is not None:
            query = query + self.user_skip(user.external)
        return query

    def _encode(self, prompt: Prompt, own_user: torch.Tensor | None = None) -> torch.Tensor:
        """Embed each prompt position by its kind and run the backbone: ``[B, T, H]`` hidden states.
        ``own_user`` ``[B, H]``, when given, is the soft token of the prompt's own user."""
        kind, index = prompt.kind, prompt.index  # [B, T]
        tokens = self.backbone.input_embeddings(torch.where(kind == TOKEN, index, 0))  # [B, T, H]
        users = self.user_vectors(torch.where(kind == USER, index, 0))  # [B, T, H]
        if own_user is not None:
            is_own = ((kind == USER) & (prompt.segment == OWN))[..., None]  # [B, T, 1]
            users = torch.where(is_own, own_user[:, None, :], users)
        items = self.item_vectors(torch.where(kind == ITEM, index, 0))  # [B, T, H]
        embeds = torch.where(
            (kind == TOKEN)[..., None],
            tokens.to(items.dtype),
            torch.where((kind == USER)[..., None], users, items),
        )  # [B, T, H]
        dtype = _DTYPES[self.settings.llm_dtype]
        states = self.backbone(embeds.to(dtype), prompt.attention_mask)  # [B, T, H]
        return states.float()

    @staticmethod
    def _pool(states: torch.Tensor, prompt: Prompt, segment: int):
        """Mean state over a segment's positions ``[B, H]`` and whether the segment is non-empty ``[B]``."""
        mask = ((prompt.segment == segment) & prompt.attention_mask.bool()).float()  # [B, T]
        count = mask.sum(dim=1)  # [B]
        pooled = (states * mask[..., None]).sum(dim=1) / count.clamp(min=1)[:, None]  # [B, H]
        return pooled, count > 0

    @staticmethod
    def _last_state(states: torch.Tensor, prompt: Prompt) -> torch.Tensor:
        return states[torch.arange(states.shape[0], device=states.device), prompt.last]  # [B, H]

    # ----------------------------------------------------------------- forward passes
    def forward(self, users, item_seq, item_seq_len) -> UserStates:
        """User prompts -> E0_u and E2_u."""
        history = recent_items(item_seq, item_seq_len, self.settings.prompt_history_len)  # [B, L]
        prompt = self.prompts.user_prompts(users, history, self.user_users[users])
        features = self.own_user_features(users, item_seq, item_seq_len)  # [B, Du]
        states = self._encode(prompt, self.own_user_vectors(users, features))  # [B, T, H]
        e2, has_e2 = self._pool(states, prompt, HOP2)
        return UserStates(self._last_state(states, prompt), e2, has_e2, features)

    def encode_items(self, items) -> ItemStates:
        """Item prompts -> E0_i and E1_i."""
        prompt = self.prompts.item_prompts(items, self.item_users[items])
        states = self._encode(prompt)  # [B, T, H]
        e1, has_e1 = self._pool(states, prompt, HOP1)
        return ItemStates(self._last_state(states, prompt), e1, has_e1)

    # ----------------------------------------------------------------- losses
    def _contrast(self, term: int, query, key, valid) -> torch.Tensor:
        """InfoNCE of term ``term`` (0: L1, 1: L2, 2: L3) over the rows where both sides exist."""
        if not bool(valid.any()):
            return query.new_zeros(())
        query = self.contrast_head(query[valid])  # [B', D]
        key_head = self.key_head if self.key_head is not None else self.contrast_head
        key = key_head(key[valid])  # [B', D]
        if self.key_head is not None:
            key = key.detach()
        queue = self.queues[term]
        loss = info_nce(query, key, queue.negatives().clone(), tau=self.settings.contrast_tau)
        if self.training:
            queue.enqueue(key)
        return loss

    @torch.no_grad()
    def _momentum_update(self):
        m = self.settings.queue_momentum
        for k, q in zip(self.key_head.parameters(), self.contrast_head.parameters(), strict=True):
            k.mul_(m).add_(q.detach(), alpha=1 - m)

    def calculate_loss(self, interaction):
        """``(L0, lambda1 * L1, lambda2 * L2, lambda3 * L3)``; RecBole sums them and logs each part."""
        s = self.settings
        users = interaction[self.USER_ID]  # [B]
        targets = interaction[self.POS_ITEM_ID]  # [B]
        if self.key_head is not None:
            self._momentum_update()
        user = self.forward(users, interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        logits = self.item_scores(self.query(user))  # [B, n_items]
        l0 = self.loss_fct(logits, targets)
        zero = l0.new_zeros(())
        l1 = self._contrast(0, user.e0, user.e2, user.has_e2) if s.lambda1 > 0 else zero
        l2 = l3 = zero
        if s.uses_item_prompt:
            item = self.encode_items(targets)
            all_rows = torch.ones_like(targets, dtype=torch.bool)
            l2 = self._contrast(1, user.e0, item.e0, all_rows) if s.lambda2 > 0 else zero
            l3 = self._contrast(2, user.e2, item.e1, user.has_e2 & item.has_e1) if s.lambda3 > 0 else zero
        return l0, s.lambda1 * l1, s.lambda2 * l2, s.lambda3 * l3

    # ----------------------------------------------------------------- prediction
    def _user_scores(self, interaction) -> torch.Tensor:
        """Scores of every item for each sequence, ``[B, n_items]``, in chunks of ``llm_batch_size`` prompts."""
        users = interaction[self.USER_ID]
        seq, seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        step = self.settings.llm_batch_size
        scores = []
        for start in range(0, users.shape[0], step):
            part = slice(start, start + step)
            user = self.forward(users[part], seq[part], seq_len[part])
            scores.append(self.item_scores(self.query(user)))  # [b, n_items]
        return torch.cat(scores, dim=0)

    def predict(self, interaction):
        """Score of ``interaction[ITEM_ID]`` for each sequence: ``[B]``."""
        scores = self._user_scores(interaction)  # [B, n_items]
        return scores.gather(1, interaction[self.ITEM_ID][:, None]).squeeze(1)

    def full_sort_predict(self, interaction):
        """Scores of all items for each sequence: ``[B, n_items]`` (RecBole's full ranking)."""
        return self._user_scores(interaction)

    # ----------------------------------------------------------------- checkpoints
    def _trainable_keys(self) -> set[str]:
        """Names of the trainable parameters and of the persistent buffers outside the backbone."""
        keys = {n for n, p in self.named_parameters() if p.requires_grad}
        if self.key_head is not None:
            keys |= {f"key_head.{n}" for n, _ in self.key_head.named_parameters()}
        persistent = super().state_dict(keep_vars=True)
        keys |= {n for n, _ in self.named_buffers() if n in persistent and not n.startswith("backbone.")}
        return keys

    def state_dict(self, *args, **kwargs):
        """Only trainable state: adapters, mapping layers, heads, queues (the frozen backbone is not saved)."""
        prefix = kwargs.get("prefix", args[1] if len(args) > 1 else "")
        full = super().state_dict(*args, **kwargs)
        keep = {prefix + k for k in self._trainable_keys()}
        for key in [k for k in full if k not in keep]:
            del full[key]
        return full

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load what :meth:`state_dict` saved; with ``strict``, every trainable key must be present."""
        expected = self._trainable_keys()
        if strict:
            missing = sorted(expected - set(state_dict))
            unexpected = sorted(set(state_dict) - set(super().state_dict()))
            if missing or unexpected:
                raise RuntimeError(
                    f"GALRec checkpoint does not match the model: missing {missing[:5]}, "
                    f"unexpected {unexpected[:5]} (was it saved with other llm_tuning or layer settings?)"
                )
        return super().load_state_dict(state_dict, strict=False, assign=assign)
