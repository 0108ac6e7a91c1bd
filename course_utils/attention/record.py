"""One way to look at attention: ``with record_attention(model) as maps: model(x)``.

Models keep no attention maps of their own (training never pays for them). Inside the block,
every attention module of ``model`` reports the weights it computed to ``maps``, by a forward
hook; multi-head attention is asked to compute its weights even where its caller passed
``need_weights=False`` (the fast path). After the block the model is as it was.

Names say where a map comes from: the module's path with its attribute name shortened to the
kind, ``self`` or ``cross`` (``"encoder.0.self"``, ``"decoder.1.cross"``, ``"blocks.0.self"``);
an attention module that is neither keeps its attribute name (``"decoder.attention"`` in the
RNN seq2seq). Layers and heads are numbered from 0 everywhere in the course: ``maps.layers(
"cross")[1][:, 2]`` is decoder layer 1, head 2.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

from .multihead import MultiHeadAttention
from .scores import AdditiveAttention, LuongAttention

ATTENTION_MODULES = (MultiHeadAttention, AdditiveAttention, LuongAttention)


def map_name(path: str) -> str:
    """``"decoder.1.cross_attn" -> "decoder.1.cross"``; ``"" -> "attention"`` (the model itself)."""
    parts = path.split(".") if path else ["attention"]
    attr = parts[-1]
    kind = "cross" if "cross" in attr else "self" if "self" in attr else attr
    return ".".join([*parts[:-1], kind])


class AttentionMaps(Mapping):
    """The maps recorded in one ``with record_attention(...)`` block.

    ``maps[name]`` joins every call of that module along the query axis: one forward pass
    gives its ``(B, H, L_q, L_k)`` map as it is; step-by-step decoding (one query per call, a
    growing KV cache) gives the whole ``(B, H, T, T_keys)`` map, the keys not yet seen at a
    step filled with 0 (they got no weight). RNN attentions give ``(B, L_q, L_k)``, or
    ``(B, T, L_k)`` from ``T`` single-query steps. ``calls[name]`` keeps each call's map.
    """

    def __init__(self, names: list[str]):
        self.names = list(names)
        self.calls: dict[str, list[torch.Tensor]] = {name: [] for name in self.names}

    def _add(self, name: str, weights: torch.Tensor) -> None:
        self.calls[name].append(weights.detach())

    def __contains__(self, name: str) -> bool:
        return name in self.calls

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.calls:
            raise KeyError(f"no attention called {name!r}; this model's are {self.names}")
        calls = self.calls[name]
        if not calls:
            raise KeyError(
                f"{name!r} recorded nothing: run the model inside the `with record_attention` block"
            )
        if len(calls) == 1:
            return calls[0]
        if calls[0].dim() == 2:  # RNN attention, one query per step: (B, L_k) each
            return torch.stack(calls, dim=1)  # (B, T, L_k)
        widest = max(c.shape[-1] for c in calls)
        padded = [nn.functional.pad(c, (0, widest - c.shape[-1])) for c in calls]
        return torch.cat(padded, dim=-2)  # (..., sum of L_q, widest L_k)

    def layers(self, kind: str = "self") -> list[torch.Tensor]:
        """The maps of every module of this kind (``"self"``, ``"cross"``...), layer 0 first."""
        names = [name for name in self.names if name.rsplit(".", 1)[-1] == kind]
        if not names:
            kinds = sorted({name.rsplit(".", 1)[-1] for name in self.names})
            raise KeyError(f"no {kind!r} attention in this model; its kinds are {kinds}")
        return [self[name] for name in names]

    def __repr__(self) -> str:
        recorded = {name: len(calls) for name, calls in self.calls.items()}
        return f"AttentionMaps(calls per map: {recorded})"


@contextmanager
def record_attention(model: nn.Module) -> Iterator[AttentionMaps]:
    """Record the attention weights of every attention module in ``model`` (or ``model`` itself).

    ``with record_attention(model) as maps: model(x)``, then ``maps["encoder.0.self"]``,
    ``maps.layers("cross")``. Record one forward pass or one decoding per block.
    """
    modules = {
        map_name(path): module
        for path, module in model.named_modules()
        if isinstance(module, ATTENTION_MODULES)
    }
    if not modules:
        raise ValueError(f"{type(model).__name__} has no attention module to record")
    maps = AttentionMaps(list(modules))
    handles, asked = [], []
    try:
        for name, module in modules.items():
            if isinstance(module, MultiHeadAttention):
                module.recorders += 1  # compute the weights even on the fast path
                asked.append(module)

            def hook(_module, _inputs, output, name=name):
                maps._add(name, output[1])

            handles.append(module.register_forward_hook(hook))
        yield maps
    finally:
        for handle in handles:
            handle.remove()
        for module in asked:
            module.recorders -= 1
