"""ENAS shared-weight training step vs a standalone child of the same size, on CPU.

    python benchmarks/enas_shared_speed.py [--batch 64] [--steps 8] [--data-dir DATA]

For the micro and macro spaces (the -tiny presets' widths and the search presets' widths) it
times one SGD step of the shared network on a freshly sampled architecture per step (what
the ENAS loop does), of the shared network on one fixed architecture, and of the equivalent
standalone search-time child of that architecture (``child_from_shared``: same sub-graph, no
unused weights), in NCHW and channels_last, with 1 and 2 torch threads. A ratio
standalone/shared near 1 means weight sharing costs nothing per step.

With ``--data-dir`` it then prints ``benchmarks/enas_step_ops.py``'s table for the four ENAS search
presets: the operators of one step of the loop itself (shared-weight step, controller draw,
controller update, one reward) and its time (issue 31).
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time

import torch
import torch.nn.functional as F

from torchnas.spaces import get_space

CONFIGS = [
    ("enas-micro", {}, {"channels": 8, "num_layers": 3}, "micro tiny (C=8, 1 cell/stage)"),
    ("enas-micro", {}, {"channels": 20, "num_layers": 6}, "micro search (C=20, 2 cells/stage)"),
    ("enas-macro", {"num_layers": 6}, {"channels": 12}, "macro tiny (6 layers, C=12)"),
    ("enas-macro", {"num_layers": 12}, {"channels": 36}, "macro search (12 layers, C=36)"),
]


def step_time(model, forward, batch: int, steps: int, channels_last: bool) -> float:
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    model.train()
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        out = forward(model, x, i)
        loss = F.cross_entropy(out[0] if isinstance(out, tuple) else out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--data-dir", default=None, help="also count the loop's operators (needs cifar10/ and ptb/)")
    args = p.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, batch {args.batch}, "
          f"median of {args.steps} steps (img/s)")
    print("| network | threads | format | shared, new arch per step | shared, same arch | standalone, same arch "
          "| standalone / shared (same arch) |")
    print("|---|---|---|---|---|---|---|")
    for name, space_kw, net_kw, label in CONFIGS:
        space = get_space(name, **space_kw)
        rng = random.Random(0)
        archs = [space.random(rng) for _ in range(args.steps + 2)]
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for cl in (False, True):
                torch.manual_seed(0)
                shared = space.shared(3, 10, **net_kw)
                t_varying = step_time(shared, lambda m, x, i: m(x, archs[i]), args.batch, args.steps, cl)
                t_shared = step_time(shared, lambda m, x, i: m(x, archs[0]), args.batch, args.steps, cl)
                child = space.child_from_shared(shared, archs[0])
                t_child = step_time(child, lambda m, x, i: m(x), args.batch, args.steps, cl)
                print(f"| {label} | {threads} | {'channels_last' if cl else 'NCHW'} | {args.batch / t_varying:.0f} | "
                      f"{args.batch / t_shared:.0f} | {args.batch / t_child:.0f} | {t_shared / t_child:.2f} |")
    if args.data_dir:
        import sys
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import enas_step_ops
        sys.argv = [sys.argv[0], "--data-dir", args.data_dir, "--steps", str(args.steps), "--batch", str(args.batch)]
        enas_step_ops.main()


if __name__ == "__main__":
    main()
