"""The Python API (torchnas.api), the show/export commands end to end, and the examples."""
import json
import runpy
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import NB201_CSV, SHARED, require, require_module
from torchnas import api
from torchnas.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICK = {"evaluator.epochs": 1, "train.epochs": 1}      # one-epoch children and retraining


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A real (small) NAS-RL search on digits through the API, retrained."""
    out = tmp_path_factory.mktemp("api") / "run"
    return api.search(preset="nas-cnn-tiny", queries=8, out=out, set=QUICK)


def test_search_returns_the_run_and_its_records(digits_run):
    run = digits_run
    evals = run.log("evaluations")
    assert len(evals) == 8 and run.best["reward"] == max(r["reward"] for r in evals)
    assert run.config["budget"] == 8 and run.config["evaluator"]["epochs"] == 1
    assert run.retrain is not None and run.result["epochs"] == 1 and 0 <= run.result["test_acc"] <= 1
    assert run.result["arch"] == run.best["arch"]
    with pytest.raises(TypeError, match="unexpected keyword argument 'querys'"):
        api.search(preset="nb201", querys=3)


def test_a_search_resolves_its_configuration_once(tmp_path, monkeypatch):
    """Issue 27 item 9: a search with its retraining resolves the configuration once (one
    ``resolve``, one ``final_settings``: the layers below receive the RunConfig), and whether the
    best is retrained follows the evaluator's ``trains_networks``, not its registered name."""
    from torchnas import config, registry
    from torchnas.evaluators import ChildTrainer
    from torchnas.evaluators.trainer import _child_trainer
    calls = {"resolve": 0, "final_settings": 0}
    for name in calls:
        real = getattr(config, name)
        monkeypatch.setattr(config, name, lambda *a, _real=real, _name=name, **k: (
            calls.__setitem__(_name, calls[_name] + 1), _real(*a, **k))[1])

    def my_trainer(**settings) -> ChildTrainer:          # a user's evaluator under its own name
        return _child_trainer(**settings)
    registry.registered("evaluator")                     # the built-in ones first
    monkeypatch.setitem(registry._TABLES["evaluator"], "my-trainer", my_trainer)   # gone after the test
    run = api.search(preset="nas-cnn-tiny", queries=2, out=tmp_path / "run",
                     set={**QUICK, "evaluator.name": "my-trainer", "train.max_batches": 2})
    assert calls == {"resolve": 1, "final_settings": 1}
    assert run.retrain is not None and run.result["arch"] == run.best["arch"]


def test_show_writes_figures_and_export_reproduces_the_network(digits_run, tmp_path, capsys):
    shown = api.show(digits_run)
    for name in ("controller", "best_so_far", "best_arch"):
        png = [p for p in shown["figures"].values() if Path(p).name == f"{name}.png"]
        assert png and min(Image.open(png[0]).size) >= 200
    assert digits_run.best["arch"] in capsys.readouterr().out
    assert main(["export", str(digits_run.path), "--format", "python", "torchscript", "--out", str(tmp_path / "x")]) == 0
    record = json.loads((tmp_path / "x" / "export.json").read_text())
    assert set(record["formats"]) == {"python", "torchscript"}
    assert all(r["max_abs_diff"] < 1e-4 for r in record["formats"].values())
    assert "torchnas" not in (tmp_path / "x" / "model.py").read_text()
    assert "max abs difference" in capsys.readouterr().out


def test_train_through_the_api_and_draw(digits_run, tmp_path):
    run = api.train(arch=digits_run, epochs=1, out=tmp_path / "t")
    assert run.result["arch"] == digits_run.best["arch"] and len(run.log("history")) == 1
    files = api.draw(digits_run.best["arch"], tmp_path / "arch")
    assert [f.suffix for f in files] == [".svg", ".png"] and all(f.exists() for f in files)
    with pytest.raises(ValueError, match="space prefix"):
        api.draw("0 2 1 0", tmp_path / "y")
    assert api.draw("0 2 1 0 2 1 2 2 4 0 5 0 3 2 6 2", tmp_path / "rnn", preset="enas-rnn-final")


def test_search_command_mirrors_to_tensorboard(tmp_path):
    require_module("tensorboard")
    require(NB201_CSV, "NAS-Bench-201 table")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out = tmp_path / "nb"
    assert main(["search", "--preset", "nb201", "--queries", "12", "--out", str(out), "--quiet", "--tensorboard",
                 "--data-dir", str(SHARED)]) == 0
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    rewards = [e.value for e in acc.Scalars("evaluations/reward")]
    logged = [json.loads(l)["reward"] for l in (out / "evaluations.jsonl").read_text().splitlines()]
    assert rewards == pytest.approx(logged) and len(acc.Scalars("steps/baseline")) == 12
    assert any("best" in t for t in acc.Tags().get("tensors", []))


def test_nb201_example_runs(tmp_path, monkeypatch, capsys):
    require(NB201_CSV, "NAS-Bench-201 table")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["search_nb201.py", "--queries", "10", "--data-dir", str(SHARED)])
    runpy.run_path(str(ROOT / "examples" / "search_nb201.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "reinforce" in out and "random" in out and "test" in out


def test_nas_rl_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["nas_rl_digits.py", "--queries", "4", "--epochs", "1", "--out", "runs/d"])
    runpy.run_path(str(ROOT / "examples" / "nas_rl_digits.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "retrained test accuracy" in out and "exported onnx:" in out
    assert (tmp_path / "runs" / "d" / "retrain" / "export" / "model.onnx").exists()


def test_enas_rnn_example_runs_on_a_small_corpus(tmp_path, monkeypatch, capsys, one_thread):
    from tests.test_lm import _write_corpus
    _write_corpus(tmp_path / "data" / "ptb", n_lines=1500)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["enas_rnn_ptb.py", "--epochs", "1", "--final-epochs", "1",
                                      "--data-dir", str(tmp_path / "data"), "--out", "runs/p"])
    runpy.run_path(str(ROOT / "examples" / "enas_rnn_ptb.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "derived cell enas-rnn:" in out and "plain LSTM" in out
    lstm = json.loads((tmp_path / "runs" / "p" / "lstm" / "result.json").read_text())
    assert lstm["cell"] == "lstm" and lstm["test_ppl"] < 17        # the toy corpus has 17 words
    assert (tmp_path / "runs" / "p" / "search" / "figures" / "shared.png").exists()


def test_draw_keeps_dotted_names_and_takes_one_format(tmp_path):
    files = api.draw("0 2 1 0 2 1 2 2 4 0 5 0 3 2 6 2", tmp_path / "cell.v2", preset="enas-rnn-final", formats="png")
    assert files == [tmp_path / "cell.v2.png"] and files[0].exists()
    assert api.draw("0 2 1 0 2 1 2 2 4 0 5 0 3 2 6 2", tmp_path / "c.svg", preset="enas-rnn-final") == \
        [tmp_path / "c.svg", tmp_path / "c.png"]


def test_a_search_extended_past_its_retraining_retrains_the_new_best(tmp_path):
    """Issue 27: ``--resume RUN --queries N`` found a new best, said it retrained it, and kept the
    old retraining of the old architecture. Now the retraining belongs to the best architecture,
    and the old one is kept aside under a name that says so."""
    out = tmp_path / "run"
    first = api.search(preset="nas-cnn-tiny", queries=1, seed=1, out=out, set=QUICK)
    old_arch, old_result = first.best["arch"], json.loads((out / "retrain" / "result.json").read_text())
    assert old_result["arch"] == old_arch
    events = []
    run = api.search(resume=out, queries=6, on_event=lambda name, d: events.append((name, d)))
    assert run.best["arch"] != old_arch                         # seed 1: a better child among the next 5
    assert run.result["arch"] == run.best["arch"]
    assert json.loads((out / "retrain" / "result.json").read_text())["arch"] == run.best["arch"]
    kept = out / "retrain.replaced"
    assert json.loads((kept / "result.json").read_text()) == old_result
    assert [d["kept"] for name, d in events if name == "retrain_replaced"] == [kept]
    again = api.search(resume=out, queries=6)                    # nothing new: nothing replaced
    assert again.result == run.result and not (out / "retrain.replaced-2").exists()
