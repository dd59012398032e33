"""Child-training throughput of the Zoph & Le CNN space, beside the machine's conv peak.

    python benchmarks/child_throughput.py [--batch 128] [--steps 10] [--threads 2]

For a few architectures it times full SGD steps (forward, backward, Nesterov update) on
CIFAR-shaped batches in NCHW and channels_last memory formats, and prints images/s and the
achieved GFLOP/s (3 x forward FLOPs per image: forward + backward), next to the peak of a
plain 3x3 convolution (64 -> 64 channels, 32x32, fwd+bwd) measured in the same run.
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

from torchnas.nn import count_flops
from torchnas.spaces import NASCNNSpace

ARCHS = {
    "6 layers, 3x3, 36 filters, chain": "nas-cnn:3,3,36,-,3,3,36,0,3,3,36,1,3,3,36,2,3,3,36,3,3,3,36,4",
    "6 layers, 5x5/7x7, 64 filters, dense skips": "nas-cnn:5,5,64,-,7,7,64,0,5,5,64,0+1,7,5,64,1+2,5,7,64,0+2+3,5,5,64,1+2+3+4",
}


def median_step_time(fn, steps: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def conv_peak(batch: int, steps: int, channels_last: bool) -> float:
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False)
    x = torch.randn(batch, 64, 32, 32, requires_grad=True)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
        x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()

    def step():
        conv(x).sum().backward()
    t = median_step_time(step, steps)
    return 3 * 2 * 64 * 64 * 9 * 32 * 32 * batch / t / 1e9


def child_speed(arch: str, batch: int, steps: int, channels_last: bool):
    space = NASCNNSpace(layers=6)
    a = space.parse(arch)
    torch.manual_seed(0)
    model = space.child(a, 3, 10)
    flops = count_flops(model, (3, 32, 32))
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    t = median_step_time(step, steps)
    return batch / t, 3 * flops * batch / t / 1e9, flops


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--random", type=int, default=2, help="random architectures of the 6-layer space to add")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    archs = dict(ARCHS)
    rng = random.Random(0)
    space = NASCNNSpace(layers=6)
    for i in range(args.random):
        archs[f"random #{i}"] = str(space.random(rng))
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} threads, "
          f"batch {args.batch}, median of {args.steps} steps")
    peak = {cl: conv_peak(args.batch, args.steps, cl) for cl in (False, True)}
    print(f"conv peak (3x3, 64->64, 32x32, fwd+bwd): NCHW {peak[False]:.0f} GFLOP/s, "
          f"channels_last {peak[True]:.0f} GFLOP/s")
    print("| architecture | MFLOPs/img | NCHW img/s | channels_last img/s | speed-up | GFLOP/s (best) | % of peak |")
    print("|---|---|---|---|---|---|---|")
    for name, arch in archs.items():
        nchw, _, flops = child_speed(arch, args.batch, args.steps, False)
        cl, _, _ = child_speed(arch, args.batch, args.steps, True)
        best = max(nchw, cl)
        gflops = 3 * flops * best / 1e9
        print(f"| {name} | {flops / 1e6:.1f} | {nchw:.0f} | {cl:.0f} | {cl / nchw:.2f}x | {gflops:.0f} | "
              f"{100 * gflops / max(peak.values()):.0f}% |")


if __name__ == "__main__":
    main()
