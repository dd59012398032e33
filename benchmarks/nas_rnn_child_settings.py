"""Issue 30: how the tiny Zoph & Le children should train, chosen before any search ran.

    python benchmarks/nas_rnn_child_settings.py --data-dir DATA [--rows 0 5] [--json OUT]

Six random cells of the base-8 tree space (drawn with ``random.Random(123)``: no search seed, no
search) are each trained one epoch from scratch with the ``lm-trainer`` evaluator (hidden 32, two
layers, tied softmax, one thread) under each setting below; one row per setting prints their
validation perplexities. A reward needs children that leave the unigram model (about 700) and
differ from each other; docs/design.md ("The tiny children's training, fixed") reads the table.
"""
from __future__ import annotations

import argparse
import json
import random
import time

import torch

from torchnas.evaluators.lm_trainer import LMChildTrainer
from torchnas.spaces.nas_rnn import NASRNNSpace

# (train tokens, lr, grad clip, init range) per row, as docs/design.md lists them
SETTINGS = [
    (100_000, 20.0, 0.25, 0.3),          # the preset before the change
    (100_000, 1.0, 5.0, 0.1),            # Zaremba et al.'s medium model
    (100_000, 5.0, 0.25, 0.3),
    (100_000, 1.0, 5.0, 0.3),
    (100_000, 2.0, 0.25, 0.1),
    (300_000, 5.0, 0.25, 0.3),           # what nas-rnn-tiny uses
    (300_000, 20.0, 0.25, 0.3),
]


def row(data_dir: str, tokens: int, lr: float, clip: float, init: float, space, archs) -> list:
    ev = LMChildTrainer(space, data={"name": "ptb", "train_tokens": tokens, "data_dir": data_dir},
                        net={"hidden_size": 32, "num_layers": 2, "init_range": init},
                        epochs=1, lr=lr, grad_clip=clip, device="cpu")
    out = []
    for arch in archs:
        m = ev.evaluate(arch).metrics
        out.append(None if m.get("diverged") else m["valid_ppl"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--rows", type=int, nargs="*", default=list(range(len(SETTINGS))),
                    help="which settings (0-based rows of the table); default all")
    ap.add_argument("--json", help="write the rows here too")
    a = ap.parse_args()
    torch.set_num_threads(1)
    space = NASRNNSpace(base=8)
    rng = random.Random(123)
    archs = [space.random(rng) for _ in range(6)]
    print("| train tokens | lr, grad clip, init | validation perplexity of the six cells | seconds |")
    print("|---|---|---|---|")
    rows = []
    for i in a.rows:
        tokens, lr, clip, init = SETTINGS[i]
        t = time.perf_counter()
        ppl = row(a.data_dir, tokens, lr, clip, init, space, archs)
        secs = time.perf_counter() - t
        shown = ", ".join("diverged" if p is None else f"{p:,.0f}" if p < 1e6 else f"{p:.0e}".replace("e+", "e") for p in ppl)
        print(f"| {tokens:,} | {lr:g}, {clip:g}, ±{init:g} | {shown} | {secs:.0f} |", flush=True)
        rows.append({"tokens": tokens, "lr": lr, "grad_clip": clip, "init_range": init, "valid_ppl": ppl,
                     "seconds": secs})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
