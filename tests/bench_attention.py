"""`make bench`: the cost of self-attention's forward + backward, three ways, side by side.

The course's ``MultiHeadAttention`` on its fast path (``need_weights=False``: PyTorch's fused
``F.scaled_dot_product_attention``), the same module on its explicit path (``need_weights=True``:
the course's own softmax(QKᵀ/√d)V, weights kept), and ``nn.MultiheadAttention(need_weights=
False)``. Same shapes, same weights, interleaved repeats, best time of each. A benchmark, not a
test: the numbers depend on the machine. Usage:
    python tests/bench_attention.py [--batch 8] [--length 1024] [--d-model 768] [--heads 12]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch import nn

from course_utils import get_device
from course_utils.attention import MultiHeadAttention


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _step(run, x: torch.Tensor) -> float:
    """Seconds for one forward + backward of ``run(x)``."""
    x.grad = None
    _sync(x.device)
    start = time.perf_counter()
    run(x).sum().backward()
    _sync(x.device)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--d-model", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = get_device()
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(args.d_model, args.heads, batch_first=True).to(device)
    ours = MultiHeadAttention.from_torch(theirs)
    x = torch.randn(args.batch, args.length, args.d_model, device=device, requires_grad=True)
    runs = {
        "course fast path (need_weights=False)": lambda x: ours(x, x, x, need_weights=False)[0],
        "course explicit path (need_weights=True)": lambda x: ours(x, x, x, need_weights=True)[0],
        "nn.MultiheadAttention(need_weights=False)": lambda x: theirs(x, x, x, need_weights=False)[
            0
        ],
    }
    for run in runs.values():  # warm-up: allocator, kernels
        _step(run, x)
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(args.repeats):  # interleaved, so a busy moment hurts all three alike
        for name, run in runs.items():
            best[name] = min(best[name], _step(run, x))
    print(
        f"self-attention forward + backward: B={args.batch}, L={args.length}, "
        f"d_model={args.d_model}, {args.heads} heads, on {device} ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads); best of {args.repeats}"
    )
    reference = best["nn.MultiheadAttention(need_weights=False)"]
    for name, seconds in best.items():
        print(f"  {name:<44} {seconds * 1000:8.0f} ms   {seconds / reference:5.2f}x PyTorch's")
    ratio = best["course fast path (need_weights=False)"] / reference
    print(f"fast path / PyTorch: {ratio:.2f} (goal: within 1.2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
