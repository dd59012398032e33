"""Mutation testing of the modules that carry the algorithms, with mutmut (docs/testing.md).

mutmut (chosen over cosmic-ray by measuring, docs/testing.md) rewrites each function of the
named modules into many small variants ("mutants": ``+`` for ``-``, ``<`` for ``<=``, a
constant changed, an argument dropped) and runs, for each, the tests that reach that function
(forked from one warm process). A mutant the tests do not notice "survives". This script runs
it on a copy of the tracked tree (so ``mutants/`` never lands in the repo), then prints each
module's counts and every survivor with its diff, and writes OUT.json.

    python benchmarks/mutate.py                                # every module of [tool.mutmut]
    python benchmarks/mutate.py --only 'torchnas.controller*'  # mutant-name patterns (fnmatch)
    python benchmarks/mutate.py --keep /tmp/mut                # keep the work copy (mutmut browse there)
    python benchmarks/mutate.py --only 'torchnas.nn.ops*' --tests tests/test_reference_maths.py tests/test_layers.py

Needs the ``mutate`` extra (``pip install -e '.[mutate]'``). The modules and the test files it
runs are in pyproject.toml's ``[tool.mutmut]``. Not part of CI: it takes tens of minutes.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", None: "not checked"}


def copy_tree(dst: Path) -> None:
    files = subprocess.check_output(["git", "ls-files", "-co", "--exclude-standard"], cwd=HERE, text=True).split()
    for f in files:
        if (HERE / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(HERE / f, dst / f)


def results(work: Path) -> dict[str, dict]:
    """``{mutant name: {"status", "module", "function"}}`` from mutmut's .meta files."""
    out = {}
    for meta in sorted((work / "mutants").rglob("*.py.meta")):
        for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            module, _, rest = key.partition(".x")          # torchnas.controller.xǁControllerǁ_run__mutmut_1
            function = rest.split("__mutmut_")[0]      # "ǁClassǁmethod", or "_" + a function's name
            if function.startswith("ǁ"):
                cls, _, fn = function[1:].partition("ǁ")
                function = f"{cls}.{fn}"
            else:
                function = function[1:]
            out[key] = {"status": STATUS.get(code, "suspicious"), "module": module, "function": function}
    return out


def diff(work: Path, mutmut: str, name: str) -> str:
    text = subprocess.run([mutmut, "show", name], cwd=work, capture_output=True, text=True).stdout
    return "\n".join(l for l in text.splitlines() if l.startswith(("-", "+")) and not l.startswith(("---", "+++")))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="*", default=[], help="mutant-name patterns, e.g. 'torchnas.controller*'")
    p.add_argument("--keep", help="work in this folder (kept) instead of a temporary one")
    p.add_argument("--out", default="runs/mutate.json")
    p.add_argument("--max-children", type=int, default=os.cpu_count() or 1)
    p.add_argument("--tests", nargs="+", metavar="FILE",
                   help="run these test files instead of [tool.mutmut]'s selection (a faster, narrower run)")
    args = p.parse_args()
    mutmut = shutil.which("mutmut", path=str(Path(sys.executable).parent)) or shutil.which("mutmut")
    if mutmut is None:
        print("mutate: mutmut is not installed; pip install -e '.[mutate]'", file=sys.stderr)
        return 2
    missing = [t for t in args.tests or [] if not (HERE / t).is_file()]
    if missing:
        print(f"mutate: no test file {', '.join(missing)}; give paths like tests/test_layers.py", file=sys.stderr)
        return 2
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="torchnas-mutate-"))
    work.mkdir(parents=True, exist_ok=True)
    copy_tree(work)
    if args.tests:
        toml = work / "pyproject.toml"
        text, n = re.subn(r"pytest_add_cli_args_test_selection = \[.*?\]",
                          "pytest_add_cli_args_test_selection = " + json.dumps(args.tests), toml.read_text(), flags=re.S)
        if n != 1:
            print("mutate: pyproject.toml has no [tool.mutmut] pytest_add_cli_args_test_selection", file=sys.stderr)
            return 2
        toml.write_text(text)
    env = {**os.environ, "TORCHNAS_DATA": os.environ.get("TORCHNAS_DATA") or str(HERE.parent / "shared" / "data"),
           # mutmut forks each mutant from one warm process: a forked child of a process whose
           # OpenMP pool is running can hang, so torch works on one thread (parallel: --max-children)
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    done = subprocess.run([mutmut, "run", "--max-children", str(args.max_children), *args.only], cwd=work, env=env,
                          stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    res = results(work)
    if done.returncode or not res or all(r["status"] == "not checked" for r in res.values()):
        print(f"mutate: mutmut failed (exit {done.returncode}) or checked nothing; see its output in {work} "
              f"(run with --keep to look)", file=sys.stderr)
        return 1
    if args.only:
        import fnmatch
        res = {k: v for k, v in res.items() if any(fnmatch.fnmatch(k, pat) for pat in args.only)}
    counts = collections.defaultdict(collections.Counter)
    for r in res.values():
        counts[r["module"]][r["status"]] += 1
    print(f"mutmut on {len(res)} mutants in {seconds / 60:.1f} min ({args.max_children} processes)")
    print("| module | mutants | killed | survived | timeout | no tests | other |")
    print("|---|---|---|---|---|---|---|")
    for module, c in sorted(counts.items()):
        other = sum(c.values()) - c["killed"] - c["survived"] - c["timeout"] - c["no tests"]
        print(f"| {module} | {sum(c.values())} | {c['killed']} | {c['survived']} | {c['timeout']} | "
              f"{c['no tests']} | {other} |")
    survivors = {k: {**v, "diff": diff(work, mutmut, k)} for k, v in res.items() if v["status"] != "killed"}
    for k, v in survivors.items():
        print(f"\n{v['status']}: {k}\n{v['diff']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"seconds": round(seconds), "counts": counts, "survivors": survivors},
                                         indent=1, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.out}" + (f"; work copy {work}" if args.keep else ""))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
