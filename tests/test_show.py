"""torchnas show: run summaries and figures of real runs (search, ENAS, retraining), TensorBoard
export read back from the event files, and architecture strings drawn on their own."""
import io
import json
import shutil
import sys

import pytest
from PIL import Image
from rich.console import Console

from tests.conftest import NB201_CSV, SHARED, needs_module, needs_table, require
from tests.test_lm import REINFORCE as LM_REINFORCE, SPACE as LM_SPACE, TINY as LM_TINY, _write_corpus
from torchnas.cli import main
from torchnas.enas import ENASSearch
from torchnas.runs import RunDir
from torchnas.show import show_arch, show_run, summarize
from torchnas.strategies import Reinforce
from torchnas.tensorboard import TensorBoardMirror, export_run_to_tensorboard, scalars, step_key
from torchnas.viz import figures

pytestmark = pytest.mark.usefixtures("one_thread")
needs_tb = needs_module("tensorboard")
CNN_ARCH = "nas-cnn:5,7,12,-,5,3,16,0,7,3,12,0,5,5,8,0"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Small real runs, made once: name -> run directory (made on first use)."""
    root, made = tmp_path_factory.mktemp("runs"), {}

    def get(name):
        if name not in made:
            made[name] = MAKERS[name](root / name)
        return made[name]
    return get


def _nb201(out, strategy):
    require(NB201_CSV, "NAS-Bench-201 table")
    assert main(["search", "--preset", "nb201", "--strategy", strategy, "--queries", "30", "--data-dir", str(SHARED),
                 "--out", str(out), "--quiet"]) == 0
    return out


def _enas_lm(out):
    data = {"name": "ptb", "path": str(_write_corpus(out.parent / "ptb"))}
    cfg = {"space": {"name": "enas-rnn", "num_nodes": 4}, "strategy": {"name": "reinforce", **LM_REINFORCE},
           "enas": {"data": data, **LM_TINY}, "seed": 1, "budget": 100}
    run = RunDir(out).create(cfg)
    ENASSearch(LM_SPACE, Reinforce(LM_SPACE, seed=1, **LM_REINFORCE), seed=1, run_dir=run, data=data,
                 **LM_TINY).resume().run()
    return out


def _train(out):
    assert main(["train", "--preset", "nas-cnn-tiny", "--arch", CNN_ARCH, "--epochs", "1", "--out", str(out),
                 "--quiet"]) == 0
    return out


MAKERS = {"reinforce": lambda out: _nb201(out, "reinforce"), "random": lambda out: _nb201(out, "random"),
          "enas": _enas_lm, "train": _train}


def _show(run, **kw):
    console = Console(record=True, width=100, file=io.StringIO())
    return show_run(run, console=console, **kw), console.export_text()


def _check_png(path, w=(300, 4000), h=(300, 4000)):
    assert path.exists() and path.parent.name == "figures"
    with Image.open(path) as im:
        assert im.format == "PNG" and w[0] <= im.width <= w[1] and h[0] <= im.height <= h[1], im.size
        return im.size


def _best(run):
    return json.loads((run / "best.json").read_text())


def _records(run, name):
    return [json.loads(line) for line in (run / name).read_text().splitlines()]


# -- summaries and figures -----------------------------------------------------------------------
@needs_table
def test_reinforce_search(runs):
    run = runs("reinforce")
    s, text = _show(run)
    evals, best = _records(run, "evaluations.jsonl"), _best(run)
    assert s["kind"] == "search" and s["best"] == best and s["arch"] == best["arch"]
    assert s["settings"]["strategy"].startswith("reinforce (") and s["settings"]["budget"] == 30
    assert s["progress"] == {"evaluations": 30, "budget": 30, "updates": 30}
    assert s["time_s"] == max(e["elapsed_s"] for e in evals)
    top = sorted(evals, key=lambda e: -e["reward"])[:5]
    assert [t["reward"] for t in s["top"]] == [e["reward"] for e in top]
    assert (s["top"][0]["arch"], s["top"][0]["query"]) == (best["arch"], best["query"])
    assert best["arch"] in text and f"{best['reward']:.4f}" in text and f"at query {best['query']}" in text
    assert set(s["figures"]) == {"controller", "best_so_far", "best_arch", "best_arch_png"}
    assert _check_png(s["figures"]["controller"])[0] > 3 * 300        # reward, entropy and loss panels
    _check_png(s["figures"]["best_so_far"])
    _check_png(s["figures"]["best_arch_png"], h=(200, 4000))
    assert s["figures"]["best_arch"].read_text().lstrip().startswith("<?xml")
    assert {k: v for k, v in s.items() if k != "figures"} == summarize(run)


@needs_table
def test_random_search_has_no_controller_figure(runs):
    run = runs("random")
    s, text = _show(run, top=3)
    assert s["best"] == _best(run) and len(s["top"]) == 3 and s["settings"]["strategy"] == "random"
    assert "controller" not in s["figures"] and not (run / "figures" / "controller.png").exists()
    _check_png(s["figures"]["best_so_far"])
    assert s["best"]["arch"] in text


def test_enas_search(runs):
    run = runs("enas")
    s, text = _show(run)
    derived, best = json.loads((run / "derived.json").read_text()), _best(run)
    assert s["kind"] == "enas" and s["best"] == best and s["derived"] == derived and s["arch"] == derived[0]["arch"]
    assert s["progress"] == {"epochs": 2, "of": 2, "updates": 4}
    assert s["time_s"] == pytest.approx(sum(e["seconds"] for e in _records(run, "epochs.jsonl")))
    assert set(s["figures"]) == {"controller", "shared", "best_arch", "best_arch_png"}
    _check_png(s["figures"]["controller"])
    _check_png(s["figures"]["shared"])
    assert "valid ppl" in text and best["arch"] in text and f"{best['reward']:.4f}" in text


def test_retraining_run(runs):
    run = runs("train")
    s, text = _show(run)
    result = json.loads((run / "result.json").read_text())
    assert s["kind"] == "train" and s["result"] == result and s["best"] is None and s["arch"] == CNN_ARCH
    assert s["progress"] == {"epochs": 1, "of": 1}
    assert set(s["figures"]) == {"training", "best_arch", "best_arch_png"}
    _check_png(s["figures"]["training"])
    assert CNN_ARCH in text and f"test acc {result['test_acc']:.4g}" in text


@needs_table
def test_search_with_retrain_directory(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs("reinforce"), run)
    shutil.copytree(runs("train"), run / "retrain")
    with open(run / "evaluations.jsonl", "a") as f:     # a search still writing: a torn last line
        f.write('{"query": 31, "arch": "nb2')
    before = (run / "evaluations.jsonl").read_bytes()
    s, text = _show(run)
    assert (run / "evaluations.jsonl").read_bytes() == before and s["progress"]["evaluations"] == 30
    assert s["retrain"] == json.loads((run / "retrain" / "result.json").read_text())
    assert "retrained" in text and "test acc" in text
    _check_png(s["figures"]["retrain"])


def test_figures_keep_only_panels_with_data(tmp_path):
    one = figures.controller_figure([{"update": 1, "entropy": 2.0}, {"update": 2, "entropy": 1.5}], tmp_path / "a.png")
    two = figures.controller_figure([{"update": 1, "entropy": 2.0, "reward": 0.5, "baseline": 0.4}], tmp_path / "b.png")
    assert Image.open(one).width * 2 == Image.open(two).width
    assert figures.controller_figure([{"update": 1, "queries": 1}], tmp_path / "c.png") is None
    assert figures.best_so_far_figure([], tmp_path / "d.png") is None
    assert figures.epochs_figure([{"epoch": 1, "loss": 1.0, "valid_acc": None}], tmp_path / "e.png") is not None
    assert not (tmp_path / "c.png").exists() and not (tmp_path / "d.png").exists()


# -- TensorBoard -----------------------------------------------------------------------------------
def _events(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _check_scalars(acc, log, records):
    expected = {}
    for r in records:
        for tag, v in scalars(r).items():
            expected.setdefault(f"{log}/{tag}", []).append((r[step_key(r)], v))
    assert expected and set(expected) <= set(acc.Tags()["scalars"])
    for tag, pairs in expected.items():
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [p[0] for p in pairs], tag
        assert [e.value for e in events] == pytest.approx([p[1] for p in pairs], rel=1e-6, abs=1e-6), tag


def _text(acc, tag):
    return acc.Tensors(f"{tag}/text_summary")[0].tensor_proto.string_val[0].decode()


@needs_table
@needs_tb
def test_tensorboard_export_of_a_search(runs, tmp_path):
    run = runs("reinforce")
    log_dir = export_run_to_tensorboard(run, tmp_path / "tb")
    acc = _events(log_dir)
    evals, steps = _records(run, "evaluations.jsonl"), _records(run, "steps.jsonl")
    _check_scalars(acc, "evaluations", evals)
    _check_scalars(acc, "steps", steps)
    assert len(acc.Scalars("evaluations/reward")) == 30 and len(acc.Scalars("steps/entropy")) == len(steps)
    assert "evaluations/metrics/cifar10_oritest_acc_12ep" in acc.Tags()["scalars"]
    assert _best(run)["arch"] in _text(acc, "best/arch")
    export_run_to_tensorboard(run, log_dir)            # a second export replaces the first
    assert len(_events(log_dir).Scalars("evaluations/reward")) == 30


@needs_tb
def test_tensorboard_export_of_enas_and_training(runs):
    run = runs("enas")
    acc = _events(export_run_to_tensorboard(run))
    assert (run / "tensorboard").is_dir()
    _check_scalars(acc, "epochs", _records(run, "epochs.jsonl"))
    _check_scalars(acc, "steps", _records(run, "steps.jsonl"))
    assert "epochs/valid_ppl" in acc.Tags()["scalars"] and "steps/epoch" in acc.Tags()["scalars"]
    assert _best(run)["arch"] in _text(acc, "best/arch")
    train = runs("train")
    acc = _events(export_run_to_tensorboard(train))
    _check_scalars(acc, "history", _records(train, "history.jsonl"))
    assert CNN_ARCH in _text(acc, "best/arch") and "test_acc" in _text(acc, "result")


@needs_tb
def test_live_mirror_as_a_listener(tmp_path):
    records = [{"update": u, "reward": 0.1 * u, "entropy": 2.0 - u / 10} for u in (1, 2, 3)]
    with TensorBoardMirror(tmp_path / "tb") as mirror:
        for r in records:
            mirror("steps.jsonl", r)
        mirror("notes.jsonl", {"value": 7, "flag": True, "name": "x"})     # no step key: counted
        mirror.text("best/arch", "nb201:none,none,none,none,none,none")
    acc = _events(tmp_path / "tb")
    _check_scalars(acc, "steps", records)
    assert [(e.step, e.value) for e in acc.Scalars("notes/value")] == [(1, 7.0)]
    assert "notes/flag" not in acc.Tags()["scalars"] and "steps/update" not in acc.Tags()["scalars"]
    assert _text(acc, "best/arch") == "nb201:none,none,none,none,none,none"


@needs_tb
def test_live_mirror_through_the_run_dir_hook(runs, tmp_path):
    src = runs("enas")
    run = RunDir(tmp_path / "live").create({"space": {"name": "enas-rnn", "num_nodes": 4}})
    mirror = TensorBoardMirror(run.path / "tensorboard")
    run.listeners.append(mirror)
    for name in ("steps.jsonl", "epochs.jsonl"):
        for rec in _records(src, name):
            run.append_jsonl(name, rec)
    mirror.close()
    acc = _events(run.path / "tensorboard")
    _check_scalars(acc, "steps", _records(src, "steps.jsonl"))
    _check_scalars(acc, "epochs", _records(src, "epochs.jsonl"))


def test_missing_tensorboard_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match="pip install tensorboard"):
        TensorBoardMirror(tmp_path / "tb")


# -- torchnas show ARCH ------------------------------------------------------------------------------
def test_show_arch_writes_svg_and_png(tmp_path):
    console = Console(record=True, file=io.StringIO())
    files = show_arch("nb201:nor_conv_3x3,skip_connect,none,avg_pool_3x3,nor_conv_1x1,skip_connect",
                      out=tmp_path / "cell.png", console=console)
    assert [f.name for f in files] == ["cell.svg", "cell.png"] and all(f.stat().st_size > 0 for f in files)
    assert "cell.svg" in console.export_text()
    # space settings: a preset, a space config, or found among the presets
    assert show_arch(CNN_ARCH, preset="nas-cnn-tiny", out=tmp_path / "a", console=console)[1].exists()
    assert show_arch(CNN_ARCH, out=tmp_path / "b", console=console)[1].exists()
    rnn = "enas-rnn:0,tanh,1,tanh,1,sigmoid,1,tanh"
    assert show_arch(rnn, space={"name": "enas-rnn", "num_nodes": 4}, out=tmp_path / "c", console=console)


@pytest.mark.parametrize("text, message", [
    ("resnet:1,2,3", "unknown search space 'resnet'"),
    ("nb201:nor_conv_3x3,skip_connect", "6 values|6 decisions"),
    ("nb201:a,b,c,d,e,f", "nb201"),
    ("nor_conv_3x3,none", "no space prefix"),
    ("enas-rnn:0,tanh,1,tanh,1,sigmoid,1,tanh", "--preset"),      # 4 nodes: no preset's space fits
])
def test_show_arch_rejects_bad_strings(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        show_arch(text, out=tmp_path / "x", console=Console(file=io.StringIO()))
    assert not list(tmp_path.iterdir())


@needs_tb
def test_show_command(runs, capsys):
    run = runs("enas")
    assert main(["show", str(run), "--no-figures", "--top", "2", "--tensorboard"]) == 0
    out = capsys.readouterr().out
    assert _best(run)["arch"] in out and "TensorBoard" in out
