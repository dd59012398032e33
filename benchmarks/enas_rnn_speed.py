"""Tokens per second of the ENAS recurrent-cell language model on CPU: the shared-weight
model (a new cell sampled per window, as in the search) vs the standalone child of the same
cell, for training (forward, backward, SGD step with the reference's regularisers) and for
evaluation (exact perplexity).

    python benchmarks/enas_rnn_speed.py [--windows 6] [--threads 2]

Sizes: the enas-rnn-tiny preset (hidden 64, batch 64), the search preset (hidden 200, batch
128) and the final preset (hidden 800, batch 64). Windows are 35 tokens (fixed length), the
vocabulary is PTB's 10,000 words (random tokens: speed does not depend on the text). A ratio
shared/standalone near 1 means weight sharing costs nothing per token. The last line times
the enas-rnn preset's controller sampling one cell (what the search does per window).
"""
from __future__ import annotations

import argparse
import platform
import random
import time

import torch

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--windows", type=int, default=6)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
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
