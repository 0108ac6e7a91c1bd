"""`make bench`: how much a KV cache speeds up GPT generation (lesson 07).

Greedy generation with the course's ``GPT.generate``, with and without the cache, for a few
prompt lengths and numbers of new tokens. A benchmark, not a test: numbers depend on the
machine. The two outputs are also checked equal, token for token. Usage:
    python tests/bench_kv_cache.py [--new 64 256 512] [--prompt 16 128] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from course_utils import get_device
from course_utils.transformer import GPT, GPTConfig


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_generation(model, prompt, new_tokens: int, use_cache: bool, repeats: int) -> float:
    """Best of ``repeats`` wall-clock seconds for greedy generation of ``new_tokens``."""
    best = float("inf")
    for _ in range(repeats):
        _sync(prompt.device)
        start = time.perf_counter()
        model.generate(prompt, new_tokens, temperature=0, use_cache=use_cache)
        _sync(prompt.device)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", type=int, nargs="+", default=[16, 128])
    parser.add_argument("--new", type=int, nargs="+", default=[64, 256, 512])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = get_device()
    block = max(args.prompt) + max(args.new)
    torch.manual_seed(0)
    config = GPTConfig(16, block_size=block, d_model=args.d_model, num_layers=args.layers)
    model = GPT(config).to(device).eval()
    print(
        f"# KV cache: GPT d_model={args.d_model}, {args.layers} layers, block_size={block}, "
        f"greedy, best of {args.repeats}; {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {device}"
    )
    print(f"{'prompt':>6} {'new':>5} {'uncached s':>11} {'cached s':>9} {'speed-up':>9}")
    generator = torch.Generator().manual_seed(0)
    for prompt_length in args.prompt:
        prompt = torch.randint(0, 16, (1, prompt_length), generator=generator).to(device)
        for new in args.new:
            cached = model.generate(prompt, new, temperature=0, use_cache=True)
            uncached = model.generate(prompt, new, temperature=0, use_cache=False)
            if not torch.equal(cached, uncached):
                raise SystemExit(f"cached and uncached outputs differ (prompt {prompt_length})")
            slow = time_generation(model, prompt, new, False, args.repeats)
            fast = time_generation(model, prompt, new, True, args.repeats)
            print(f"{prompt_length:>6} {new:>5} {slow:>11.3f} {fast:>9.3f} {slow / fast:>8.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
