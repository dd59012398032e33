"""The README is tested (issue 14): every `torchnas ...` line of its Usage block runs here.

Each line runs as written, with three substitutions that keep the suite fast: a search gets
`--check` (settings, data and workers are built and checked; nothing is trained), a `train` gets
`--dry-run` (the network is built and counted), `bench nb201` runs 2 seeds instead of 100 and
`bench scale` 200 children a search instead of 12,800.
`PATH` is a data root with the shared CIFAR-10, NAS-Bench-201 table and Penn Treebank,
`my_images/` a small image folder, and `runs/RUN` a finished run of the line's space. The NB201
lines that make and resume `runs/rea` run in full (the table makes them fast). `bench ws-rank`
needs an ENAS run on CIFAR-10 and is only parsed here (tests/test_nb201_net.py runs it).
"""
import json
import random
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

from torchnas.cli import build_parser, main

from .conftest import SHARED, needs

README = Path(__file__).resolve().parents[1] / "README.md"
EXPECTED_ERRORS = {"executor.address=auto": r"no Ray cluster at executor.address='auto'"}   # no cluster here


def readme_commands() -> list[str]:
    text = README.read_text()
    block = text[text.index("## Usage"):]
    block = block[block.index("```bash") + 7:]
    block = block[:block.index("```")]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("torchnas ")]


def _run_of(line: str) -> str:
    return "runs/RUN_nb201" if "enas-nb201" in line else "runs/RUN_rnn" if "enas-rnn" in line else "runs/RUN_cnn"


def _adapted(line: str, root: Path) -> list[str]:
    args = shlex.split(line)[1:]
    args = [a.replace("runs/RUN", _run_of(line)).replace("PATH", str(root)) for a in args]
    if args[0] == "search" and not any("runs/rea" in a for a in args):
        args.append("--check")
    if args[0] == "train" and "--dry-run" not in args:
        args.append("--dry-run")
    if args[:2] == ["bench", "nb201"]:
        args[args.index("--seeds") + 1] = "2"
    if args[:2] == ["bench", "scale"]:
        args += ["--children", "200"]
    return args


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, shared_cifar):
    """A working folder with runs/RUN_* (one per space the README names), my_images/ and a
    data root; the tests run in it."""
    from PIL import Image
    from torchnas.config import load_preset, resolve
    from torchnas.spaces import space_from_config
    w = tmp_path_factory.mktemp("readme")
    root = w / "data"
    root.mkdir()
    (root / "cifar10").symlink_to(shared_cifar)
    for name in ("nasbench201", "ptb"):
        (root / name).symlink_to(SHARED / name)
    for k, cls in enumerate(("cats", "dogs")):
        (w / "my_images" / cls).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(np.full((8, 8, 3), 10 * i + 120 * k, np.uint8)).save(w / "my_images" / cls / f"{i}.png")
    assert main(["search", "--queries", "2", "--quiet", "--out", str(w / "runs/RUN_cnn"), "--set", "evaluator.epochs=1",
                 "--set", "evaluator.data.per_class=10", "--set", "train.epochs=1",
                 "--set", "strategies.reinforce.batch_size=2"]) == 0
    assert main(["search", "--preset", "nb201", "--queries", "5", "--quiet", "--data-dir", str(root),
                 "--out", str(w / "runs/RUN_nb201")]) == 0
    rnn = w / "runs/RUN_rnn"                      # a finished ENAS recurrent search, as far as train reads it
    rnn.mkdir()
    cfg = resolve(load_preset("enas-rnn-tiny"))
    (rnn / "config.yaml").write_text(yaml.safe_dump(cfg))
    arch = space_from_config(cfg["space"]).random(random.Random(0))
    (rnn / "best.json").write_text(json.dumps({"arch": str(arch), "reward": 0.1}))
    return w, root


@needs(SHARED / "ptb", "Penn Treebank")
@pytest.mark.parametrize("line", readme_commands())
def test_readme_command_runs(line, workdir, monkeypatch, capsys):
    w, root = workdir
    monkeypatch.chdir(w)
    monkeypatch.setenv("TORCHNAS_DATA", str(root))
    args = _adapted(line, root)
    if args[:2] == ["bench", "ws-rank"]:
        assert build_parser().parse_args(args).func.__name__ == "cmd_ws_rank"
        return
    try:
        code = main(args)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    expected = next((pattern for key, pattern in EXPECTED_ERRORS.items() if key in line), None)
    if expected:
        assert code == 2 and re.search(expected, err), err
    else:
        assert code == 0, f"{' '.join(args)}: {err}"


def test_the_usage_block_is_found():
    lines = readme_commands()
    assert len(lines) >= 25 and lines[0] == "torchnas search"
