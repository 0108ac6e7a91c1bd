"""Attention for RNN encoder-decoders: additive (Bahdanau), Luong (dot, general, concat) and
local (Luong's monotonic and predictive windows).

Each ``forward(query, keys, values, mask=None) -> (context, weights)`` takes one query per row
``(B, D_q)`` or many ``(B, L_q, D_q)``; a ``(B, L_k)`` mask is a padding mask.
"""

from __future__ import annotations

import torch
from torch import nn

from .core import masked_softmax


def _as_queries(query: torch.Tensor, keys: torch.Tensor, query_dim: int, key_dim: int):
    """Accept one query per row ``(B, D_q)`` or many ``(B, L_q, D_q)``; check the sizes."""
    if keys.dim() != 3 or keys.shape[-1] != key_dim:
        raise ValueError(f"keys must be (B, L_k, {key_dim}), got {tuple(keys.shape)}")
    single = query.dim() == 2
    q = query[:, None, :] if single else query  # (B, L_q, D_q)
    if q.dim() != 3 or q.shape[-1] != query_dim or q.shape[0] != keys.shape[0]:
        raise ValueError(
            f"query must be (B, {query_dim}) or (B, L_q, {query_dim}) with the keys' batch size; "
            f"got query {tuple(query.shape)} and keys {tuple(keys.shape)}"
        )
    return q, single


def _as_score_mask(mask: torch.Tensor | None, keys: torch.Tensor) -> torch.Tensor | None:
    """A ``(B, L_k)`` padding mask becomes ``(B, 1, L_k)``; other masks pass through."""
    if mask is not None and mask.dim() == 2 and tuple(mask.shape) == tuple(keys.shape[:2]):
        return mask[:, None, :]
    return mask


def _attend(scores, values, mask, single):
    if values.dim() != 3 or values.shape[:2] != scores.shape[:1] + scores.shape[-1:]:
        raise ValueError(
            f"values must be (B, L_k, D_v) matching the keys, got {tuple(values.shape)} for "
            f"scores {tuple(scores.shape)}"
        )
    weights = masked_softmax(scores, mask)  # (B, L_q, L_k)
    context = weights @ values  # (B, L_q, D_v)
    if single:
        return context[:, 0], weights[:, 0]  # (B, D_v), (B, L_k)
    return context, weights


class AdditiveAttention(nn.Module):
    """Bahdanau et al. (2015): score(q, k) = vᵀ tanh(W_q q + W_k k).

    ``forward(query (B, D_q) or (B, L_q, D_q), keys (B, L_k, D_k), values (B, L_k, D_v),
    mask=None) -> (context, weights)``; a ``(B, L_k)`` mask is a padding mask.
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int):
        super().__init__()
        self.query_dim, self.key_dim = query_dim, key_dim
        self.W_q = nn.Linear(query_dim, hidden_dim, bias=False)
        self.W_k = nn.Linear(key_dim, hidden_dim, bias=False)
        self.v = nn.Linear(hidden_dim, 1, bias=False)

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Scores ``(B, L_q, L_k)`` for queries ``(B, L_q, D_q)`` and keys ``(B, L_k, D_k)``."""
        hidden = torch.tanh(self.W_q(query)[:, :, None, :] + self.W_k(keys)[:, None, :, :])
        return self.v(hidden).squeeze(-1)  # (B, L_q, L_k)

    def forward(self, query, keys, values, mask=None):
        q, single = _as_queries(query, keys, self.query_dim, self.key_dim)
        return _attend(self.score(q, keys), values, _as_score_mask(mask, keys), single)


LUONG_SCORES = ("dot", "general", "concat")


class LuongAttention(nn.Module):
    """Luong et al. (2015) global attention with one of three scores:

    - ``dot``: qᵀk (needs ``query_dim == key_dim``; no parameters);
    - ``general``: qᵀ W k;
    - ``concat``: vᵀ tanh(W [q; k]).

    Same ``forward`` as :class:`AdditiveAttention`.
    """

    def __init__(
        self, query_dim: int, key_dim: int, score: str = "general", hidden_dim: int | None = None
    ):
        super().__init__()
        if score not in LUONG_SCORES:
            raise ValueError(f"score must be one of {LUONG_SCORES}, got {score!r}")
        if score == "dot" and query_dim != key_dim:
            raise ValueError(
                f"the dot score needs equal sizes, got query_dim={query_dim} and "
                f"key_dim={key_dim}: use score='general', which learns a W to bridge them"
            )
        self.query_dim, self.key_dim, self.score_name = query_dim, key_dim, score
        if score == "general":
            self.W = nn.Linear(key_dim, query_dim, bias=False)
        elif score == "concat":
            hidden_dim = hidden_dim or query_dim
            self.W = nn.Linear(query_dim + key_dim, hidden_dim, bias=False)
            self.v = nn.Linear(hidden_dim, 1, bias=False)

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Scores ``(B, L_q, L_k)`` for queries ``(B, L_q, D_q)`` and keys ``(B, L_k, D_k)``."""
        if self.score_name == "dot":
            return query @ keys.transpose(1, 2)
        if self.score_name == "general":
            return query @ self.W(keys).transpose(1, 2)
        pairs = torch.cat(  # (B, L_q, L_k, D_q + D_k)
            [
                query[:, :, None, :].expand(-1, -1, keys.shape[1], -1),
                keys[:, None, :, :].expand(-1, query.shape[1], -1, -1),
            ],
            dim=-1,
        )
        return self.v(torch.tanh(self.W(pairs))).squeeze(-1)

    def forward(self, query, keys, values, mask=None):
        q, single = _as_queries(query, keys, self.query_dim, self.key_dim)
        return _attend(self.score(q, keys), values, _as_score_mask(mask, keys), single)


class LocalAttention(LuongAttention):
    """Luong et al. (2015) local attention: attend only within ``window`` of a centre p_t.

    - ``mode="monotonic"`` (local-m): p_t = t, the query's own position (``positions``,
      default 0, 1, ..., L_q - 1);
    - ``mode="predictive"`` (local-p): p_t = S · sigmoid(v_pᵀ tanh(W_p q)) is learned, and the
      scores get a Gaussian bonus -(s - p_t)² / (2σ²) with σ = window / 2.

    Keys outside ``|s - round(p_t)| <= window`` are masked (for local-p, ``round(p_t)`` is
    clipped to the last source position). Unlike the paper, local-p weights are
    renormalised, so every row sums to 1 like the global ones. ``forward`` takes an extra
    ``positions`` (an int, ``(B,)`` or ``(B, L_q)``); ``self.last_centres`` keeps p_t.
    """

    def __init__(
        self,
        query_dim: int,
        key_dim: int,
        score: str = "general",
        window: int = 3,
        mode: str = "predictive",
        hidden_dim: int | None = None,
    ):
        super().__init__(query_dim, key_dim, score, hidden_dim)
        if mode not in ("monotonic", "predictive"):
            raise ValueError(f"mode must be 'monotonic' or 'predictive', got {mode!r}")
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        self.window, self.mode = window, mode
        if mode == "predictive":
            self.W_p = nn.Linear(query_dim, hidden_dim or query_dim, bias=False)
            self.v_p = nn.Linear(hidden_dim or query_dim, 1, bias=False)
        self.last_centres: torch.Tensor | None = None

    def centres(self, q: torch.Tensor, lengths: torch.Tensor, positions=None) -> torch.Tensor:
        """p_t for queries ``(B, L_q, D_q)``: ``(B, L_q)`` floats."""
        batch, n_queries = q.shape[:2]
        if self.mode == "predictive":
            return lengths[:, None].to(q.dtype) * torch.sigmoid(
                self.v_p(torch.tanh(self.W_p(q))).squeeze(-1)
            )
        if positions is None:
            positions = torch.arange(n_queries, device=q.device)
        positions = torch.as_tensor(positions, device=q.device, dtype=q.dtype)
        if positions.dim() == 1 and positions.shape[0] == batch and n_queries == 1:
            positions = positions[:, None]
        return positions.expand(batch, n_queries)

    def forward(self, query, keys, values, mask=None, positions=None):
        q, single = _as_queries(query, keys, self.query_dim, self.key_dim)
        score_mask = _as_score_mask(mask, keys)
        lengths = (
            score_mask.any(dim=-2).sum(-1)
            if score_mask is not None and score_mask.dim() == 3
            else torch.full((keys.shape[0],), keys.shape[1], device=keys.device)
        )
        centres = self.centres(q, lengths, positions)  # (B, L_q)
        self.last_centres = centres.detach()
        source = torch.arange(keys.shape[1], device=keys.device, dtype=q.dtype)  # (L_k,)
        distance = source[None, None, :] - centres[:, :, None]  # (B, L_q, L_k)
        # the window is centred on the nearest position (for local-p, a real source position),
        # so even window=0 keeps one key
        centre_index = centres.round()
        if self.mode == "predictive":
            last = (lengths - 1).clamp_min(0).to(q.dtype)[:, None]  # (B, 1)
            centre_index = torch.minimum(centre_index, last)
        in_window = (source[None, None, :] - centre_index[:, :, None]).abs() <= self.window
        scores = self.score(q, keys)
        if self.mode == "predictive":
            sigma = max(self.window / 2, 0.5)
            scores = scores - distance**2 / (2 * sigma**2)
        window_mask = in_window if score_mask is None else in_window & score_mask
        return _attend(scores, values, window_mask, single)
