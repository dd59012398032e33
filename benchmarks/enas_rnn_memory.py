"""Peak memory of the whole recurrent ENAS search at the public PyTorch peer's size, measured on
the ``torchnas search`` process a user runs (issue 27 item 8), not on a step.

    python benchmarks/enas_rnn_memory.py [--steps 8] [--src DIR] [--data-dir ../shared/data]

The peer's configuration (ENAS-pytorch's default recurrent search, as in ``enas_rnn_speed.py
--peer``): hidden = embedding = 1,000, 11 nodes, batch 64, BPTT 35, on Penn Treebank. The search
is the ``enas-rnn`` preset with those sizes, cut short so that it fits a CPU: one epoch of
``--steps`` shared steps (``enas.max_train_batches``), one controller update of 10 samples
(each a reward on a 64 x 35 validation window), a derive step of 10 candidates, and every
checkpoint a search writes. Windows are 35 tokens, as the peer trains; ``--variable-bptt`` draws
them as the ``enas-rnn`` preset does (enas_lm's sampler, up to 55 tokens: more activations). Every phase that holds the shared weights runs, so the peak is the
search's (a longer run repeats the same phases). Prints the process's peak resident memory
(``ru_maxrss`` of the child) and the goal (3 GB). ``--src``: run another tree's ``src`` (e.g. a
``git worktree`` of an older commit) to compare.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
PEER = ["space.num_nodes=11", "enas.net.hidden_size=1000", "enas.batch_size=64", "enas.bptt=35",
        "enas.epochs=1", "enas.train_steps=1", "enas.derive_samples=10"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=8, help="shared steps in the one epoch (default 8)")
    ap.add_argument("--src", type=Path, default=HERE / "src", help="the torchnas source tree to run")
    ap.add_argument("--data-dir", default=str(HERE.parent / "shared" / "data"))
    ap.add_argument("--variable-bptt", action="store_true",
                    help="windows of random length as the enas-rnn preset draws them (enas_lm: up to BPTT + 20); "
                         "default: fixed 35-token windows, as the peer trains")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(args.src.resolve())}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        settings = PEER + [f"enas.max_train_batches={args.steps}", f"enas.variable_bptt={str(args.variable_bptt).lower()}"]
        sets = [x for s in settings for x in ("--set", s)]
        cmd = [sys.executable, "-m", "torchnas", "search", "--preset", "enas-rnn", "--no-retrain", "--quiet",
               "--data-dir", args.data_dir, "--out", str(out), *sets]
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, cwd=tmp)
        top = {}                                   # phase -> highest resident memory seen in it
        while p.poll() is None:
            rss = _rss(p.pid)
            phase = _phase(out)
            top[phase] = max(top.get(phase, 0.0), rss)
            time.sleep(0.05)
        if p.returncode:
            raise SystemExit(f"the search failed (exit {p.returncode})")
        seconds = time.perf_counter() - t0
        checkpoint = (out / "checkpoint.pt").stat().st_size / 1e9
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9     # KiB -> GB
    print("highest resident memory sampled (every 50 ms) in each phase: "
          + ", ".join(f"{k} {v:.2f} GB" for k, v in top.items()))
    print(f"torchnas search, enas-rnn at the peer's size (hidden 1000, 11 nodes, batch 64, BPTT 35"
          f"{', windows of random length up to 55' if args.variable_bptt else ''}), "
          f"{args.steps} shared steps, 10 rewards, 10 derive candidates: {seconds:.0f} s")
    print(f"source: {args.src}")
    print(f"checkpoint.pt {checkpoint:.2f} GB; peak resident memory of the search process {peak:.2f} GB "
          f"(goal <= 3 GB: {'met' if peak <= 3 else 'missed'})")


def _rss(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return 0.0


def _phase(run: Path) -> str:
    """What the search is doing, from the files its run directory holds so far."""
    if (run / "figures").exists():
        return "figures"
    if (run / "derived.json").exists():
        return "after the derive step"
    if (run / "epochs.jsonl").exists():
        return "checkpoint and derive"
    if (run / "config.yaml").exists():
        return "shared training and controller"
    return "start-up (data, shared weights)"


if __name__ == "__main__":
    main()
