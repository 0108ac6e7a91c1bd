"""The Vision Transformer (Dosovitskiy et al. 2020): an image as a sequence of patches.

``patchify`` cuts images into non-overlapping p×p patches in row-major order; a linear layer on
the flattened patches is the same as a convolution with kernel = stride = p. A learned CLS
token and learned position embeddings go in front of pre-norm encoder layers built from the
course's own attention; the CLS output is classified. ``attention_rollout`` (Abnar & Zuidema
2020) follows the attention through all layers to show what the CLS token looks at.
"""

from __future__ import annotations

import torch
from torch import nn

from .transformer import EncoderLayer


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``(B, C, H, W) -> (B, N, C·p·p)`` with N = (H/p)·(W/p), patches in row-major order.

    Each patch is flattened channel first, then rows, then columns (the layout of a
    ``Conv2d`` weight ``(out, C, p, p)``).
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
    batch, channels, height, width = images.shape
    if patch_size < 1 or height % patch_size or width % patch_size:
        raise ValueError(
            f"patch_size={patch_size} must divide the image height and width, got images "
            f"{tuple(images.shape)}"
        )
    p = patch_size
    grid_h, grid_w = height // p, width // p
    patches = images.reshape(batch, channels, grid_h, p, grid_w, p)  # (B, C, gh, p, gw, p)
    patches = patches.permute(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, p, p)
    return patches.reshape(batch, grid_h * grid_w, channels * p * p)  # (B, N, C·p·p)


class PatchEmbedding(nn.Module):
    """``(B, C, H, W) -> (B, N, d_model)``: a linear layer applied to every flattened patch."""

    def __init__(self, in_channels: int, patch_size: int, d_model: int):
        super().__init__()
        self.in_channels, self.patch_size = in_channels, patch_size
        self.proj = nn.Linear(in_channels * patch_size * patch_size, d_model)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f"images must be (B, {self.in_channels}, H, W), got {tuple(images.shape)}"
            )
        dtype = self.proj.weight.dtype
        if images.dtype != dtype:  # e.g. float64 from NumPy or scikit-learn, uint8 pixels
            fix = "images.float()" if dtype == torch.float32 else f"images.to({dtype})"
            raise ValueError(
                f"images must have the model's dtype {dtype}, got {images.dtype}: use {fix}"
            )
        return self.proj(patchify(images, self.patch_size))  # (B, N, d_model)

    def as_conv(self) -> nn.Conv2d:
        """The same map as a ``Conv2d`` with kernel = stride = patch_size (same weights)."""
        p, d_model = self.patch_size, self.proj.out_features
        conv = nn.Conv2d(self.in_channels, d_model, kernel_size=p, stride=p)
        with torch.no_grad():
            conv.weight.copy_(self.proj.weight.view(d_model, self.in_channels, p, p))
            conv.bias.copy_(self.proj.bias)
        return conv.to(self.proj.weight.device)


class VisionTransformer(nn.Module):
    """Patches + CLS token + learned positions, pre-norm encoder layers, a linear head on CLS.

    ``forward(images (B, C, H, W)) -> logits (B, num_classes)``. ``with record_attention(vit)
    as maps``: ``maps.layers("self")`` is one ``(B, H, N+1, N+1)`` map per layer (index 0 is
    CLS), the input of :func:`attention_rollout`.
    """

    def __init__(
        self,
        image_size: int = 8,
        patch_size: int = 2,
        in_channels: int = 1,
        num_classes: int = 10,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 4,
        dim_feedforward: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"patch_size={patch_size} must divide image_size={image_size}")
        self.image_size, self.patch_size = image_size, patch_size
        self.grid = image_size // patch_size
        self.patch_embedding = PatchEmbedding(in_channels, patch_size, d_model)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        self.position_embedding = nn.Parameter(torch.randn(1, self.grid**2 + 1, d_model) * 0.02)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(
                d_model, num_heads, dim_feedforward, dropout, norm_first=True, activation="gelu"
            )  # fmt: skip
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"images must be (B, C, {self.image_size}, {self.image_size}), got "
                f"{tuple(images.shape)}"
            )
        x = self.patch_embedding(images)  # (B, N, d)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, d)
        x = self.dropout(torch.cat([cls, x], dim=1) + self.position_embedding)  # (B, N+1, d)
        for layer in self.layers:
            x = layer(x)  # (B, N+1, d)
        return self.head(self.norm(x[:, 0]))  # (B, num_classes), from the CLS token


def attention_rollout(attentions: list[torch.Tensor], residual: float = 0.5) -> torch.Tensor:
    """Abnar & Zuidema (2020): how much each output token draws on each input token.

    Each layer's weights ``(B, H, T, T)`` are averaged over heads, mixed with the identity for
    the residual connection (``residual·I + (1 - residual)·A``) and multiplied through the
    layers. Returns ``(B, T, T)`` with rows summing to 1; row 0 is the CLS token's map.
    """
    if not attentions:
        raise ValueError("attention_rollout needs the weights of at least one layer")
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual must be in [0, 1], got {residual}")
    rollout = None
    for weights in attentions:
        if weights.dim() != 4 or weights.shape[-1] != weights.shape[-2]:
            raise ValueError(
                f"each layer's weights must be (B, H, T, T), got {tuple(weights.shape)}"
            )
        mixed = weights.mean(dim=1)  # (B, T, T)
        eye = torch.eye(mixed.shape[-1], device=mixed.device, dtype=mixed.dtype)
        mixed = residual * eye + (1 - residual) * mixed
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        rollout = mixed if rollout is None else mixed @ rollout  # later layers on the left
    return rollout


def cls_attention_map(rollout: torch.Tensor, grid: int) -> torch.Tensor:
    """The CLS row of a rollout, without CLS itself, as a ``(B, grid, grid)`` image."""
    if rollout.shape[-1] != grid * grid + 1:
        raise ValueError(
            f"a rollout over {rollout.shape[-1]} tokens does not fit a {grid}×{grid} grid + CLS"
        )
    return rollout[:, 0, 1:].reshape(-1, grid, grid)
