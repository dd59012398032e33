"""Tokens per second of the ENAS recurrent-cell language model on CPU: the shared-weight
model (a new cell sampled per window, as in the search) vs the standalone child of the same
cell, for training (forward, backward, SGD step with the reference's regularisers) and for
evaluation (exact perplexity).

    python benchmarks/enas_rnn_speed.py [--windows 6] [--threads 2]
    python benchmarks/enas_rnn_speed.py --peer [--steps 16] [--samples 8] [--profile]

Sizes: the enas-rnn-tiny preset (hidden 64, batch 64), the search preset (hidden 200, batch
128) and the final preset (hidden 800, batch 64). Windows are 35 tokens (fixed length), the
vocabulary is PTB's 10,000 words (random tokens: speed does not depend on the text). A ratio
shared/standalone near 1 means weight sharing costs nothing per token. The last line times
the enas-rnn preset's controller sampling one cell (what the search does per window).

``--peer``: the public PyTorch ENAS's default recurrent search (hidden = embedding = 1,000,
tied, batch 64, BPTT 35, 11 nodes after node 0; issue 15). Prints the shared-weight step
(a new cell each step: forward, backward, clipping, SGD) in tokens/s with its median and
max/median over ``--steps`` steps, one controller sample with its reward (perplexity of one
64 x 35 validation window with the shared weights), the peak memory (max RSS), the FLOPs of
each counted by hand (cell matmuls (nodes + 2) x 4BH^2 per time step, tied softmax 2BHV per
token; backward = 2 x forward) and their achieved rate beside the machine's fp32 matmul rate
measured before and after the runs (a 2048^2 product, and the cell's own [64, 1000] x [1000, 2000];
the higher of the two, since the rate varies by ±25 % on a shared machine), and
the epoch this projects to at 401 shared steps + 2,000 samples (the peer's epoch). Beside each
rate: the same products alone, at the shapes the step runs them (``products_only``), the most
this machine gives those shapes.
"""
from __future__ import annotations

import argparse
import platform
import random
import statistics
import time

import torch

from child_throughput import median_step_time      # benchmarks/, the script's own folder
from torchnas.config import build_space, build_strategy, load_preset, resolve
from torchnas.data.ptb import Corpus
from torchnas.training import LMTraining, perplexity
from torchnas.spaces import ENASRNNSpace
from torchnas.spaces.enas_rnn import PUBLISHED_ARC

V = 10_000
DROP = {"word": 0.1, "embedding": 0.2, "input": 0.75, "hidden": 0.25, "output": 0.75}
CONFIGS = [("tiny", 64, 64), ("search", 200, 128), ("final", 800, 64)]


def train_rate(model, corpus, batch, windows, arch_fn=None) -> float:
    t = LMTraining(model, corpus, batch_size=batch, bptt=35, variable_bptt=False, lr=20.0, grad_clip=0.1,
                   weight_decay=8e-7, beta=1.0, max_batches=1, device="cpu")
    t.train_epoch(arch_fn)                     # warm-up
    t.max_batches = windows
    return t.train_epoch(arch_fn)["tokens_per_s"]


def eval_rate(model, stream, batch, arch=None) -> float:
    t0 = time.perf_counter()
    r = perplexity(model, stream, batch, 35, arch)
    return r["tokens"] / (time.perf_counter() - t0)


def matmul_rate(m: int, k: int, n: int, repeats: int = 20) -> float:
    """fp32 GFLOP/s of an [m, k] x [k, n] product (median of ``repeats``)."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    return 2 * m * k * n / median_step_time(lambda: a @ b, repeats) / 1e9


def products_only(B: int, H: int, N: int, T: int, V: int, chunk: int = 512,
                  repeats: int = 3) -> tuple[float, float, float]:
    """Seconds for the matrix products alone of (a shared step, a reward, the reward's per-step
    cell products, each streaming a different weight as the cell runs them), at the shapes the
    step runs them, on random data, back to back (median of ``repeats``): the step's time if
    everything else took none, so its rate is the most this machine allows those shapes.
    A step: the input projection; per time step ``N + 1`` cell products ``[B, H] x [H, 2H]``
    and, backward, their input gradients ``[B, 2H] x [2H, H]``; each weight's window gradient
    ``[H, TB] x [TB, 2H]`` and the projection's two; the tied softmax (``chunk`` rows at a time)
    forward, its input and its embedding gradient. A reward: the forward products."""
    g = torch.Generator().manual_seed(0)
    r = lambda *shape: torch.randn(*shape, generator=g)
    W, x, h, gz = r(N + 1, H, 2 * H), r(T * B, H), r(B, H), r(B, 2 * H)
    E, xs, gs = r(V, H), r(T * B, H), r(T * B, 2 * H)

    def cells():
        for _ in range(T):
            for k in range(N + 1):
                h @ W[k]

    def forward(softmax: bool = True):
        x @ W[0]
        cells()
        for i in range(0, T * B, chunk) if softmax else ():
            xs[i:i + chunk] @ E.t()

    def step():
        forward(softmax=False)              # the softmax's forward product is made below, once
        for _ in range(T):
            for k in range(N + 1):
                gz @ W[k].t()
        for k in range(N + 2):
            xs.t() @ gs
        gs @ W[0].t()
        for i in range(0, T * B, chunk):
            p = xs[i:i + chunk] @ E.t()
            p @ E
            p.t() @ xs[i:i + chunk]
    return tuple(median_step_time(f, repeats) for f in (step, forward, cells))


def _rss_gib() -> float | None:
    """Resident memory now (Linux), GiB."""
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 2**20
    except (OSError, StopIteration):
        return None


def peer(steps: int, samples: int, profile: bool = False) -> None:
    """The peer's configuration (issue 15): hidden 1000, 11 nodes, batch 64, BPTT 35."""
    import resource
    H, B, T, N = 1000, 64, 35, 11
    space = ENASRNNSpace(num_nodes=N)
    g, rng = torch.Generator().manual_seed(0), random.Random(0)
    tokens = torch.randint(0, V, (B * T * (steps + 2) + 1,), generator=g)
    corpus = Corpus([str(i) for i in range(V)], {}, tokens, tokens[:B * T * 2 + 1], tokens[:1])
    torch.manual_seed(0)
    model = space.language_model(None, V, H, dropout=DROP)
    t = LMTraining(model, corpus, batch_size=B, bptt=T, variable_bptt=False, lr=20.0, grad_clip=0.25,
                   weight_decay=1e-7, max_batches=1, device="cpu")
    built = _rss_gib()
    t.train_epoch(lambda: space.random(rng))                 # warm-up
    if profile:
        from torch.profiler import ProfilerActivity
        with torch.profiler.profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(2):
                t.train_epoch(lambda: space.random(rng))
        print("profile of 2 shared steps, by operation and input shape:")
        print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=20,
                                                                 max_name_column_width=28, max_shapes_column_width=44))
    before = matmul_rate(2048, 2048, 2048), matmul_rate(B, H, 2 * H)
    step_times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        t.train_epoch(lambda: space.random(rng))
        step_times.append(time.perf_counter() - t0)
    cfg = resolve(load_preset("enas-rnn"))
    cfg["space"]["num_nodes"] = N
    strategy = build_strategy(cfg, space)
    valid = corpus.valid[:B * T + 1]
    sample_times = []
    for _ in range(samples + 1):
        t0 = time.perf_counter()
        arch = strategy.propose(1)[0]
        with torch.no_grad():
            perplexity(model, valid, B, T, arch)
        sample_times.append(time.perf_counter() - t0)
    sample_times = sample_times[1:]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20          # KiB -> GiB
    fwd = T * ((N + 2) * 4 * B * H * H + 2 * B * H * V)
    step, sample = statistics.median(step_times), statistics.median(sample_times)
    bound_step, bound_sample, cell_loop = products_only(B, H, N, T, V)
    after = matmul_rate(2048, 2048, 2048), matmul_rate(B, H, 2 * H)
    peak, cell_peak = max(before[0], after[0]), max(before[1], after[1])   # the rate varies ±25 % on a shared machine
    print(f"peer configuration: hidden {H}, {N} nodes after node 0, batch {B}, BPTT {T}, vocabulary {V}")
    print(f"matmul rate before / after the runs: {before[0]:.0f} / {after[0]:.0f} GFLOP/s (2048^2), "
          f"{before[1]:.0f} / {after[1]:.0f} GFLOP/s ([64, 1000] x [1000, 2000]); the higher of each is the peak below")
    def rate(flop, secs):
        r = flop / secs / 1e9
        return (f"{flop / 1e9:.0f} GFLOP -> {r:.0f} GFLOP/s ({100 * r / peak:.0f} % of the 2048^2 peak, "
                f"{100 * r / cell_peak:.0f} % of the cell product's)")
    print(f"shared step: median {step:.2f} s ({B * T / step:.0f} tok/s), max/median {max(step_times) / step:.2f} "
          f"over {steps} steps; {rate(3 * fwd, step)}")
    print(f"  its matrix products alone, at their shapes: {bound_step:.2f} s ({rate(3 * fwd, bound_step)}); "
          f"the step takes {step / bound_step:.2f}x that")
    print(f"  of which the {T * (N + 1)} per-step cell products, each reading a different weight: "
          f"{rate(T * (N + 1) * 4 * B * H * H, cell_loop)}")
    print(f"controller sample + reward: median {sample:.2f} s; {rate(fwd, sample)}")
    print(f"  its matrix products alone: {bound_sample:.2f} s ({rate(fwd, bound_sample)}); "
          f"the sample takes {sample / bound_sample:.2f}x that (it includes the controller's own sampling)")
    print(f"peak memory (max RSS): {rss:.2f} GiB" + (f"; {built:.2f} GiB once the model was built" if built else ""))
    print(f"projected epoch (401 shared steps + 2,000 samples): {(401 * step + 2000 * sample) / 60:.0f} min")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--windows", type=int, default=6)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--peer", action="store_true", help="the public PyTorch ENAS's configuration (issue 15)")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--profile", action="store_true", help="with --peer: a torch.profiler table of 2 shared steps")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.peer:
        peer(args.steps, args.samples, args.profile)
        return
    print(f"# {platform.machine()}, {args.threads} threads, torch {torch.__version__}")
    space = ENASRNNSpace()
    published = space.from_arc(PUBLISHED_ARC)
    rng = random.Random(0)
    g = torch.Generator().manual_seed(0)
    print("| model | hidden | batch | train tok/s shared (new cell per window) | train tok/s shared (published cell) "
          "| train tok/s standalone | standalone/shared | eval tok/s shared | eval tok/s standalone |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, H, B in CONFIGS:
        n = B * 35 * (args.windows + 1) + 1
        tokens = torch.randint(0, V, (n,), generator=g)
        corpus = Corpus([str(i) for i in range(V)], {}, tokens, tokens[:B * 35 * 4 + 1], tokens[:1])
        torch.manual_seed(0)
        shared = space.language_model(None, V, H, dropout=DROP)
        sampled = train_rate(shared, corpus, B, args.windows, lambda: space.random(rng))
        fixed = train_rate(shared, corpus, B, args.windows, lambda: published)
        child = space.language_model(published, V, H, dropout=DROP)
        child.cell.load_state_dict(space.child_from_shared(shared.cell, published).state_dict())
        alone = train_rate(child, corpus, B, args.windows)
        ev_s, ev_c = eval_rate(shared, corpus.valid, B, published), eval_rate(child, corpus.valid, B)
        print(f"| {name} | {H} | {B} | {sampled:,.0f} | {fixed:,.0f} | {alone:,.0f} | {alone / fixed:.2f} "
              f"| {ev_s:,.0f} | {ev_c:,.0f} |", flush=True)
    cfg = resolve(load_preset("enas-rnn"))
    strategy = build_strategy(cfg, build_space(cfg))
    strategy.propose(1)
    t0 = time.perf_counter()
    for _ in range(50):
        strategy.propose(1)
    print(f"controller: {1000 * (time.perf_counter() - t0) / 50:.1f} ms to sample one cell (enas-rnn preset)")


if __name__ == "__main__":
    main()
