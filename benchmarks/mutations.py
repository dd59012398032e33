"""Mutation check for the reference tests (issue 11, "Tests that catch a wrong algorithm").

Each mutation is a wrong algorithm that used to pass the test suite. This script copies the
repository to a temporary directory (without .venv, .git, runs and caches), checks that the
unmutated copy passes the chosen tests, then applies each mutation alone -- an exact text
substitution whose pattern must occur exactly once -- runs the tests against the copy
(PYTHONPATH=<copy>/src; ``test_torchnas_is_imported_from_the_expected_tree`` asserts that the
copy is what gets imported), restores the file, and prints a table. It exits non-zero if any
mutation survives (or cannot be applied, or the unmutated copy fails).

Usage: .venv/bin/python benchmarks/mutations.py [--only N] [--tests FILE ...] [--keep]
(``--only 7`` runs 7a and 7b; ``--only 7b`` only that one.)
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TESTS = ["tests/test_reference_maths.py", "tests/test_nb201_verdict.py"]

R = "src/torchnas/strategies/reinforce.py"
E = "src/torchnas/enas.py"
C = "src/torchnas/controller.py"
V = "src/torchnas/strategies/evolution.py"
T = "src/torchnas/evaluators/trainer.py"
L = "src/torchnas/training/language.py"
O = "src/torchnas/nn/ops.py"
N = "src/torchnas/spaces/enas_rnn.py"
TI = "src/torchnas/tasks/images.py"
TL = "src/torchnas/tasks/language.py"
NB = "src/torchnas/spaces/nb201.py"
WS = "src/torchnas/ws_rank.py"
DI = "src/torchnas/data/images.py"
TR = "src/torchnas/training/images.py"
SC = "src/torchnas/training/schedules.py"
MI = "src/torchnas/spaces/enas_micro.py"

# (id, description, file, old text, new text)
MUTATIONS = [
    ("1", "REINFORCE advantage R + b", R,
     "            advantage = rewards - self.baseline\n",
     "            advantage = rewards + self.baseline\n"),
    ("2", "entropy bonus logged, not in the gradient's reward", R,
     "        rewards = rewards + self.entropy_weight * entropies.detach()\n"
     "        mean_reward = rewards.mean().item()\n",
     "        mean_reward = (rewards + self.entropy_weight * entropies.detach()).mean().item()\n"),
    ("3", "ENAS shared phase: one architecture per epoch", E,
     "        return lambda n: self.strategy.propose(n)\n",
     "        return lambda n: self.strategy.propose(1) * n\n"),
    ("3b", "ENAS warm-up: one random architecture per epoch", E,
     "            return lambda n: [self.space.random(rng) for _ in range(n)]\n",
     "            return lambda n: [self.space.random(rng)] * n\n"),
    ("3c", "ENAS language model: one cell per epoch", TL,
     "        out = self.training.train_epoch(lambda: sample(1)[0])\n",
     "        cell = sample(1)[0]\n        out = self.training.train_epoch(lambda: cell)\n"),
    ("4", "reward does not freeze BN running statistics", TI,
     "                with frozen_bn_stats(self.net):\n",
     "                with contextlib.nullcontext():\n"),
    ("5", "controller entropy = -log p(sampled value)", C,
     "    ent = -(logp_all.exp() * logp_all).sum(-1)\n",
     "    ent = -lp\n"),
    ("6", "per-sample baseline used before its update", R,
     "                self.baseline = r if self.baseline is None else (\n"
     "                    self.baseline_decay * self.baseline + (1 - self.baseline_decay) * r)\n"
     "                advantage[i] = r - self.baseline\n",
     "                advantage[i] = r - (r if self.baseline is None else self.baseline)\n"
     "                self.baseline = r if self.baseline is None else (\n"
     "                    self.baseline_decay * self.baseline + (1 - self.baseline_decay) * r)\n"),
    ("7a", "evolution kills the worst, not the oldest", V,
     "                self.population.popleft()\n",
     "                self.population.remove(min(self.population, key=lambda member: member[1]))\n"),
    ("7b", "evolution tournament takes the minimum", V,
     "        parent = max(tournament, key=lambda member: member[1])[0]\n",
     "        parent = min(tournament, key=lambda member: member[1])[0]\n"),
    ("8", "child reward from the last epoch, not best of last 5", T,
     "        best_recent = max(accs[-self.last_k:])\n",
     "        best_recent = accs[-1]\n"),
    ("9", "perplexity tail restarts from a zero state", L,
     "        state = select_state(state, slice(B - 1, B))\n",
     "        state = model.init_state(1)\n"),
    ("10", "SepConv without its second ReLU", O,
     "            blocks.append(nn.Sequential(\n                nn.ReLU(),\n",
     "            blocks.append(nn.Sequential(\n                nn.ReLU() if r == 0 else nn.Identity(),\n"),
    ("11", "recurrent cell identity computed as ReLU", N,
     '"identity": lambda x: x}',
     '"identity": torch.relu}'),
    ("12", "macro controller: skip inputs not averaged into the next input", C,
     "                        inp = (chosen.unsqueeze(1) @ content).squeeze(1) / (1 + chosen.sum(1, keepdim=True))\n",
     "                        pass   # the next input stays g_emb\n"),
    ("12b", "macro controller: skip inputs divided by |S|, not 1 + |S|", C,
     "                        inp = (chosen.unsqueeze(1) @ content).squeeze(1) / (1 + chosen.sum(1, keepdim=True))\n",
     "                        inp = (chosen.unsqueeze(1) @ content).squeeze(1) / chosen.sum(1, keepdim=True).clamp(min=1)\n"),
    # issue 27 item 11: plausible one-line bugs in the newest modules
    ("13", "NB201 cell: every edge reads the node before its own", NB,
     "        terms = [op(nodes[j]) for e, (to, j) in enumerate(EDGES) if to == i\n",
     "        terms = [op(nodes[i - 1]) for e, (to, j) in enumerate(EDGES) if to == i\n"),
    ("14", "NB201 reduction block: stride 2 on the second convolution", NB,
     "        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)\n        self.conv_b = ReLUConvBN(c_out, c_out, 3)\n",
     "        self.conv_a = ReLUConvBN(c_in, c_out, 3)\n        self.conv_b = ReLUConvBN(c_out, c_out, 3, stride=2)\n"),
    ("15", "NB201 head: ReLU before BN", NB,
     "        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))\n",
     "        self.lastact = nn.Sequential(nn.ReLU(inplace=False), nn.BatchNorm2d(c))\n"),
    ("16", "ws-rank: correlations against the reversed column", WS,
     "    return clean(kendalltau(x, y).statistic), clean(spearmanr(x, y).statistic)\n",
     "    return clean(kendalltau(x, [-v for v in y]).statistic), clean(spearmanr(x, [-v for v in y]).statistic)\n"),
    ("17", "ws-rank: top-10 % hit rate taken at the bottom", WS,
     "    return set(sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k])\n",
     "    return set(sorted(range(len(scores)), key=lambda i: (scores[i], i))[:k])\n"),
    ("18", "ws-rank: each cell scored on batches of its own", WS,
     "    score = lambda a: sum(search.reward(a, b) for b in val) / len(val)\n",
     "    score = lambda a: sum(search.reward(a, search.valid_batch()) for b in val) / len(val)\n"),
    ("19", "NB201 percentile counts ties as below", NB,
     "    return round(100.0 * bisect_left(ranked, value) / len(ranked), 2)\n",
     "    return round(100.0 * bisect_right(ranked, value) / len(ranked), 2)\n"),
    ("20", "low-resolution proxy resampled bilinearly", DI,
     'F.interpolate(c.to(wide), size=(size, size), mode="area")',
     'F.interpolate(c.to(wide), size=(size, size), mode="bilinear")'),
    ("21", "ENAS reward minibatch augmented", TI,
     "        return self.training._input(self.data.valid_x[idx]), self.data.valid_y[idx].to(self.device)\n",
     "        return (self.training._input(self.training.augment(self.data.valid_x[idx], self.generator)),\n"
     "                self.data.valid_y[idx].to(self.device))\n"),
    ("22", "drop-path keep probability from step, not step + 1", TR,
     "                ratio = min(1.0, (self.step + 1) / self.total_steps)\n",
     "                ratio = self.step / self.total_steps\n"),
    ("23", "micro cell drops the identity's path too", MI,
     '                self.drop.append(ops[op] != "identity")',
     "                self.drop.append(True)"),
    ("24", "SGDR periods grow by t_mul epochs, not t_mul times", SC,
     "        t_i *= t_mul\n",
     "        t_i += t_mul\n"),
    ("25", "crop offsets never reach 2p", DI,
     "        oy, ox = torch.randint(0, 2 * p + 1, (2, b, 1),",
     "        oy, ox = torch.randint(0, 2 * p, (2, b, 1),"),
]

IGNORE = shutil.ignore_patterns(".venv", ".git", "runs", "__pycache__", ".pytest_cache", "*.egg-info", "*.pyc")


def copy_repo(dest: Path) -> Path:
    repo = dest / "repo"
    shutil.copytree(ROOT, repo, ignore=IGNORE)
    return repo


def env_for(repo: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(repo / "src") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"          # no stale .pyc for a same-size substitution
    env["TORCHNAS_EXPECT_SRC"] = str(repo / "src")
    env.setdefault("TORCHNAS_DATA", str(ROOT.parent / "shared" / "data"))
    return env


def check_import(repo: Path) -> None:
    out = subprocess.run([sys.executable, "-c", "import torchnas; print(torchnas.__file__)"], cwd=repo,
                         env=env_for(repo), capture_output=True, text=True, check=True).stdout.strip()
    if not Path(out).resolve().is_relative_to((repo / "src").resolve()):
        raise SystemExit(f"the copy is not what gets imported: torchnas from {out}")
    print(f"imports torchnas from {out}")


def run_tests(repo: Path, tests: list[str], timeout: int) -> tuple[int, list[str], str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *tests]
    try:
        p = subprocess.run(cmd, cwd=repo, env=env_for(repo), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, [], "timeout"
    out = p.stdout + p.stderr
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", out, re.M)
    summary = (out.strip().splitlines() or [""])[-1]
    return p.returncode, failed, summary


def apply(repo: Path, file: str, old: str, new: str) -> str:
    path = repo / file
    text = path.read_text()
    count = text.count(old)
    if count != 1:
        raise AssertionError(f"{file}: pattern occurs {count} times, expected exactly once:\n{old}")
    path.write_text(text.replace(old, new))
    assert path.read_text() != text
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", help="mutation id (e.g. 4, 7 for 7a and 7b, 7b); repeatable")
    ap.add_argument("--tests", nargs="+", default=DEFAULT_TESTS, help="test files to run (relative to the repo)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per pytest run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = ap.parse_args(argv)
    chosen = MUTATIONS
    if args.only:
        chosen = [m for m in MUTATIONS if any(m[0] == o or re.fullmatch(re.escape(o) + r"[a-z]", m[0])
                                              for o in args.only)]
        if not chosen:
            ap.error(f"no mutation matches {args.only}; ids: {', '.join(m[0] for m in MUTATIONS)}")
    tmp = Path(tempfile.mkdtemp(prefix="torchnas-mutations-"))
    try:
        repo = copy_repo(tmp)
        check_import(repo)
        # every pattern applies to the pristine sources, exactly once
        for mid, _, file, old, _ in chosen:
            n = (ROOT / file).read_text().count(old)
            if n != 1:
                raise SystemExit(f"mutation {mid}: pattern occurs {n} times in {file}, expected once")
        t0 = time.perf_counter()
        rc, failed, summary = run_tests(repo, args.tests, args.timeout)
        print(f"unmutated copy: {summary} ({time.perf_counter() - t0:.0f} s)")
        if rc != 0:
            print("the unmutated copy fails:", *failed, sep="\n  ")
            return 2
        rows, bad = [], 0
        for mid, desc, file, old, new in chosen:
            original = apply(repo, file, old, new)
            t0 = time.perf_counter()
            try:
                rc, failed, summary = run_tests(repo, args.tests, args.timeout)
            finally:
                (repo / file).write_text(original)
            killed = rc == 1 and bool(failed)
            if rc not in (0, 1):
                verdict = f"ERROR (pytest rc {rc})"
            else:
                verdict = "yes" if killed else "NO"
            if not killed:
                bad += 1
            first = failed[0].split("::", 1)[-1] if failed else "-"
            rows.append((mid, desc, verdict, f"{len(failed)}", first, f"{time.perf_counter() - t0:.0f}s"))
            print(f"  {mid}: {verdict} ({summary})", flush=True)
        head = ("#", "mutation", "killed", "fails", "first failing test", "time")
        widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
        line = lambda r: " | ".join(str(c).ljust(w) for c, w in zip(r, widths))
        print()
        print(line(head))
        print("-+-".join("-" * w for w in widths))
        for r in rows:
            print(line(r))
        print(f"\n{len(rows) - bad}/{len(rows)} mutations killed")
        return 1 if bad else 0
    finally:
        if args.keep:
            print(f"copy kept at {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
