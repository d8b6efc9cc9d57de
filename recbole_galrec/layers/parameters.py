"""A module's parameters: how many train (:func:`count_parameters`), and a state dict of only the trainable state
(:class:`TrainableStateDict`), for models around a large frozen language model."""

from typing import NamedTuple

from torch import nn


class ParameterCount(NamedTuple):
    trainable: int  # elements of the parameters with requires_grad
    total: int  # elements of all parameters


def count_parameters(module: nn.Module) -> ParameterCount:
    """Trainable and total parameter elements of ``module`` (a parameter shared by two submodules counts once)."""
    trainable = total = 0
    for param in module.parameters():
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return ParameterCount(trainable, total)


class TrainableStateDict:
    """Mixin for an ``nn.Module`` (listed before it among the bases) whose ``state_dict`` holds only what
    training changes: the parameters with ``requires_grad`` and the persistent buffers outside the submodules
    named in :attr:`frozen_modules`. A frozen pretrained model is then never saved, and ``load_state_dict``
    accepts exactly such a state dict."""

    frozen_modules: tuple[str, ...] = ()  # names of submodules whose buffers are not saved
    # what to suspect when a state dict does not match, completing the error message of load_state_dict
    state_mismatch_hint = "was it saved from a model built with other settings?"

    def _trainable_keys(self) -> set[str]:
        """Names of the trainable parameters and of the persistent buffers outside :attr:`frozen_modules`."""
        keys = {n for n, p in self.named_parameters() if p.requires_grad}
        persistent = super().state_dict(keep_vars=True)
        frozen = tuple(f"{name}." for name in self.frozen_modules)
        keys |= {n for n, _ in self.named_buffers() if n in persistent and not n.startswith(frozen)}
        return keys

    def state_dict(self, *args, **kwargs):
        """Only trainable state (see the class)."""
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
                    f"{type(self).__name__} checkpoint does not match the model: missing {missing[:5]}, "
                    f"unexpected {unexpected[:5]} ({self.state_mismatch_hint})"
                )
        return super().load_state_dict(state_dict, strict=False, assign=assign)
