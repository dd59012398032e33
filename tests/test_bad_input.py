"""Bad input (issue 13): every case exits 2 with one line on stderr that names the problem, no
traceback, and leaves the run directory absent (a new run) or byte-for-byte untouched (a resume).

Each case is ``(argv, pattern)``; in argv, ``{T}`` is the test's scratch folder (its fixtures are
made by :func:`scratch`) and ``{out}`` a run directory that must not come into being.
"""
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from torchnas.cli import main

SEARCH = ["search", "--quiet", "--no-retrain", "--out", "{out}"]
TRAIN = ["train", "--quiet", "--out", "{out}"]
ARCH = "nas-cnn:3,3,24,-"

CASES = [
    # presets, config files and --set
    (SEARCH + ["--preset", "nope"], r"unknown preset 'nope'"),
    (SEARCH + ["--config", "{T}/missing.yaml"], r"config file .*missing.yaml does not exist"),
    (SEARCH + ["--config", "{T}/empty.yaml"], r"empty.yaml must hold a mapping"),
    (SEARCH + ["--config", "{T}/broken.yaml"], r"broken.yaml is not valid YAML"),
    (SEARCH + ["--set", "evaluator.epochs"], r"must look like key.sub=value"),
    (SEARCH + ["--set", "colour=red"], r"unknown config keys \['colour'\]"),
    (SEARCH + ["--set", "evaluator.epochs=abc"], r"evaluator.epochs = 'abc': .*valid integer"),
    (SEARCH + ["--set", "evaluator.epochs=0"], r"evaluator.epochs = 0: .*greater than or equal to 1"),
    (SEARCH + ["--set", "evaluator.lr=.nan"], r"evaluator.lr = nan: .*finite number"),
    (SEARCH + ["--set", "evaluator.lr=-0.1"], r"evaluator.lr = -0.1: .*greater than 0"),
    (SEARCH + ["--set", "evaluator.lr=abc"], r"evaluator.lr = 'abc': .*valid number"),
    (SEARCH + ["--set", "evaluator.lrr=0.1"], r"evaluator.lrr is not a setting of evaluator 'trainer'; it takes: .*lr"),
    (SEARCH + ["--set", "evaluator.data.per_class=abc"], r"evaluator.data.per_class = 'abc'"),
    (SEARCH + ["--set", "evaluator.data.colour=1"], r"evaluator.data.colour is not a setting"),
    (SEARCH + ["--set", "evaluator.name=oracle"], r"unknown evaluator 'oracle'"),
    (SEARCH + ["--set", "strategies.reinforce.lr=abc"], r"^torchnas: error: strategies.reinforce.lr = 'abc': .*valid number"),
    (SEARCH + ["--set", "strategies.reinforce.lrr=0.1"], r"strategies.reinforce.lrr is not a setting of strategy 'reinforce'"),
    (SEARCH + ["--set", "strategies.reinforce.batch_size=0"], r"strategies.reinforce.batch_size = 0"),
    (SEARCH + ["--set", "strategies.reinforce.controller.hidden_size=-4"], r"strategies.reinforce.controller.hidden_size = -4"),
    (SEARCH + ["--set", "strategies.reinforce.controller.hiden=4"], r"strategies.reinforce.controller.hiden is not a setting"),
    (SEARCH + ["--set", "space.name=nope"], r"unknown search space 'nope'"),
    (SEARCH + ["--set", "space.layers=abc"], r"space.layers = 'abc'"),
    (SEARCH + ["--set", "space.colour=1"], r"space.colour is not a setting of space 'nas-cnn'"),
    (SEARCH + ["--set", "budget=abc"], r"budget = 'abc': must be a positive whole number"),
    (SEARCH + ["--set", "budget=true"], r"budget = True \(YAML reads yes/no/on/off as true/false\): must be"),
    (SEARCH + ["--set", "seed=1.5"], r"seed = 1.5: must be a whole number"),
    (SEARCH + ["--set", "seed=yes"], r"seed = True \(YAML reads yes/no/on/off as true/false\): must be a whole number"),
    (SEARCH + ["--set", "strategies=5"], r"strategies = 5: must be a section of settings per strategy name"),
    (SEARCH + ["--set", "strategies.reinforce=[1, 2]"], r"strategies = .*must be a section of settings per strategy"),
    (SEARCH + ["--set", "space=[1, 2]"], r"space = \[1, 2\]: must be a section"),
    (SEARCH + ["--set", "evaluator=trainer"], r"evaluator = 'trainer': must be a section"),
    (SEARCH + ["--set", "max_proposals=abc"], r"max_proposals = 'abc': must be a positive whole number"),
    (SEARCH + ["--set", "max_proposals=0"], r"max_proposals = 0: must be a positive whole number"),
    (SEARCH + ["--set", "max_proposals=true"], r"max_proposals = True .*: must be a positive whole number"),
    (SEARCH + ["--set", "retrain=maybe"], r"retrain = 'maybe': must be true or false"),
    (SEARCH + ["--set", "final=[a]"], r"final = \['a'\]: must be a name or null"),
    (SEARCH + ["--config", "{T}/list_section.yaml"], r"space = \['nb201'\]: must be a section"),
    (SEARCH + ["--config", "{T}/list.yaml"], r"list.yaml must hold a mapping of settings, not list"),
    (SEARCH + ["--set", "executor.backend=mpi"], r"executor backend must be 'local' or 'ray'"),
    (SEARCH + ["--set", "executor.colour=1"], r"executor takes workers"),
    (SEARCH + ["--set", "search.mode=fast"], r"search.mode = 'fast': input should be 'sync' or 'async'"),
    (SEARCH + ["--set", "search.replicas=4"], r"search.replicas = 4: replicas in flight need search.mode: async"),
    (SEARCH + ["--set", "search.replicas=yes"], r"search.replicas = True: expected a number"),
    (SEARCH + ["--set", "search.finish=cancel"], r"search.finish = cancel: a synchronous search has no child in flight"),
    (SEARCH + ["--set", "search.mode=async", "--set", "search.finish=soon"],
     r"search.finish = 'soon': input should be 'drain' or 'cancel'"),
    (SEARCH + ["--set", "search=5"], r"search = 5: must be a section"),
    (SEARCH + ["--set", "executor.backend=ray", "--set", "executor.address=127.0.0.1:1"],
     r"no Ray cluster at executor.address='127.0.0.1:1'.*ray start --head"),
    (SEARCH + ["--set", "train.epochs=-3"], r"train.epochs = -3"),
    (SEARCH + ["--set", "train.lrr=0.1"], r"train.lrr is not a setting"),
    (SEARCH + ["--preset", "enas-micro-tiny", "--set", "enas.epochs=abc"], r"enas.epochs = 'abc'"),
    (SEARCH + ["--preset", "enas-micro-tiny", "--set", "enas.epoch=3"], r"enas.epoch is not a setting of ENAS"),
    (SEARCH + ["--preset", "enas-micro-tiny", "--set", "enas.lr_max=.inf"], r"enas.lr_max = inf"),
    (SEARCH + ["--preset", "enas-micro-tiny", "--set", "enas.net.channels=abc"], r"enas.net.channels = 'abc'"),
    (SEARCH + ["--preset", "enas-micro-tiny", "--data", "digits", "--queries", "5"], r"--queries is a search's budget.*enas.epochs"),
    # command-line options
    (SEARCH + ["--queries", "0"], r"--queries 0: the budget must be a positive whole number"),
    (SEARCH + ["--queries", "-5"], r"--queries -5: the budget must be a positive whole number"),
    (SEARCH + ["--seed", "abc"], r"argument --seed: invalid int value: 'abc'"),
    (SEARCH + ["--colour", "red"], r"unrecognized arguments: --colour"),
    (SEARCH + ["--workers", "0"], r"--workers .* from 1 to"),
    (SEARCH + ["--workers", "100000"], r"--workers .* from 1 to"),
    (SEARCH + ["--strategy", "ppo"], r"unknown strategy 'ppo'"),
    (["search", "--quiet", "--out", "{T}/a_file"], r"is a file, not a folder"),
    (["search", "--quiet", "--out", "{T}/a_file/sub"], r"cannot write the run folder"),
    (["search", "--quiet", "--out", "/proc/torchnas-x"], r"cannot write the run folder"),
    # data
    (SEARCH + ["--data", "imagenet"], r"--data 'imagenet': choose digits, cifar10, folder"),
    (SEARCH + ["--data", "folder"], r"--data folder needs --data-dir"),
    (SEARCH + ["--data", "folder", "--data-dir", "{T}/missing"], r"missing"),
    (SEARCH + ["--data", "folder", "--data-dir", "{T}/empty_dir"], r"empty_dir"),
    (SEARCH + ["--data", "folder", "--data-dir", "{T}/one_class"], r"one_class.*(one class|2 classes|two classes)"),
    (SEARCH + ["--data", "cifar10", "--data-dir", "{T}/empty_dir"], r"CIFAR-10|cifar-10"),
    (SEARCH + ["--data", "cifar10", "--data-dir", "{T}/bad_cifar"], r"bad_cifar.*not a CIFAR-10 pickle"),
    (SEARCH + ["--preset", "nb201", "--data-dir", "{T}/empty_dir"], r"nb201_12epoch.csv"),
    (SEARCH + ["--preset", "enas-rnn-tiny", "--data-dir", "{T}/empty_dir"], r"ptb"),
    # resuming
    (["search", "--resume", "{T}/missing"], r"not a run directory"),
    (["search", "--resume", "{T}/run_empty_config"], r"config.yaml"),
    (["search", "--resume", "{T}/run_broken_config"], r"config.yaml"),
    (["search", "--resume", "{T}/run_unknown_key"], r"colour"),
    (["search", "--resume", "{T}/run", "--seed", "7"], r"--seed would change it"),
    (["search", "--resume", "{T}/run", "--set", "strategies.reinforce.lr=99"], r"--set would change it"),
    (["search", "--resume", "{T}/run", "--queries", "1"], r"--queries 1: .*already evaluated 2"),
    (["search", "--resume", "{T}/run_data_moved", "--queries", "5"], r"gone"),     # config.yaml left as it was
    (SEARCH + ["--config", "{T}/empty_dir"], r"config file .*empty_dir is a folder; give a YAML file"),
    (SEARCH + ["--config", "{T}/latin1.yaml"], r"config file .*latin1.yaml is not UTF-8 text"),
    (TRAIN + ["--arch", "{T}/no_such_run/best.json", "--dry-run"], r"--arch .*no_such_run/best.json: no such run folder"),
    (SEARCH + ["--config", "{T}/dup.yaml"], r"duplicate key 'seed' \(first on line 3\): keep one of them"),
    (["train", "--resume", "{T}/run"], r"not a retraining run"),
    (["search", "--resume", "{T}/run_line_copied"],
     r"evaluations.jsonl: line 3 has query 2 where 3 belongs, .*edited or damaged .*--repair"),
    (["train", "--resume", "{T}/retrain_copied"], r"history.jsonl: line 2 has epoch 1 where 2 belongs: the log "
                                                  r"was edited or damaged"),
    (["search", "--resume", "{T}/run_line_copied", "--queries", "4"], r"line 3 has query 2 where 3 belongs"),
    # retraining
    (TRAIN + ["--arch", ARCH, "--epochs", "-3"], r"train.epochs = -3"),
    (TRAIN + ["--arch", ARCH, "--set", "train.lr=abc"], r"train.lr = 'abc'"),
    (TRAIN + ["--arch", ARCH, "--set", "train.lr=.nan"], r"train.lr = nan"),
    (TRAIN + ["--arch", ARCH, "--set", "final_net.channels=8"], r"final_net.channels is not a setting"),
    (TRAIN + ["--arch", ARCH, "--epochs", "1", "--set", "train.lr=1e6"], r"training diverged: .*lower train.lr"),
    (TRAIN + ["--arch", "nas-cnn:3,3,99,-"], r"layer0.nf"),
    (TRAIN + ["--arch", "foo:1,2,3"], r"unknown search space 'foo'"),
    (TRAIN + ["--arch", "foo:1,2,3", "--dry-run"], r"unknown search space 'foo'"),
    (TRAIN + ["--arch", "nb201:none", "--dry-run"], r"nb201"),
    (TRAIN + ["--arch", ARCH, "--set", "train.lr=-1", "--dry-run"], r"train.lr = -1: .*greater than 0"),
    (TRAIN + ["--preset", "enas-rnn-final", "--set", "train.bptt_sampler=gauss", "--dry-run"],
     r"train.bptt_sampler = 'gauss': input should be 'awd-lstm' or 'enas-lm'"),
    (SEARCH + ["--preset", "enas-micro-tiny", "--set", "enas.aux_train_head=maybe"], r"enas.aux_train_head = 'maybe'"),
    (TRAIN + ["--arch", "{T}/garbage_run/best.json"], r"garbage_run/best.json"),
    (TRAIN, r"needs --arch"),
    (TRAIN + ["--arch", ARCH, "--device", "gpu7"], r"--device 'gpu7': choose auto, cpu, cuda"),
    (SEARCH + ["--device", "cuda:3"] if not __import__("torch").cuda.is_available() else SEARCH + ["--device", "cuda:99"],
     r"--device 'cuda:(3|99)': this machine has"),
    (SEARCH + ["--preset", "nb201", "--device", "cpu"], r"--device chooses where networks train"),
    (["search", "--resume", "{T}/run", "--device", "gpu7"], r"--device 'gpu7': choose"),
    # a device written as a setting is named by that setting
    (SEARCH + ["--set", "evaluator.device=gpu7"], r"^torchnas: error: evaluator.device 'gpu7': choose auto, cpu"),
    (SEARCH + ["--set", "strategies.reinforce.device=gpu7"], r"^torchnas: error: strategies.reinforce.device 'gpu7': choose"),
    (SEARCH + ["--preset", "enas-micro-tiny", "--set", "enas.device=gpu7"], r"^torchnas: error: enas.device 'gpu7': choose"),
    (TRAIN + ["--arch", ARCH, "--set", "train.device=gpu7", "--dry-run"], r"^torchnas: error: train.device 'gpu7': choose"),
    (SEARCH + ["--set", "evaluator.epochs=yes"], r"evaluator.epochs = True: expected a number"),
    (SEARCH + ["--workers", "many"], r"--workers: expected a whole number or 'auto', got 'many'"),
    (SEARCH + ["--set", "executor.threads=2"], r"executor.threads goes with a number of workers; 'auto' chooses both"),
    # show, export, bench
    (["show", "{T}/garbage_run"], r"garbage_run/best.json"),
    (["show", "{T}/missing"], r"neither a run directory nor an architecture"),
    (["show", "nb201:none"], r"nb201"),
    (["export", "{T}/missing"], r"missing"),
    (["export", "{T}/run", "--format", "pdf"], r"invalid choice: 'pdf'"),
    (["bench", "nb201", "--strategy", "reinforce", "--queries", "0"], r"budget = 0: must be a positive whole number"),
    (["bench", "nb201", "--strategy", "random", "--workers", "0"], r"--workers: expected a whole number >= 1, got 0"),
    (["bench", "nb201", "--strategy", "random", "--seeds", "-2"], r"--seeds: expected a whole number >= 1, got -2"),
    (["bench", "nb201", "--strategy", "random", "--preset", "nas-cnn-tiny"],
     r"bench nb201 runs searches against the NAS-Bench-201 table; preset 'nas-cnn-tiny' evaluates with 'trainer'"),
    (["bench", "nb201", "--strategy", "random", "--preset", "enas-nb201-tiny"],
     r"preset 'enas-nb201-tiny' is an ENAS search"),
    (["bench", "nb201", "--strategy", "random", "--set", "space.name=nas-cnn"],
     r"preset 'nb201' searches space 'nas-cnn', which has none \(use a NAS-Bench-201 preset"),
    (["bench", "nb201", "--strategy", "random", "--out", "{T}"], r"--out .*: is a folder; give a file name"),
    (["bench", "nb201", "--strategy", "random", "--out", "{T}/a_file/x.json"], r"--out .*a_file is a file, not a folder"),
    (["bench", "ws-rank", "{T}/run", "--samples", "0"], r"--samples: expected a whole number >= 1, got 0"),
    (["show", "{T}/run", "--top", "-3"], r"--top: expected a whole number >= 1, got -3"),
    (SEARCH + ["--out", "{T}/" + "x" * 300], r"File name too long \(use a shorter name\)"),
    (SEARCH + ["--config", "{T}/" + "x" * 300 + ".yaml"], r"File name too long"),
    (["bench", "ws-rank", "{T}/run"], r"not an ENAS run|ENAS"),
    # another job's files in a run's folder (issue 27, item 3)
    (["search", "--resume", "{T}/run_foreign_checkpoint", "--queries", "3"],
     r"run_foreign_checkpoint/checkpoint.pt is the checkpoint of a network's training, not of a search"),
    (["train", "--resume", "{T}/retrain_foreign_checkpoint"],
     r"retrain_foreign_checkpoint/checkpoint.pt is the checkpoint of a search .*, not of a network's training"),
    (["search", "--resume", "{T}/run_misfit_checkpoint", "--queries", "3"],
     r"run_misfit_checkpoint/checkpoint.pt does not fit this run's settings \(KeyError: 'strategy'\)"),
    (["search", "--resume", "{T}/retrain_copied"], r"is a retraining run: continue it with torchnas train --resume"),
]


def _png(path: Path, value: int) -> None:
    from PIL import Image
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """The fixtures the cases name: files, data folders and run directories (good and broken)."""
    t = tmp_path_factory.mktemp("bad")
    (t / "a_file").write_text("x")
    (t / "empty.yaml").write_text("")
    (t / "broken.yaml").write_text("space: [nb201\n")
    (t / "list_section.yaml").write_text("space: [nb201]\nevaluator: {name: nb201}\n")
    (t / "list.yaml").write_text("- space\n- evaluator\n")
    (t / "empty_dir").mkdir()
    (t / "one_class" / "cat").mkdir(parents=True)
    for i in range(4):
        _png(t / "one_class" / "cat" / f"{i}.png", 40 * i)
    cifar = t / "bad_cifar" / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (cifar / name).write_bytes(b"not a pickle")
    # a real (tiny) search run to resume; config-only run directories for the broken ones
    assert main(["search", "--queries", "2", "--quiet", "--no-retrain", "--out", str(t / "run"),
                 "--set", "evaluator.epochs=1", "--set", "evaluator.data.per_class=10",
                 "--set", "strategies.reinforce.batch_size=2"]) == 0
    cfg = yaml.safe_load((t / "run" / "config.yaml").read_text())
    for name, text in [("run_empty_config", ""), ("run_broken_config", "space: [\n"),
                       ("run_unknown_key", yaml.safe_dump({**cfg, "colour": "red"}))]:
        (t / name).mkdir()
        (t / name / "config.yaml").write_text(text)
    moved = t / "run_data_moved"                 # a finished run whose data folder is gone
    shutil.copytree(t / "run", moved)
    (moved / "config.yaml").write_text(yaml.safe_dump(
        {**cfg, "evaluator": {**cfg["evaluator"], "data": {"name": "folder", "path": str(t / "gone")}}}))
    copied = t / "run_line_copied"              # a line of evaluations.jsonl repeated by hand
    shutil.copytree(t / "run", copied)
    evals = (copied / "evaluations.jsonl").read_text().splitlines(keepends=True)
    (copied / "evaluations.jsonl").write_text("".join(evals + evals[-1:]))
    assert main(["train", "--arch", ARCH, "--epochs", "2", "--quiet", "--out", str(t / "retrain_copied"),
                 "--set", "train.max_batches=2"]) == 0
    history = (t / "retrain_copied" / "history.jsonl").read_text().splitlines(keepends=True)
    (t / "retrain_copied" / "history.jsonl").write_text("".join(history[:1] + history))
    (t / "retrain_copied" / "result.json").unlink()       # as if killed before its result was written
    foreign = t / "run_foreign_checkpoint"      # a search whose checkpoint is a retraining's
    shutil.copytree(t / "run", foreign)
    shutil.copy(t / "retrain_copied" / "checkpoint.pt", foreign / "checkpoint.pt")
    foreign = t / "retrain_foreign_checkpoint"  # and the other way round
    shutil.copytree(t / "retrain_copied", foreign)
    (foreign / "history.jsonl").write_text("".join(history))           # its log as written
    shutil.copy(t / "run" / "checkpoint.pt", foreign / "checkpoint.pt")
    misfit = t / "run_misfit_checkpoint"        # a search checkpoint without its strategy
    shutil.copytree(t / "run", misfit)
    state = torch.load(misfit / "checkpoint.pt", weights_only=False)
    del state["strategy"]
    torch.save(state, misfit / "checkpoint.pt")
    (t / "latin1.yaml").write_bytes("seed: 1  # r\xe9sum\xe9\n".encode("latin-1"))
    (t / "dup.yaml").write_text("space: {name: nb201}\nevaluator: {name: nb201}\nseed: 1\nseed: 2\n")
    garbage = t / "garbage_run"
    garbage.mkdir()
    (garbage / "config.yaml").write_text(yaml.safe_dump(cfg))
    (garbage / "best.json").write_text("{not json")
    return t


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("argv, pattern", CASES, ids=[" ".join(a[1:] if a[0] == "search" else a)[:60] for a, _ in CASES])
def test_bad_input_is_one_clear_line(argv, pattern, scratch, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCHNAS_DATA", str(scratch / "empty_dir"))
    out = tmp_path / "new_run"
    args = [a.replace("{T}", str(scratch)).replace("{out}", str(out)) for a in argv]
    before = _snapshot(scratch)
    try:
        code = main(args)
    except SystemExit as e:                 # argparse's usage errors
        code = e.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), (pattern, lines[0])
    assert not out.exists(), f"{out} was written: {sorted(p.name for p in out.iterdir())}"
    assert _snapshot(scratch) == before, "a fixture was changed"


def test_a_diverging_retraining_leaves_the_search_and_no_half_made_retraining(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--queries", "2", "--quiet", "--out", str(out), "--set", "evaluator.epochs=1",
                 "--set", "evaluator.data.per_class=10", "--set", "strategies.reinforce.batch_size=2",
                 "--set", "train.lr=1e30", "--set", "train.epochs=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training diverged" in err[0], err
    assert len((out / "evaluations.jsonl").read_text().splitlines()) == 2      # the search is kept
    assert not (out / "retrain").exists() and not (out / ".owner").exists()


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40


def test_a_garbage_best_json_is_named(scratch):
    """The fixture really is garbage (so the show case above tests what it says)."""
    with pytest.raises(json.JSONDecodeError):
        json.loads((scratch / "garbage_run" / "best.json").read_text())


def _refuse(monkeypatch, name: str, err: int):
    """Every open of a file called ``name`` (a name starting with a dot: every file whose name
    starts so, such as the temp files a file is written through) fails as the system would with
    errno ``err`` (a root user, as CI may be, is never refused by chmod, so it is injected)."""
    import builtins
    import os
    real_open, real_os_open = builtins.open, os.open

    def refused(path):
        if Path(path).name == name or (name.startswith(".") and Path(path).name.startswith(name)):
            raise OSError(err, os.strerror(err), str(path))

    def fake_open(file, *a, **k):
        if isinstance(file, (str, Path)):
            refused(file)
        return real_open(file, *a, **k)

    def fake_os_open(path, *a, **k):
        refused(path)
        return real_os_open(path, *a, **k)
    import io
    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)              # what pathlib's read_text opens with
    monkeypatch.setattr(os, "open", fake_os_open)


@pytest.mark.parametrize("argv, name, err, pattern", [
    (SEARCH + ["--config", "{T}/ok.yaml"], "ok.yaml", "EACCES", r"ok.yaml: Permission denied \(check its permissions"),
    (["search", "--resume", "{T}/run", "--queries", "3"], "config.yaml", "EACCES",
     r"run/config.yaml: Permission denied"),
    (["search", "--resume", "{T}/run", "--queries", "3"], ".lock", "EACCES", r"run/.lock: Permission denied"),
    (["show", "{T}/run"], "best.json", "EACCES", r"run/best.json: Permission denied"),
    (["search", "--resume", "{T}/run", "--queries", "3", "--no-retrain"], ".config.yaml.tmp", "ENOSPC",
     r"run/.config.yaml.tmp\d+: No space left on device \(free some space or write elsewhere"),
])
def test_the_file_system_saying_no_is_one_line_naming_the_file(argv, name, err, pattern, scratch, tmp_path, capsys,
                                                               monkeypatch):
    """Issue 27, item 3: permission denied on a config, a run, its lock; a full disk."""
    import errno
    (scratch / "ok.yaml").write_text("space: {name: nas-cnn}\n")
    out = tmp_path / "new_run"
    args = [a.replace("{T}", str(scratch)).replace("{out}", str(out)) for a in argv]
    before = _snapshot(scratch)
    _refuse(monkeypatch, name, getattr(errno, err))
    code = main(args)
    monkeypatch.undo()
    err_text = capsys.readouterr().err
    lines = [line for line in err_text.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err_text, err_text
    assert re.search(pattern, lines[0]), (pattern, lines[0])
    assert not out.exists() and _snapshot(scratch) == before


def test_a_full_disk_mid_search_stops_it_in_one_line_and_it_resumes_to_the_same_run(tmp_path, capsys, monkeypatch):
    """The disk fills mid-search (the fourth file written whole, best.json after the second
    child, cannot be synced): one line, exit 2, nothing half-written left (no temp file); with
    space again, ``--resume`` ends where an uninterrupted run ends."""
    import errno
    import os
    from torchnas import runs
    args = ["--queries", "4", "--quiet", "--no-retrain", "--set", "evaluator.epochs=1",
            "--set", "evaluator.data.per_class=10", "--set", "strategies.reinforce.batch_size=2"]
    assert main(["search", "--out", str(tmp_path / "ref")] + args) == 0
    real, calls = os.fsync, {"n": 0}

    def full(fd):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)
    monkeypatch.setattr(runs.os, "fsync", full)
    assert main(["search", "--out", str(tmp_path / "run")] + args) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device (free some space" in err[0], err
    assert not [p for p in (tmp_path / "run").iterdir() if ".tmp" in p.name]
    assert 0 < len((tmp_path / "run" / "evaluations.jsonl").read_text().splitlines()) < 4     # mid-search
    assert main(["search", "--resume", str(tmp_path / "run"), "--quiet"]) == 0
    lines = lambda r: [{k: json.loads(x)[k] for k in ("query", "arch", "reward")}
                       for x in (tmp_path / r / "evaluations.jsonl").read_text().splitlines()]
    assert lines("run") == lines("ref")


def test_torchnas_debug_shows_the_traceback(monkeypatch):
    """The one-line refusal is for users; ``TORCHNAS_DEBUG=1`` raises instead, for a bug report."""
    assert main(["search", "--preset", "nope", "--quiet"]) == 2
    monkeypatch.setenv("TORCHNAS_DEBUG", "1")
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        main(["search", "--preset", "nope", "--quiet"])
