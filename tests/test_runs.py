import json
import re

import pytest

from torchnas.evaluators import Evaluation, Evaluator
from torchnas.runs import RunDir, RunError
from torchnas.search import Search
from torchnas.spaces import NB201Space
from torchnas.strategies import STRATEGIES, make_strategy


class Crash(Exception):
    pass


class Synthetic(Evaluator):
    """A deterministic reward over NB201 with structure to learn; can crash after k calls."""

    def __init__(self, crash_after=None):
        self.calls, self.crash_after = 0, crash_after

    def evaluate(self, arch):
        if self.crash_after is not None and self.calls >= self.crash_after:
            raise Crash()
        self.calls += 1
        r = sum(v == 3 for v in arch.values) / 6 + 0.01 * arch.values[0]
        return Evaluation(r, {"x": float(sum(arch.values))})


def _search(name, run_dir=None, crash_after=None, budget=30, every=0.0):
    space = NB201Space()
    kw = {"batch_size": 4, "lr": 0.01} if name == "reinforce" else {}
    return Search(space, make_strategy(name, space, seed=5, **kw), Synthetic(crash_after), budget,
                  run_dir=run_dir, checkpoint_every=every)


def _log(run):
    return [(r["arch"], r["reward"], r["query"]) for r in run.records(RunDir.EVALS)]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@pytest.mark.parametrize("crash_after, every", [(1, 0.0), (7, 0.0), (18, 0.0), (29, 0.0), (13, 1e9)])
def test_resumed_run_equals_uninterrupted(tmp_path, name, crash_after, every):
    """every=1e9: no checkpoint before the crash, so everything is replayed from the log."""
    ref = RunDir(tmp_path / "ref").create({"test": 1})
    _search(name, ref).resume().run()
    run = RunDir(tmp_path / "run").create({"test": 1})
    with pytest.raises(Crash):
        _search(name, run, crash_after, every=every).resume().run()
    assert len(_log(run)) == crash_after
    with open(run.path / RunDir.EVALS, "a") as f:     # a write torn by the kill
        f.write('{"query": 99, "arch": "nb2')
    result = _search(name, run).resume().run()
    assert _log(run) == _log(ref)
    assert len(result.evaluations) == len(_log(ref)) > crash_after
    assert run.records(RunDir.STEPS) == ref.records(RunDir.STEPS)
    assert run.read_json(RunDir.BEST)["arch"] == ref.read_json(RunDir.BEST)["arch"]


def test_crash_between_step_log_and_checkpoint(tmp_path, monkeypatch):
    ref = RunDir(tmp_path / "ref").create({})
    _search("reinforce", ref).resume().run()
    run = RunDir(tmp_path / "run").create({})
    calls = {"n": 0}
    real = RunDir.save_checkpoint

    def flaky(self, state, kind):
        calls["n"] += 1
        if calls["n"] == 4:
            raise Crash()
        real(self, state, kind)
    monkeypatch.setattr(RunDir, "save_checkpoint", flaky)
    with pytest.raises(Crash):
        _search("reinforce", run).resume().run()
    monkeypatch.setattr(RunDir, "save_checkpoint", real)
    assert len(run.records(RunDir.STEPS)) == 4      # one step line beyond the checkpoint
    _search("reinforce", run).resume().run()
    assert _log(run) == _log(ref)
    assert run.records(RunDir.STEPS) == ref.records(RunDir.STEPS)


def test_finished_run_resumes_to_nothing_and_can_extend(tmp_path):
    run = RunDir(tmp_path / "run").create({})
    _search("evolution", run).resume().run()
    again = _search("evolution", run).resume()
    assert len(again.run().evaluations) == 30
    extended = _search("evolution", run, budget=40).resume().run()
    assert len(extended.evaluations) == 40 and len(_log(run)) == 40


def test_run_dir_errors(tmp_path):
    run = RunDir(tmp_path / "r").create({"a": 1})
    with pytest.raises(RunError, match="already holds a run"):
        RunDir(tmp_path / "r").create({"a": 1})
    with pytest.raises(RunError, match="not a run directory"):
        RunDir(tmp_path / "empty").config()
    (run.path / RunDir.CHECKPOINT).write_bytes(b"garbage")
    with pytest.raises(RunError, match="unreadable"):
        run.load_checkpoint("search")


def test_logs_are_json_lines_with_the_documented_fields(tmp_path):
    run = RunDir(tmp_path / "r").create({})
    _search("reinforce", run, budget=8).resume().run()
    recs = run.records(RunDir.EVALS)
    assert [r["query"] for r in recs] == list(range(1, 9))
    for r in recs:
        assert {"arch", "reward", "metrics", "time_s", "elapsed_s"} <= set(r)
        NB201Space().parse(r["arch"])
    steps = run.records(RunDir.STEPS)
    assert steps and {"loss", "baseline", "entropy", "reward"} <= set(steps[0])
    best = json.loads((run.path / RunDir.BEST).read_text())
    assert best["reward"] == max(r["reward"] for r in recs)


def test_a_damaged_log_refuses_to_resume_and_is_left_as_it_was(tmp_path):
    """A corrupted line in the middle of evaluations.jsonl: resume names the file and stops,
    and the log keeps every byte (it used to be cut at the bad line first, losing the rest)."""
    run = RunDir(tmp_path / "run").create({"test": 1})
    _search("random", run, budget=20).resume().run()
    lines = (run.path / RunDir.EVALS).read_text().splitlines(keepends=True)
    lines[8] = "GARBAGE\n"
    damaged = "".join(lines)
    (run.path / RunDir.EVALS).write_text(damaged)
    steps = (run.path / RunDir.STEPS).read_bytes()
    with pytest.raises(RunError, match=r"evaluations.jsonl: line 9 is not a record, and the checkpoint covers 20"):
        _search("random", run, budget=20).resume()
    assert (run.path / RunDir.EVALS).read_text() == damaged and (run.path / RunDir.STEPS).read_bytes() == steps


def test_restore_cuts_only_what_the_checkpoint_does_not_cover(tmp_path):
    run = RunDir(tmp_path / "r").create({"test": 1})
    for i in range(5):
        run.append_jsonl("a.jsonl", {"i": i})
        run.append_jsonl("b.jsonl", {"i": i})
    with open(run.path / "a.jsonl", "a") as f:
        f.write('{"i": 5')                              # torn by a kill
    got = run.restore({"a.jsonl": 3, "b.jsonl": 3}, replay=("a.jsonl",))
    assert [r["i"] for r in got["a.jsonl"]] == [0, 1, 2, 3, 4] and [r["i"] for r in got["b.jsonl"]] == [0, 1, 2]
    assert run.records("b.jsonl") == got["b.jsonl"] and (run.path / "a.jsonl").read_text().endswith("}\n")
    # damage past what the checkpoint covers, in a log to replay: refused, nothing cut
    with open(run.path / "a.jsonl", "a") as f:
        f.write('GARBAGE\n{"i": 6}\n')
    before = (run.path / "a.jsonl").read_bytes()
    with pytest.raises(RunError, match="a.jsonl: line 6 is not a record"):
        run.restore({"a.jsonl": 3}, replay=("a.jsonl",))
    assert (run.path / "a.jsonl").read_bytes() == before


@pytest.mark.parametrize("where", ["last", "middle"])
def test_a_log_line_repeated_by_hand_is_refused_not_counted(tmp_path, where):
    """Issue 27: a finished search of 20 whose evaluations.jsonl has a line copied (by hand, or
    by a bad merge) used to resume as "21 of 20 architectures" (the copy replayed as new) or,
    copied in the middle, silently to drop the real 20th record. Each log's counter (query,
    update, epoch) must equal its line number: the copy is named and nothing is cut; --repair
    keeps the records before it and replays to the same log as the undamaged run."""
    run = RunDir(tmp_path / "run").create({"test": 1})
    _search("random", run, budget=20).resume().run()
    good = (run.path / RunDir.EVALS).read_text()
    lines = good.splitlines(keepends=True)
    k = len(lines) if where == "last" else 5
    damaged = "".join(lines[:k] + [lines[k - 1]] + lines[k:])
    (run.path / RunDir.EVALS).write_text(damaged)
    with pytest.raises(RunError, match=rf"evaluations.jsonl: line {k + 1} has query {k} where {k + 1} belongs, "
                                       r"and the checkpoint covers 20 records.*--repair"):
        _search("random", run, budget=20).resume()
    assert (run.path / RunDir.EVALS).read_text() == damaged
    assert len(run.records(RunDir.EVALS)) == k              # what show and --queries count: no copy
    run.repair(RunDir.EVALS, (RunDir.STEPS,))
    _search("random", run, budget=20).resume().run()
    same = lambda recs: [(r["query"], r["arch"], r["reward"], r["proposal"]) for r in recs]  # noqa: E731
    assert same(run.records(RunDir.EVALS)) == same(json.loads(line) for line in lines)


def test_a_record_that_is_not_an_object_or_skips_a_number_is_damage(tmp_path):
    run = RunDir(tmp_path / "r").create({"test": 1})
    for e in (1, 2, 3):
        run.append_jsonl(RunDir.HISTORY, {"epoch": e})
    (run.path / RunDir.HISTORY).write_text('{"epoch": 1}\n[2]\n{"epoch": 3}\n')
    with pytest.raises(RunError, match=r"history.jsonl: line 2 is not a record, and the checkpoint covers 3"):
        run.restore({RunDir.HISTORY: 3})
    (run.path / RunDir.HISTORY).write_text('{"epoch": 1}\n{"epoch": 3}\n{"epoch": 4}\n')
    with pytest.raises(RunError, match=r"line 2 has epoch 3 where 2 belongs"):
        run.restore({RunDir.HISTORY: 3})
    # past what the checkpoint covers, a non-replayed log is cut back as after a kill
    (run.path / RunDir.HISTORY).write_text('{"epoch": 1}\n{"epoch": 2}\n{"epoch": 2}\n')
    assert run.restore({RunDir.HISTORY: 2})[RunDir.HISTORY] == [{"epoch": 1}, {"epoch": 2}]


def test_a_run_has_one_writer(tmp_path):
    """While one process holds a run (a search, ENAS or retraining), a second gets one line
    naming the holder's PID and writes nothing (issue 13: two writers interleaved records)."""
    import subprocess
    import sys
    from torchnas import api
    from torchnas.config import load_preset, resolve
    search = RunDir(tmp_path / "search").create(resolve(load_preset("nb201")))
    run = RunDir(tmp_path / "run").create({"kind": "train"})
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys; from torchnas.runs import RunDir\n"
        f"with RunDir({str(run.path)!r}).owned(), RunDir({str(search.path)!r}).owned():\n"
        "    print('held', flush=True); sys.stdin.read()")],       # holds until its stdin closes
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = [sorted(p.name for p in r.path.iterdir()) for r in (run, search)]
        with pytest.raises(RunError, match=rf"in use by another torchnas process \(PID {holder.pid}\)"):
            api.search(resume=search.path)
        with pytest.raises(RunError, match="in use"):
            api.train(resume=run.path)
        assert [sorted(p.name for p in r.path.iterdir()) for r in (run, search)] == before
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with run.owned(), search.owned():                   # the lock died with its process
        pass


def test_an_interrupted_atomic_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    from torchnas.runs import atomic_write_bytes
    target = tmp_path / "best.json"
    target.write_text("old")

    def interrupted(src, dst):
        raise KeyboardInterrupt
    monkeypatch.setattr("torchnas.runs.os.replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["best.json"]


def test_ctrl_c_twice_exits_130_and_leaves_no_temp_files(tmp_path):
    """Issue 13 item 7: a second Ctrl-C used to exit -2; temp files stayed behind."""
    import signal
    import subprocess
    import sys
    import time
    from tests.conftest import NB201_CSV, SHARED, require
    require(NB201_CSV, "NAS-Bench-201 table")
    out = tmp_path / "run"
    # a suite started in the background (nohup ... &) hands its children SIGINT ignored: restore it,
    # as a terminal's Ctrl-C would find it
    p = subprocess.Popen([sys.executable, "-m", "torchnas", "search", "--preset", "nb201", "--queries", "10000",
                          "--out", str(out), "--quiet", "--data-dir", str(SHARED)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None and not (
                (out / RunDir.EVALS).exists() and (out / RunDir.EVALS).stat().st_size):
            time.sleep(0.05)
        assert p.poll() is None and (out / RunDir.EVALS).stat().st_size, "the search did not start"
        p.send_signal(signal.SIGINT)
        time.sleep(0.01)
        p.send_signal(signal.SIGINT)
        err = p.communicate(timeout=120)[1]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not [f for f in out.rglob("*") if ".tmp" in f.name]


def test_a_checkpoint_is_refused_by_another_kind_of_job_stamped_or_not(tmp_path):
    """Issue 27: each checkpoint names its kind; one written before the stamp is told apart by its
    entries; a checkpoint of the right kind that does not fit is refused by name, not a traceback."""
    import torch
    run = RunDir(tmp_path / "r").create({"a": 1})
    states = {"search": {"strategy": {}, "evaluations": 0, "updates": 0, "proposals": 0, "elapsed": 0.0},
              "enas": {"net": {}, "optimizer": {}, "epoch": 0}, "train": {"training": {}}}
    for stamped in (True, False):
        for kind, state in states.items():
            if stamped:
                run.save_checkpoint(state, kind)
            else:
                torch.save(state, run.path / RunDir.CHECKPOINT)
            for other in states:
                if other == kind:
                    loaded = run.load_checkpoint(other)
                    assert {k: v for k, v in loaded.items() if k != "kind"} == state
                    assert loaded.get("kind", kind) == kind and run.load_checkpoint(other, peek=True) is not None
                else:
                    with pytest.raises(RunError, match=f"is the checkpoint of {re.escape(RunDir.CHECKPOINT_KINDS[kind])}, "
                                                       f"not of {re.escape(RunDir.CHECKPOINT_KINDS[other])}"):
                        run.load_checkpoint(other, peek=True)
    with pytest.raises(RunError, match=r"does not fit this run's settings \(KeyError: 'strategy'\)"):
        run.save_checkpoint({"evaluations": 0}, "search")
        run.load_checkpoint("search", restore=lambda ckpt: ckpt["strategy"])
    with pytest.raises(ValueError, match="checkpoint kind .training."):
        run.save_checkpoint({}, "training")
    with pytest.raises(ValueError, match="checkpoint kind 'training'"):
        run.load_checkpoint("training")
