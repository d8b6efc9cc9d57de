"""What GALRec is built from besides its config and data: its frozen inputs, and what a checkpoint keeps of them."""

from dataclasses import dataclass

import torch

from recbole_galrec.errors import ConfigError
from recbole_galrec.layers.backbone import Backbone
from recbole_galrec.model.encoders import ExternalEmbeddings


@dataclass
class GALRecInputs:
    """What GALRec takes besides its config and data, prepared by the run before the model is built
    (:mod:`recbole_galrec.running.model_inputs`) and attached to the training split as ``galrec_inputs``."""

    backbone: Backbone  # the language model, loaded with the task tokens registered
    external: list[ExternalEmbeddings]  # each external model's frozen tables and own-user encoder
    item_text_vectors: torch.Tensor | None  # [n_items, H] each item's text encoded once (embedding mode)

    def to_checkpoint(self) -> dict:
        """The frozen inputs (external tables and encoders, item text vectors) and the backbone's digest, as a
        checkpoint stores them (:mod:`recbole_galrec.recommend` rebuilds the model from them without the
        external cache)."""
        return {
            "external": [e.to_dict() for e in self.external],
            "item_text_vectors": self.item_text_vectors,
            "backbone_digest": self.backbone.digest(),
        }

    def check_checkpoint(self, para: dict, settings) -> None:
        """Raise ConfigError unless a checkpoint's frozen inputs (:meth:`to_checkpoint`) are these: the same
        backbone and the same external tables' shapes. ``settings`` (GALRec's) name the keys to fix."""
        if para["backbone_digest"] != self.backbone.digest():
            raise ConfigError(
                "the checkpoint was trained with another language model than llm_path "
                f"'{settings.llm_path or 'the default MiniLM'}' (backbone digest {para['backbone_digest']}, "
                f"this one {self.backbone.digest()}, llm_num_layers {settings.llm_num_layers}); "
                "load it with the llm_path and layers it was trained with."
            )
        shapes = [(e["name"], tuple(e["user"].shape), tuple(e["item"].shape)) for e in para["external"]]
        own = [(e.name, tuple(e.user.shape), tuple(e.item.shape)) for e in self.external]
        if shapes != own:
            raise ConfigError(f"the checkpoint's external tables {shapes} are not this model's {own}.")
