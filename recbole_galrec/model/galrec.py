"""GALRec: Graph-Aware Learning for language-model-driven sequential recommendation.

A batch flows as follows (see the README, section "GALRec"):

1. Inputs (:meth:`GALRec.sample_inputs`), each a function of the sample's own history and of OTHER users'
   training interactions only: the user prompt holds the user's soft token, its history items (1-hop; soft
   token, plus text tokens in ``tokens`` mode) and its 2-hop users, chosen by overlap with this history
   (:class:`recbole_galrec.data.graph.TrainingGraph`); the item prompt (only built when lambda2 or lambda3 > 0)
   holds the target item and its 1-hop users without the sample's own user.
2. Soft tokens: external user vectors (SASRec, LightGCN; :mod:`recbole_galrec.external`) mapped by a small MLP
   into the backbone's hidden size; the prompt's own user takes them recomputed from the sample's history (never
   the row fitted on all of its training edges), other users those of their training histories. An item's soft
   token: an id embedding (``item_id_embedding``) plus a linear map of its frozen features (external vectors; text
   vector in ``embedding`` mode), linear so that L0 scores every item without building item vectors.
3. Backbone (:mod:`recbole_galrec.layers.backbone`): hidden states; E0 is the state at the prompt's last position,
   E1 / E2 the mean state over the 1-hop / 2-hop segment.
4. Scores (:meth:`GALRec.scores`): ``gate * head(E0_u) . item soft token`` (or the item's mapped text vector,
   ``score_residual_items: text``) plus, with ``external_user_skip``, an external term ``(P_u x_u) . (P_i x_i)``.
   ``score_start: sasrec``: that term starts as SASRec's dot product, the gate (or head) at zero: a residual.
   ``score_text_weight``: plus the text-profile term (:mod:`recbole_galrec.layers.text_profile`).
5. Losses (:mod:`recbole_galrec.layers.losses`): L0 cross-entropy of the next item over all items, and three InfoNCE
   terms, one projection head each: L1 (E0_u, E2_u or a same-target prefix's E0), L2 (E0_u, E0_i), L3 (E2_u, E1_i).
   Keys come from a momentum copy of every trainable parameter (MoCo), without gradients, queued as later
   negatives. The L2-norm term of the paper is the optimiser's ``weight_decay``.

``state_dict()`` holds only trainable state (adapters, maps, heads, queues, momentum copies), never the frozen
backbone, and ``load_state_dict`` accepts exactly that (:class:`~recbole_galrec.layers.parameters.TrainableStateDict`).
"""

from logging import getLogger

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

from recbole_galrec.errors import ConfigError
from recbole_galrec.layers.centre import RunningCentre
from recbole_galrec.layers.contrast import ContrastKeys, ContrastLog, ContrastTerm
from recbole_galrec.layers.losses import info_nce
from recbole_galrec.layers.moco import MomentumParameters
from recbole_galrec.layers.parameters import TrainableStateDict, count_parameters
from recbole_galrec.layers.prompt import HOP1, HOP2, Prompt, PromptBuilder, tokenize_item_texts
from recbole_galrec.layers.queue import KeyQueue
from recbole_galrec.layers.states import ItemStates, SampleInputs, UserStates
from recbole_galrec.layers.text_profile import TextProfileTerm
from recbole_galrec.layers.tokens import SoftTokenNorm, two_layer_mlp
from recbole_galrec.model.encoders import recent_items
from recbole_galrec.model.galrec_inputs import GALRecInputs
from recbole_galrec.settings import GALRecSettings

__all__ = ["GALRec", "GALRecInputs"]  # GALRecInputs: the type of what the model is built from


class GALRec(TrainableStateDict, SequentialRecommender):
    input_type = InputType.POINTWISE
    settings_class = GALRecSettings  # checked by build_config before any data is read
    # the parts calculate_loss returns, as the trainer names them
    loss_names = ("L0", *(term.name for term in ContrastTerm))
    frozen_modules = ("backbone",)  # the state dict holds no backbone buffers (only its trainable parameters)
    state_mismatch_hint = "was it saved with other llm_tuning or layer settings?"

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        logger = getLogger()

        inputs = getattr(dataset, "galrec_inputs", None)
        if inputs is None or not hasattr(dataset, "training_graph"):
            raise ConfigError(
                "GALRec is built on a GALRec dataset's training split with its inputs attached: build the dataset "
                "with recbole_galrec.data.create_dataset and run recbole_galrec.running.model_inputs.prepare "
                "before the model (recbole_galrec.running.steps does both)."
            )
        self.settings = s = config.settings
        self.USER_ID = config["USER_ID_FIELD"]
        self.n_users = dataset.user_num
        self.graph = dataset.training_graph  # per-sample 2-hop users, items' 1-hop users

        # backbone and prompts
        self.inputs = inputs  # kept for other_parameter (a checkpoint carries the frozen inputs)
        self.backbone = inputs.backbone
        hidden = self.backbone.hidden_size
        tokens_mode = s.item_text_mode == "tokens"
        text_ids, text_mask = tokenize_item_texts(self.backbone.tokenizer, dataset.item_texts, s.item_text_len)
        self.prompts = PromptBuilder(
            s.prompt_user_template,
            s.prompt_item_template,
            tokenize=lambda text: self.backbone.tokenizer(text, add_special_tokens=False)["input_ids"],
            item_text_ids=text_ids if tokens_mode else None,
            item_text_mask=text_mask if tokens_mode else None,
        )  # its token ids are buffers: they follow the model to its device

        # soft tokens: external embeddings (frozen) -> mapping layers
        external = inputs.external
        ext_user = torch.cat([e.user for e in external], dim=1) if external else torch.zeros(self.n_users, 0)
        self.register_buffer("external_user", ext_user.float(), persistent=False)  # [n_users, Du]
        # The prompt's own user takes each external model's vector recomputed from the sample's history.
        self.user_encoders = nn.ModuleList(e.encoder for e in external)
        self.user_map = two_layer_mlp(ext_user.shape[1], hidden) if ext_user.shape[1] else None
        self.user_id_embedding = None if self.user_map else nn.Embedding(self.n_users, hidden, padding_idx=0)
        # Without external vectors the own user has no history-computed vector: one shared learned token stands
        # for it (its own id embedding, trained on all of its samples, would know a training prefix's target).
        self.own_user_token = None if self.user_map else nn.Parameter(torch.zeros(hidden))
        features = [e.item.float() for e in external]  # [n_items, Di] each
        if inputs.item_text_vectors is not None:
            features.append(inputs.item_text_vectors.float())  # [n_items, H]
        item_features = torch.cat(features, dim=1) if features else torch.zeros(self.n_items, 0)
        self.register_buffer("item_features", item_features, persistent=False)  # [n_items, F], frozen
        self.item_map = nn.Linear(item_features.shape[1], hidden) if item_features.shape[1] else None
        self.item_id_embedding = nn.Embedding(self.n_items, hidden, padding_idx=0) if s.item_id_embedding else None
        word_norm = float(self.backbone.model.get_input_embeddings().weight.float().norm(dim=1).mean())
        self.user_token_norm = SoftTokenNorm(hidden, word_norm)
        self.item_token_norm = SoftTokenNorm(hidden, word_norm)

        # scoring: the language model's gated head plus (external_user_skip) an external term (P_u x_u) . (P_i x_i)
        self.user_head = nn.Linear(hidden, hidden)
        self.query_centre = RunningCentre(hidden) if s.score_residual_center else None  # no item prior in the term
        text_width = 0 if inputs.item_text_vectors is None else inputs.item_text_vectors.shape[1]
        self.text_map = nn.Linear(text_width, hidden) if s.score_residual_items == "text" else None  # text scores
        self.residual_gate = nn.Parameter(torch.ones(()))  # 0 at a SASRec start (see _init_weights)
        moved_by = hidden if s.score_text_query == "language_model" else 0  # E0_u moves the text term's query
        text = (inputs.item_text_vectors, s.score_text_weight, s.score_text_decay, moved_by)
        self.text_term = TextProfileTerm(*text) if s.score_text_weight else None
        self.score_user = self.score_item = None
        self._sasrec_columns = None  # (first user column, first item column, width) of SASRec's vectors
        if s.external_user_skip and ext_user.shape[1]:
            names = [e.name for e in external]
            width = ext_user.shape[1]
            if "SASRec" in names:
                index = names.index("SASRec")
                width = external[index].user.shape[1]
                user_col = sum(e.user.shape[1] for e in external[:index])
                item_col = sum(e.item.shape[1] for e in external[:index])
                self._sasrec_columns = (user_col, item_col, width)
            self.score_user = nn.Linear(ext_user.shape[1], width, bias=False)
            self.score_item = nn.Linear(item_features.shape[1], width, bias=False)

        # contrastive terms (indexed by ContrastTerm): one projection head each; keys from the momentum copy, queued
        self.contrast_heads = nn.ModuleList(nn.Linear(hidden, s.contrast_dim) for _ in ContrastTerm)
        self.queues = nn.ModuleList([KeyQueue(s.queue_size, s.contrast_dim) for _ in ContrastTerm])
        self.contrast_log = ContrastLog()

        self._init_weights()
        # MoCo's key encoder: momentum copies of every trainable parameter above (built last, after init)
        self.key_encoder = MomentumParameters(self, s.queue_momentum)
        logger.info(f"GALRec trainable parameters: {count_parameters(self).trainable:,}")

    def optimizer_groups(self, learning_rate: float) -> list[dict]:
        """Optimiser groups: the external term's maps at ``score_lr_scale`` times ``learning_rate``, the language
        model's gate at ``score_gate_lr_scale`` times it, the rest at it."""
        s = self.settings
        scoring = [p for m in (self.score_user, self.score_item) if m is not None for p in m.parameters()]
        chosen = {id(p) for p in scoring} | {id(self.residual_gate)}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in chosen]
        groups = [
            {"params": rest, "lr": learning_rate},
            {"params": [self.residual_gate], "lr": learning_rate * s.score_gate_lr_scale},
        ]
        if scoring:
            groups.append({"params": scoring, "lr": learning_rate * s.score_lr_scale})
        return groups

    def _init_weights(self):
        """Small normal init for the layers GALRec adds (the backbone keeps its own weights); with
        ``score_start: sasrec`` the external term starts as SASRec's dot product, the language model's at zero."""
        layers = (self.user_map, self.item_map, self.user_head, self.text_map, self.score_user, self.score_item)
        for module in (*layers, self.contrast_heads, self.item_id_embedding, self.user_id_embedding):
            if module is None:
                continue
            for sub in module.modules():
                if isinstance(sub, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(sub.weight, std=0.02)
                if isinstance(sub, nn.Linear) and sub.bias is not None:
                    nn.init.zeros_(sub.bias)
        if self.own_user_token is not None:
            nn.init.normal_(self.own_user_token, std=0.02)
        if self.settings.score_start == "sasrec":
            if self._sasrec_columns is None:
                raise ConfigError("score_start: sasrec needs SASRec's vectors, but no external SASRec was loaded.")
            user_col, item_col, width = self._sasrec_columns
            with torch.no_grad():
                eye = torch.eye(width)
                self.score_user.weight.zero_()[:, user_col : user_col + width] = eye
                self.score_item.weight.zero_()[:, item_col : item_col + width] = eye
                if self.settings.score_residual_start == "head":  # gate 1, head 0: L0 reaches the head at once
                    self.user_head.weight.zero_()
                    self.user_head.bias.zero_()
                else:  # head random, gate 0: the head learns from L0 only as far as the gate opens
                    self.residual_gate.zero_()

    # ----------------------------------------------------------------- soft tokens and prompts
    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """Soft tokens ``[..., H]`` of item ids ``[...]``: id embedding (``item_id_embedding``) + features' map."""
        vectors = self.item_id_embedding(items) if self.item_id_embedding is not None else 0.0
        if self.item_map is not None:
            vectors = vectors + self.item_map(self.item_features[items])
        return vectors

    def item_scores(self, query: torch.Tensor) -> torch.Tensor:
        """``query . item_vectors(i)`` (``score_residual_items: text``: ``query . text_map(text_i)``) for every item i:
        ``[B, H]`` -> ``[B, n_items]``, without building all item vectors (the maps are linear)."""
        if self.text_map is not None:  # score_residual_items: text (the text vectors are the last feature columns)
            text = self.item_features[:, -self.text_map.in_features :]  # [n_items, T]
            return (query @ self.text_map.weight) @ text.T + (query @ self.text_map.bias)[:, None]
        scores = 0.0
        if self.item_id_embedding is not None:
            scores = query @ self.item_id_embedding.weight.T  # [B, n_items]
        if self.item_map is not None:
            projected = query @ self.item_map.weight  # [B, F]
            scores = scores + projected @ self.item_features.T + (query @ self.item_map.bias)[:, None]
        return scores

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """Soft tokens ``[..., H]`` of OTHER users' ids ``[...]``: the external vectors of their training histories."""
        if self.user_map is not None:
            return self.user_map(self.external_user[users])
        return self.user_id_embedding(users)

    def own_user_features(self, item_seq, item_seq_len) -> torch.Tensor:
        """External vectors of a prompt's own user ``[B, Du]``, each recomputed from the sample's history
        ``item_seq`` ``[B, L]`` by its model's frozen encoder (never the row fitted on the user's training
        edges, which for a training prefix would know the target)."""
        if not len(self.user_encoders):
            return item_seq.new_zeros(item_seq.shape[0], 0, dtype=torch.float32)
        return torch.cat([encoder(item_seq, item_seq_len) for encoder in self.user_encoders], dim=1)

    def own_user_vectors(self, users, features) -> torch.Tensor:
        """Soft token ``[B, H]`` of a prompt's own user from :meth:`own_user_features` (else one shared token)."""
        if self.user_map is not None:
            return self.user_map(features)
        return self.own_user_token.expand(users.shape[0], -1)

    def score_terms(self, user: UserStates) -> dict[str, torch.Tensor]:
        """The terms of :meth:`scores` in use, each ``[B, n_items]``: ``language_model``, ``head(E0_u) .
        item_vectors(i)`` before its gate (``score_residual``); ``external``, ``(P_u x_u) . (P_i x_i)``
        (``external_user_skip``); ``text``, the text-profile term (``score_text_weight``)."""
        terms = {}
        if self.settings.score_residual:
            query = self.user_head(user.e0)  # [B, H]
            query = self.query_centre(query) if self.query_centre is not None else query
            terms["language_model"] = self.item_scores(query)  # [B, n_items]
        if self.score_user is not None:
            query = self.score_user(user.external) @ self.score_item.weight  # [B, F]
            terms["external"] = query @ self.item_features.T
        if self.text_term is not None:  # in units of the external term's spread over each user's items
            scale = terms["external"][:, 1:].std(1, keepdim=True).detach() if "external" in terms else 1.0
            terms["text"] = scale * self.text_term(user.history, user.e0)  # [B, n_items]
        return terms

    def scores(self, user: UserStates) -> torch.Tensor:
        """Scores of every item ``[B, n_items]``: ``gate *`` the language model's term plus the other terms."""
        terms = self.score_terms(user)
        scores = self.residual_gate * terms.pop("language_model") if "language_model" in terms else 0.0
        return sum(terms.values(), scores)

    def _encode(self, prompt: Prompt, own_user: torch.Tensor | None = None) -> torch.Tensor:
        """Embed each prompt position by its kind and run the backbone: ``[B, T, H]`` hidden states.
        ``own_user`` ``[B, H]``, when given, is the soft token of the prompt's own user."""
        embeds = prompt.embed(
            self.backbone.hidden_size,
            tokens=lambda ids: self.backbone.input_embeddings(ids).float(),
            users=lambda ids: self.user_token_norm(self.user_vectors(ids)),
            items=lambda ids: self.item_token_norm(self.item_vectors(ids)),
            own_user=None if own_user is None else self.user_token_norm(own_user),
        )  # [B, T, H]
        groups = self.settings.llm_length_groups
        states = self.backbone(embeds.to(self.backbone.dtype), prompt.attention_mask, groups=groups)
        return states.float()  # [B, T, H]

    # ----------------------------------------------------------------- inputs and forward passes
    def sample_inputs(self, users, item_seq, item_seq_len, targets=None) -> SampleInputs:
        """The prompts and own-user vectors of samples: users ``[B]``, histories ``[B, L]``, and for training
        (L2, L3) the target items ``[B]``."""
        history = recent_items(item_seq, item_seq_len, self.settings.prompt_history_len)  # [B, L']
        neighbours = self.graph.two_hop_users(users, item_seq)  # [B, K], chosen by this history
        user_prompt = self.prompts.user_prompts(users, history, neighbours)
        item_prompt = None
        if targets is not None and self.settings.uses_item_prompt:
            item_prompt = self.prompts.item_prompts(targets, self.graph.item_users_without(targets, users))
        return SampleInputs(user_prompt, self.own_user_features(item_seq, item_seq_len), item_prompt, item_seq)

    def encode_user(self, users, inputs: SampleInputs) -> UserStates:
        """User prompts -> E0_u and E2_u (zero, without running the backbone, when nothing uses them)."""
        prompt = inputs.user_prompt
        if not self.settings.uses_backbone:
            zeros = inputs.own_user.new_zeros(users.shape[0], self.backbone.hidden_size)
            return UserStates(
                zeros, zeros, users.new_zeros(users.shape, dtype=torch.bool), inputs.own_user, inputs.history
            )
        states = self._encode(prompt, self.own_user_vectors(users, inputs.own_user))  # [B, T, H]
        e2, has_e2 = prompt.segment_mean(states, HOP2)
        return UserStates(prompt.last_states(states), e2, has_e2, inputs.own_user, inputs.history)

    def encode_items(self, prompt: Prompt) -> ItemStates:
        """Item prompts -> E0_i and E1_i."""
        states = self._encode(prompt)  # [B, T, H]
        e1, has_e1 = prompt.segment_mean(states, HOP1)
        return ItemStates(prompt.last_states(states), e1, has_e1)

    def forward(self, users, item_seq, item_seq_len) -> UserStates:
        """User prompts of histories ``[B, L]`` -> E0_u and E2_u."""
        return self.encode_user(users, self.sample_inputs(users, item_seq, item_seq_len))

    # ----------------------------------------------------------------- losses
    def contrast_keys(self, users, inputs: SampleInputs, targets) -> ContrastKeys:
        """Keys of L1 (E2_u or a same-target prefix's E0), L2 (E0_i), L3 (E1_i): the momentum copy's, no gradients."""
        s, heads = self.settings, self.contrast_heads
        with self.key_encoder.swapped(self):
            user = has_user = None
            if s.lambda1 > 0 and s.contrast_l1_positive == "same_target":
                other = self.graph.same_target_prefixes(targets, users, self.max_seq_length)
                states = self.encode_user(other.users, self.sample_inputs(other.users, other.seq, other.seq_len))
                user, has_user = heads[ContrastTerm.L1](states.e0), other.found
            elif s.lambda1 > 0:
                states = self.encode_user(users, inputs)
                user, has_user = heads[ContrastTerm.L1](states.e2), states.has_e2
            item = self.encode_items(inputs.item_prompt) if inputs.item_prompt is not None else None
            rows = inputs.own_user.shape[0]
            empty = inputs.own_user.new_zeros(rows, s.contrast_dim)
            no_rows = torch.zeros(rows, dtype=torch.bool, device=empty.device)
            return ContrastKeys(
                user=user if user is not None else empty,
                item_e0=heads[ContrastTerm.L2](item.e0) if item is not None else empty,
                item_e1=heads[ContrastTerm.L3](item.e1) if item is not None else empty,
                has_user=has_user if has_user is not None else no_rows,
                has_item_e1=item.has_e1 if item is not None else no_rows,
            )

    def _contrast(self, term: ContrastTerm, query, key, valid) -> torch.Tensor:
        """InfoNCE of ``term`` over the rows where both sides exist (``key``: projected by the momentum copy's head)."""
        if not bool(valid.any()):
            return query.new_zeros(())
        key = key[valid]  # [B', D]
        queue = self.queues[term]
        result = info_nce(
            self.contrast_heads[term](query[valid]), key, queue.negatives().clone(), tau=self.settings.contrast_tau
        )
        if self.training:
            queue.enqueue(key)
            self.contrast_log.add(term, result, key.shape[0])
        return result.loss

    def calculate_loss(self, interaction):
        """``(L0, lambda1 * L1, lambda2 * L2, lambda3 * L3)``; RecBole sums them and logs each part."""
        s = self.settings
        users = interaction[self.USER_ID]  # [B]
        targets = interaction[self.POS_ITEM_ID]  # [B]
        inputs = self.sample_inputs(users, interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], targets)
        contrastive = s.lambda1 > 0 or s.uses_item_prompt
        keys = None
        if contrastive:
            self.key_encoder.update(self)
            keys = self.contrast_keys(users, inputs, targets)
        user = self.encode_user(users, inputs)
        scores = self.scores(user)
        if s.score_logit_adjustment:  # L0 alone sees the log counts: the scores learn less of the items' popularity
            scores = scores + s.score_logit_adjustment * self.graph.item_counts_without(users).log1p()
        l0 = torch.nn.functional.cross_entropy(scores, targets)
        l1 = l2 = l3 = l0.new_zeros(())
        if s.lambda1 > 0:
            l1 = self._contrast(ContrastTerm.L1, user.e0, keys.user, keys.has_user)
        if s.lambda2 > 0:
            l2 = self._contrast(ContrastTerm.L2, user.e0, keys.item_e0, torch.ones_like(targets, dtype=torch.bool))
        if s.lambda3 > 0:
            l3 = self._contrast(ContrastTerm.L3, user.e2, keys.item_e1, user.has_e2 & keys.has_item_e1)
        return l0, s.lambda1 * l1, s.lambda2 * l2, s.lambda3 * l3

    # ----------------------------------------------------------------- prediction
    def _user_scores(self, interaction) -> torch.Tensor:
        """Scores of every item for each sequence, ``[B, n_items]``, in chunks of ``llm_batch_size`` prompts.

        Sequences are chunked in order of history length, so that a chunk's prompts have about the same length
        and little of the backbone's work is padding; rows come back in the input order."""
        users = interaction[self.USER_ID]
        seq, seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        order = torch.argsort(seq_len, stable=True)  # [B]
        scores = torch.empty(users.shape[0], self.n_items, device=seq.device)  # [B, n_items]
        for rows in order.split(self.settings.llm_batch_size):
            scores[rows] = self.scores(self.forward(users[rows], seq[rows], seq_len[rows]))  # [b, n_items]
        return scores

    def predict(self, interaction):
        """Score of ``interaction[ITEM_ID]`` for each sequence: ``[B]``."""
        scores = self._user_scores(interaction)  # [B, n_items]
        return scores.gather(1, interaction[self.ITEM_ID][:, None]).squeeze(1)

    def full_sort_predict(self, interaction):
        """Scores of all items for each sequence: ``[B, n_items]`` (RecBole's full ranking)."""
        return self._user_scores(interaction)

    # ----------------------------------------------------------------- checkpoints
    def other_parameter(self) -> dict:
        """The frozen inputs the model was built with and the backbone's digest (:meth:`GALRecInputs.to_checkpoint`):
        RecBole stores this beside the state dict, so a checkpoint is self-contained."""
        return self.inputs.to_checkpoint()

    def load_other_parameter(self, para) -> None:
        """Check that a checkpoint's frozen inputs are this model's: the same backbone and tables' shapes."""
        if para:
            self.inputs.check_checkpoint(para, self.settings)
