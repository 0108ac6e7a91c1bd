"""`make bench`: execute each notebook in a fresh kernel; report wall time and peak memory.

A benchmark, not a test: numbers depend on the machine. Usage:
    python tests/bench_notebooks.py notebooks/*.ipynb
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient

PEAK_CELL = """\
import resource as _r, json as _j
_peak = {"rss_mib": _r.getrusage(_r.RUSAGE_SELF).ru_maxrss / 1024}
try:
    import torch as _t
    if _t.cuda.is_available():
        _peak["cuda_mib"] = _t.cuda.max_memory_allocated() / 2**20
except ImportError:
    pass
print(_j.dumps(_peak))
"""


def bench(path: Path, kernel: str | None) -> dict:
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name=kernel or nb.metadata.get("kernelspec", {}).get("name", "python3"),
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    peak = json.loads(nb.cells[-1].outputs[0]["text"])
    return {"notebook": path.name, "seconds": seconds, **peak}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--kernel", default=None, help="kernel name (default: the notebook's)")
    parser.add_argument("--limit", type=float, default=60.0, help="flag notebooks slower than this")
    args = parser.parse_args()
    print(
        f"# machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}, "
        f"CUDA: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}"
    )
    print(f"{'notebook':<36} {'seconds':>8} {'peak RSS MiB':>13} {'peak CUDA MiB':>14}")
    total, slow = 0.0, []
    for path in args.notebooks:
        row = bench(path, args.kernel)
        total += row["seconds"]
        cuda = f"{row['cuda_mib']:.0f}" if "cuda_mib" in row else "-"
        flag = "  <-- over the limit" if row["seconds"] > args.limit else ""
        print(
            f"{row['notebook']:<36} {row['seconds']:>8.1f} {row['rss_mib']:>13.0f} {cuda:>14}{flag}"
        )
        if flag:
            slow.append(row["notebook"])
    print(f"{'total':<36} {total:>8.1f}")
    if slow:
        print(f"over {args.limit:.0f} s: {', '.join(slow)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
