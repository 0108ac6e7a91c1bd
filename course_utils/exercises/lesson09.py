"""Lesson 09 exercises: cut images into patches, prepend the CLS token and add the position
embeddings, and roll attention out through the layers."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._core import CheckResult, Mistake, Question, expect_tensor, run_check

__all__ = [
    "check_attention_rollout",
    "check_patchify",
    "check_prepend_cls",
    "reference_attention_rollout",
    "reference_patchify",
    "reference_prepend_cls",
]


def reference_patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``(B, C, H, W) -> (B, N, C·p·p)``: patches in row-major order (left to right, then top
    to bottom), each flattened channel first, then its rows, then its columns."""
    b, c, h, w = images.shape
    p = patch_size
    patches = images.reshape(b, c, h // p, p, w // p, p)  # (B, C, gh, p, gw, p)
    patches = patches.permute(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, p, p)
    return patches.reshape(b, (h // p) * (w // p), c * p * p)  # (B, N, C·p·p)


def reference_prepend_cls(
    patch_embeddings: torch.Tensor, cls_token: torch.Tensor, position_embedding: torch.Tensor
) -> torch.Tensor:
    """``(B, N, d)``, ``(1, 1, d)``, ``(1, N+1, d) -> (B, N+1, d)``: the CLS token goes in
    front of the patches (index 0), then every token gets its position's embedding."""
    cls = cls_token.expand(patch_embeddings.shape[0], -1, -1)  # (B, 1, d)
    return torch.cat([cls, patch_embeddings], dim=1) + position_embedding  # (B, N+1, d)


def reference_attention_rollout(attentions: list[torch.Tensor]) -> torch.Tensor:
    """Abnar & Zuidema (2020) with residual 0.5: average each layer's ``(B, H, T, T)`` weights
    over heads, mix in the identity for the residual connection, ``0.5·I + 0.5·A``, and
    multiply through the layers, later layers on the left. Returns ``(B, T, T)``."""
    rollout = None
    for weights in attentions:
        mixed = weights.mean(dim=1)  # (B, T, T): average over heads
        eye = torch.eye(mixed.shape[-1], dtype=mixed.dtype, device=mixed.device)
        mixed = 0.5 * eye + 0.5 * mixed  # the residual: each token also keeps itself
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)  # rows sum to 1
        rollout = mixed if rollout is None else mixed @ rollout  # later layer on the left
    return rollout


def _close(a, b) -> bool:
    return (
        isinstance(a, torch.Tensor)
        and a.shape == b.shape
        and torch.allclose(a.float(), b.float(), atol=1e-5, rtol=1e-4)
    )


# ----------------------------------------------------------------------------- patchify


def _images(b: int, c: int, h: int, w: int) -> torch.Tensor:
    # distinct values everywhere, so every layout mistake shows
    return torch.arange(b * c * h * w, dtype=torch.float32).view(b, c, h, w)


_PATCH_CASES = ((2, 1, 4, 4, 2), (2, 3, 6, 4, 2), (1, 2, 8, 8, 4))  # (B, C, H, W, p)


def check_patchify(fn: Callable) -> CheckResult:
    """Checks ``fn(images (B, C, H, W), patch_size) -> (B, N, C·p·p)``, row-major patches."""

    def body(fn):
        for b, c, h, w, p in _PATCH_CASES:
            images = _images(b, c, h, w)
            original = images.clone()
            patches = fn(images, p)
            if not torch.equal(images, original):
                raise Mistake("your function changed the images it was given: return a new tensor")
            n, size = (h // p) * (w // p), c * p * p
            if isinstance(patches, torch.Tensor) and tuple(patches.shape) == (b, size, n) != (
                b,
                n,
                size,
            ):
                raise Mistake(
                    f"the patches have shape {(b, size, n)}: one row per patch, so the result is "
                    f"(B, N, C·p·p) = {(b, n, size)}; transpose the last two dims"
                )
            patches = expect_tensor(patches, f"patchify(images {(b, c, h, w)}, {p})", (b, n, size))
            grid = images.reshape(b, c, h // p, p, w // p, p)  # (B, C, gh, p, gw, p)
            if torch.equal(patches, reference_patchify(images, p)):
                continue
            if torch.equal(patches, reference_patchify(images, p).transpose(1, 2)):
                raise Mistake(
                    "the result is transposed: one row per patch, so the result is (B, N, C·p·p) "
                    "with the patch index in dim 1; transpose the last two dims"
                )
            if torch.equal(patches, grid.permute(0, 4, 2, 1, 3, 5).reshape(b, n, size)):
                raise Mistake(
                    "the patches are in column-major order (down the first column, then the "
                    "next): the ViT reads them row by row, left to right and then top to bottom, "
                    "like text. Put the grid-row dim before the grid-column dim in the permute"
                )
            if torch.equal(patches, grid.permute(0, 2, 4, 3, 5, 1).reshape(b, n, size)):
                raise Mistake(
                    "each patch is flattened with the channels last (pixel by pixel, its channels "
                    "together): flatten channel first, then rows, then columns, the layout of a "
                    "Conv2d weight (out, C, p, p), so that the linear layer equals the convolution"
                )
            if torch.equal(patches, images.reshape(b, n, size)):
                raise Mistake(
                    "a plain reshape cuts the image into runs of consecutive pixels along the "
                    "rows, not into p×p squares: reshape to (B, C, H/p, p, W/p, p) first, permute "
                    "to (B, H/p, W/p, C, p, p), then flatten"
                )
            if torch.equal(patches, grid.permute(0, 2, 4, 1, 5, 3).reshape(b, n, size)):
                raise Mistake(
                    "inside each patch the pixels are flattened column by column: keep each "
                    "patch's rows before its columns, permute(0, 2, 4, 1, 3, 5)"
                )
            raise Mistake(
                f"patchify(images {(b, c, h, w)}, {p}) has the right shape but not the right "
                "values: patch k should be the p×p square in grid row k // (W/p), column "
                "k % (W/p), flattened channel first"
            )
        return "row-major patches, each flattened like a Conv2d weight: ready for a linear layer."

    return run_check("patchify", fn, body)


# ----------------------------------------------------------------------------- CLS + positions


def _tokens_case(b: int = 3, n: int = 4, d: int = 6):
    with torch.random.fork_rng():  # leave the learner's random state alone
        torch.manual_seed(9)
        patches = torch.randn(b, n, d)
        cls = torch.randn(1, 1, d)
        positions = torch.randn(1, n + 1, d)
    return patches, cls, positions


def check_prepend_cls(fn: Callable) -> CheckResult:
    """Checks ``fn(patch_embeddings (B, N, d), cls_token (1, 1, d), position_embedding
    (1, N+1, d)) -> (B, N+1, d)``."""

    def body(fn):
        patches, cls, positions = _tokens_case()
        b, n, d = patches.shape
        before = (patches.clone(), cls.clone(), positions.clone())
        try:
            tokens = fn(patches, cls, positions)
        except NotImplementedError:
            raise
        except RuntimeError as err:  # almost always a concatenation that does not fit
            raise Mistake(
                f"your function raised RuntimeError: {err}. The CLS token is (1, 1, d) and the "
                f"patches {(b, n, d)}: expand CLS to the batch, cls_token.expand(B, -1, -1), "
                "and concatenate along the tokens, dim=1"
            ) from None
        if not all(torch.equal(x, y) for x, y in zip((patches, cls, positions), before)):
            raise Mistake("your function changed its inputs in place: return a new tensor")
        if isinstance(tokens, torch.Tensor) and tuple(tokens.shape) == (b, n, d):
            raise Mistake(
                f"the result has {n} tokens, one per patch: the CLS token must be added as an "
                f"extra token in front, giving (B, N+1, d) = {(b, n + 1, d)}"
            )
        if isinstance(tokens, torch.Tensor) and tuple(tokens.shape) == (1, n + 1, d) != (
            b,
            n + 1,
            d,
        ):
            raise Mistake(
                "the result has batch size 1: expand the CLS token to the batch, "
                "cls_token.expand(B, -1, -1), before concatenating"
            )
        tokens = expect_tensor(tokens, "the tokens", (b, n + 1, d))
        expected = reference_prepend_cls(patches, cls, positions)
        if _close(tokens, expected):
            return "CLS in front at index 0, then every token plus its own position embedding."
        cls_all = cls.expand(b, -1, -1)
        if _close(tokens, torch.cat([patches, cls_all], 1) + positions):
            raise Mistake(
                "the CLS token went to the end: put it in front (index 0), which is where the "
                "head reads it and where position embedding 0 belongs"
            )
        if _close(tokens, torch.cat([cls_all, patches], 1)):
            raise Mistake(
                "the position embeddings are missing: without them attention cannot tell "
                "where a patch was in the image (lesson 05). Add position_embedding"
            )
        if _close(tokens, torch.cat([cls_all, patches + positions[:, 1:]], 1)):
            raise Mistake(
                "only the patches got position embeddings: the CLS token has one too, "
                "position_embedding[:, 0]; add the whole table after concatenating"
            )
        if _close(tokens, torch.cat([cls_all, patches + positions[:, :n]], 1)):
            raise Mistake(
                "the patches got the position embeddings of indices 0..N-1, but index 0 is "
                "CLS's: concatenate first, then add the whole (1, N+1, d) table"
            )
        raise Mistake("expected torch.cat([CLS expanded to the batch, patches], dim=1) + positions")

    return run_check("prepend_cls", fn, body)


# ----------------------------------------------------------------------------- attention rollout


def _attention_case(b: int = 2, h: int = 3, t: int = 5, layers: int = 3) -> list[torch.Tensor]:
    with torch.random.fork_rng():
        torch.manual_seed(4)
        return [torch.softmax(torch.randn(b, h, t, t) * 2, dim=-1) for _ in range(layers)]


def _rollout(attentions, residual=0.5, reverse=False, reduce="mean"):
    rollout = None
    for weights in attentions:
        mixed = weights.mean(1) if reduce == "mean" else weights.max(1).values
        eye = torch.eye(mixed.shape[-1])
        mixed = residual * eye + (1 - residual) * mixed
        mixed = mixed / mixed.sum(-1, keepdim=True)
        if rollout is None:
            rollout = mixed
        else:
            rollout = rollout @ mixed if reverse else mixed @ rollout
    return rollout


def check_attention_rollout(fn: Callable) -> CheckResult:
    """Checks ``fn(attentions: list of (B, H, T, T)) -> (B, T, T)`` (residual 0.5)."""

    def body(fn):
        attentions = _attention_case()
        b, _, t, _ = attentions[0].shape
        copies = [a.clone() for a in attentions]
        result = fn(attentions)
        if not all(torch.equal(a, c) for a, c in zip(attentions, copies)):
            raise Mistake("your function changed the attention weights in place")
        if isinstance(result, torch.Tensor) and result.dim() == 4:
            raise Mistake(
                f"the result has shape {tuple(result.shape)}: average over the heads (dim 1) "
                f"so that one (B, T, T) = {(b, t, t)} map is left"
            )
        result = expect_tensor(result, "the rollout", (b, t, t))
        if _close(result, _rollout(attentions)):
            one = expect_tensor(fn(attentions[:1]), "the rollout of one layer", (b, t, t))
            if not _close(one, _rollout(attentions[:1])):
                raise Mistake("with a single layer the rollout is that layer's 0.5·I + 0.5·A")
            return "heads averaged, the residual mixed in, layers multiplied later-on-the-left."
        if _close(result, _rollout(attentions, residual=0.0)):
            raise Mistake(
                "you multiplied the raw attention maps: the residual connection is missing. "
                "Each block adds its input back (x + attention(x)), so use 0.5·I + 0.5·A per layer"
            )
        if _close(result, _rollout(attentions, reverse=True)):
            raise Mistake(
                "the layers are multiplied in the wrong order: layer 2 reads what layer 1 wrote, "
                "so its matrix goes on the left, rollout = mixed @ rollout"
            )
        if _close(result, _rollout(attentions, reduce="max")):
            raise Mistake("take the mean over the heads, not the max, as Abnar & Zuidema do")
        if _close(result, _rollout(attentions[-1:])):
            raise Mistake(
                "that is the last layer alone: roll out through every layer, multiplying the "
                "mixed matrices"
            )
        if _close(result.sum(-1), torch.ones(b, t)):
            raise Mistake(
                "each row sums to 1 but the values differ from the rollout: per layer, average "
                "the heads, use 0.5·I + 0.5·A, then multiply later layers on the left"
            )
        raise Mistake("each row of the rollout should sum to 1: check the mixing 0.5·I + 0.5·A")

    return run_check("attention_rollout", fn, body)


SOLUTIONS = {
    "patchify": reference_patchify,
    "prepend_cls": reference_prepend_cls,
    "attention_rollout": reference_attention_rollout,
}

QUIZ = [
    Question(
        "A ViT with patch size 2 reads an 8×8 grey image. How many tokens go into the first "
        "encoder layer, and how long is each patch vector before the linear layer?",
        (
            "64 tokens of length 1",
            "16 tokens of length 4",
            "17 tokens (16 patches and CLS); each patch has 4 pixel values",
            "17 tokens of length 16",
        ),
        2,
        "(8/2)·(8/2) = 16 patches, each 1·2·2 = 4 values, plus the CLS token in front: 17 tokens.",
    ),
    Question(
        "Why is a linear layer applied to every flattened patch the same as a convolution?",
        (
            "It is not: a convolution always has overlapping windows",
            "With kernel size = stride = patch size, the convolution applies one set of weights "
            "to each non-overlapping patch, which is a linear layer shared over patches",
            "Because both use ReLU",
            "Only for grey images",
        ),
        1,
        "Conv2d(C, d, kernel_size=p, stride=p) computes, for each p×p window, a weight tensor "
        "(d, C, p, p) dotted with the window plus a bias: reshape the weight to (d, C·p·p) and "
        "it is nn.Linear on patchify's output.",
    ),
    Question(
        "On 8×8 digits, a small CNN beats the ViT with fewer parameters. What does the ViT "
        "paper say about this?",
        (
            "ViTs are simply worse models for images",
            "The ViT lacks the CNN's built-in locality and translation equivariance; it must "
            "learn them from data, and only overtakes CNNs with much more data (14M-300M images)",
            "The ViT needs bigger images, not more data",
            "CNNs win because they have attention too",
        ),
        1,
        "Dosovitskiy et al. (2020): with ImageNet alone ViTs trail ResNets; pre-trained on "
        "ImageNet-21k or JFT-300M they win. Large-scale training trumps inductive bias.",
    ),
    Question(
        "Why does attention rollout mix each layer's attention with the identity before "
        "multiplying?",
        (
            "To make the matrices invertible",
            "Because of the residual connection: each block's output is its input plus the "
            "attention output, so every token also carries itself forward",
            "To remove the CLS token",
            "To average over heads",
        ),
        1,
        "x + attention(x): the identity accounts for the skip path. Without it the product of "
        "raw attention maps quickly smears over all tokens and ignores what flowed straight "
        "through (Abnar & Zuidema 2020).",
    ),
]
