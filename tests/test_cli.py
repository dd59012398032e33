import json

import yaml

from torchnas.cli import main
from tests.conftest import SHARED, needs_table


@needs_table
def test_search_writes_a_run_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["search", "--preset", "nb201", "--queries", "12", "--seed", "3", "--data-dir", str(SHARED), "--out", str(out), "--quiet"]
    assert main(args) == 0
    assert "best reward" in capsys.readouterr().out
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["strategy"]["name"] == "reinforce" and cfg["budget"] == 12 and cfg["seed"] == 3
    assert len((out / "evaluations.jsonl").read_text().splitlines()) == 12
    best = json.loads((out / "best.json").read_text())
    assert best["arch"].startswith("nb201:")
    # a larger budget extends a finished run: its first 12 evaluations are kept as they were
    before = (out / "evaluations.jsonl").read_text().splitlines()
    assert main(["search", "--resume", str(out), "--queries", "20", "--quiet"]) == 0
    after = (out / "evaluations.jsonl").read_text().splitlines()
    assert len(after) == 20 and after[:12] == before and len({json.loads(l)["arch"] for l in after}) == 20
    assert yaml.safe_load((out / "config.yaml").read_text())["budget"] == 20


@needs_table
def test_bench_json_format(tmp_path, capsys):
    f = tmp_path / "b.json"
    assert main(["bench", "nb201", "--strategy", "evolution", "--queries", "30", "--seeds", "4",
                 "--data-dir", str(SHARED), "--out", str(f), "--quiet", "--workers", "2"]) == 0
    text = capsys.readouterr().out
    assert "cifar10_oritest_acc_12ep" in text and "±" in text
    data = json.loads(f.read_text())
    assert data["strategy"] == "evolution" and data["queries"] == 30
    assert [r["seed"] for r in data["runs"]] == [0, 1, 2, 3]
    for r in data["runs"]:
        assert r["arch_str"].startswith("|") and len(r["trajectory"]) == 30
        assert r["trajectory"][-1] == r["reward"] and r["trajectory"] == sorted(r["trajectory"])


@needs_table
def test_bench_writes_each_seed_as_it_finishes(tmp_path):
    """Issue 27: ``--out`` holds every finished seed (judged) while later ones run, so a stopped
    benchmark keeps what it computed; ``complete`` turns true with the last seed."""
    from torchnas import api
    f, seen = tmp_path / "deep" / "b.json", []

    def on_event(kind, d):
        if kind == "seeds":
            data = json.loads(f.read_text())
            seen.append((d["completed"], len(data["runs"]), data["complete"], "test_acc_200ep" in data["runs"][-1]["verdict"]))
    api.bench_nb201("random", queries=5, seeds=3, data_dir=SHARED, workers=1, out=f, on_event=on_event)
    assert seen == [(1, 1, False, True), (2, 2, False, True), (3, 3, True, True)]


def test_clear_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCHNAS_DATA", str(tmp_path / "nowhere"))
    assert main(["search", "--preset", "nb201", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "data not found" in err and "nb201_12epoch.csv" in err and "$TORCHNAS_DATA" in err
    assert main(["search", "--preset", "nope", "--quiet"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
    assert main(["search", "--strategy", "ppo", "--quiet"]) == 2
    assert "unknown strategy 'ppo'" in capsys.readouterr().err
    assert main(["search", "--preset", "nb201", "--queries", "0", "--quiet"]) == 2
    assert "--queries 0: the budget must be a positive whole number" in capsys.readouterr().err
    assert main(["search", "--resume", str(tmp_path / "none")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_default_search_trains_children_then_retrains_the_best(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["search", "--queries", "4", "--out", str(out), "--quiet",
            "--set", "evaluator.epochs=1", "--set", "evaluator.data.per_class=30",
            "--set", "train.epochs=2", "--set", "strategies.reinforce.batch_size=2"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and str(out / "retrain") in text
    result = json.loads((out / "retrain" / "result.json").read_text())
    assert result["arch"] == json.loads((out / "best.json").read_text())["arch"]
    assert 0.1 < result["test_acc"] <= 1 and result["epochs"] == 2
    # torchnas train on the run's best.json, with its settings
    out2 = tmp_path / "train"
    assert main(["train", "--arch", str(out / "best.json"), "--epochs", "1", "--out", str(out2), "--quiet"]) == 0
    assert json.loads((out2 / "result.json").read_text())["epochs"] == 1
    assert main(["train", "--arch", "nas-cnn:3,3,99,-", "--out", str(tmp_path / "bad")]) == 2
    assert "layer0.nf" in capsys.readouterr().err


def test_enas_search_from_the_cli_then_final_training(tmp_path, capsys):
    out = tmp_path / "enas"
    sets = ["enas.epochs=1", "enas.net.channels=4", "enas.batch_size=64", "enas.train_steps=1",
            "enas.derive_samples=4", "enas.data.per_class=15", "strategies.reinforce.batch_size=2",
            "final_net.channels=4", "train.epochs=1", "train.cutout=2", "enas.data.image_size=6"]
    args = ["search", "--preset", "enas-micro-tiny", "--data", "digits", "--out", str(out), "--quiet"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "derived.json" in text and "test accuracy" in text
    derived = json.loads((out / "derived.json").read_text())
    assert json.loads((out / "retrain" / "result.json").read_text())["arch"] == derived[0]["arch"]
    assert len((out / "epochs.jsonl").read_text().splitlines()) == 1
    # the search ran on 6x6 images (a low-resolution proxy), the retraining on the full 8x8
    from torchnas.runs import RunDir
    from torchnas.ws_rank import search_from_run
    assert search_from_run(RunDir(out))[2].shared.data.shape == (1, 6, 6)
    searched = yaml.safe_load((out / "config.yaml").read_text())["enas"]["data"]
    assert searched.pop("image_size") == 6 and searched["per_class"] == 15
    assert yaml.safe_load((out / "retrain" / "config.yaml").read_text())["data"] == searched
    assert main(["train", "--arch", str(out), "--out", str(tmp_path / "again"), "--quiet"]) == 0
    assert yaml.safe_load((tmp_path / "again" / "config.yaml").read_text())["data"] == searched
    # the run resumes to its end without recomputing, and a search run is not a training run
    assert main(["search", "--resume", str(out), "--quiet", "--no-retrain"]) == 0
    assert main(["search", "--resume", str(out / "retrain")]) == 2
    assert "retraining run" in capsys.readouterr().err


def test_out_and_workers_problems_are_one_line_and_leave_nothing(tmp_path, capsys):
    """Issue 13: --out a file, --out FILE/sub, an unwritable --out, --workers 0 or too many:
    exit 2, one line naming the problem, no traceback, nothing written."""
    f = tmp_path / "a_file"
    f.write_text("x")
    base = ["search", "--preset", "nas-cnn-tiny", "--queries", "2", "--quiet", "--no-retrain"]
    for extra, msg in [(["--out", str(f)], "is a file, not a folder"),
                       (["--out", str(f / "sub")], "cannot write the run folder"),
                       (["--out", "/proc/torchnas-x"], "cannot write the run folder"),
                       (["--out", str(tmp_path / "w0"), "--workers", "0"], "--workers .* from 1 to"),
                       (["--out", str(tmp_path / "w9"), "--workers", "100000"], "--workers .* from 1 to")]:
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        import re
        assert re.search(msg, err), (extra, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_set_reads_exponent_numbers_as_numbers(tmp_path):
    """YAML 1.1 reads 1e-3 as a string; --set train.lr=1e-3 must be the number."""
    from torchnas.config import apply_override
    cfg = {}
    for text, want in [("1e-3", 1e-3), ("5E+2", 500.0), ("2.5e1", 25.0), ("abc", "abc"), ("0.1", 0.1), ("3", 3),
                       ("[1e-3, 2]", [1e-3, 2]), ('"1e6"', "1e6")]:       # inside a list too; quoted stays text
        apply_override(cfg, f"a.b={text}")
        assert cfg["a"]["b"] == want and type(cfg["a"]["b"]) is type(want)


@needs_table
def test_resume_refuses_what_would_change_the_run(tmp_path, capsys):
    """Issue 13 item 5: --resume used to ignore --set/--seed/--strategy and to cut the budget."""
    out = tmp_path / "run"
    assert main(["search", "--preset", "nb201", "--queries", "10", "--out", str(out), "--quiet",
                 "--data-dir", str(SHARED)]) == 0
    config = (out / "config.yaml").read_text()
    cases = [(["--set", "strategies.reinforce.lr=99"], "--set would change it"),
             (["--seed", "7", "--strategy", "random"], "--strategy, --seed would change it"),
             (["--preset", "nb201"], "--preset would change it"),
             (["--queries", "5"], "already evaluated 10 architectures")]
    for extra, msg in cases:
        assert main(["search", "--resume", str(out), "--quiet", *extra]) == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1, (extra, err)
    assert (out / "config.yaml").read_text() == config
    assert main(["search", "--resume", str(out), "--quiet", "--queries", "12"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["budget"] == 12


@needs_table
def test_repair_sets_a_damaged_tail_aside_and_replays_to_the_same_run(tmp_path, capsys):
    """Issue 13: --repair moves the damage aside (never deletes) and the resumed search writes
    what the undamaged run wrote."""
    import shutil
    ref = tmp_path / "ref"
    assert main(["search", "--preset", "nb201", "--queries", "30", "--data-dir", str(SHARED), "--out", str(ref),
                 "--quiet"]) == 0
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    lines = (run / "evaluations.jsonl").read_text().splitlines(keepends=True)
    tail = "".join(["GARBAGE\n"] + lines[11:])
    (run / "evaluations.jsonl").write_text("".join(lines[:10] + ["GARBAGE\n"] + lines[11:]))
    capsys.readouterr()
    assert main(["search", "--resume", str(run), "--quiet"]) == 2
    assert "line 11 is not a record" in capsys.readouterr().err
    assert main(["search", "--resume", str(run), "--quiet", "--repair"]) == 0
    assert "set aside" in capsys.readouterr().out
    strip = lambda p: [{k: v for k, v in json.loads(x).items() if not k.endswith("_s")} for x in p.read_text().splitlines()]
    for name in ("evaluations.jsonl", "steps.jsonl"):
        assert strip(run / name) == strip(ref / name), name
    aside = {p.name.split(".damaged-")[0]: p for p in run.iterdir() if ".damaged-" in p.name}
    assert set(aside) == {"evaluations.jsonl", "steps.jsonl", "checkpoint.pt"}
    assert aside["evaluations.jsonl"].read_text() == tail
    assert main(["search", "--resume", str(run), "--quiet", "--repair"]) == 2     # nothing left to repair
    assert "no damaged line" in capsys.readouterr().err


def test_no_retrain_is_remembered_by_the_run(tmp_path):
    out = tmp_path / "run"
    tiny = ["--set", "evaluator.epochs=1", "--set", "evaluator.data.per_class=10", "--set", "strategies.reinforce.batch_size=2"]
    assert main(["search", "--queries", "2", "--quiet", "--no-retrain", "--out", str(out), *tiny]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["retrain"] is False
    assert main(["search", "--resume", str(out), "--queries", "3", "--quiet"]) == 0
    assert len((out / "evaluations.jsonl").read_text().splitlines()) == 3 and not (out / "retrain").exists()


def test_every_option_has_help_and_the_help_is_plain_text(capsys):
    import argparse
    from torchnas.cli import build_parser
    missing = []

    def walk(parser, name):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sub, p in a.choices.items():
                    walk(p, f"{name} {sub}")
            elif not a.help and "-h" not in a.option_strings:
                missing.append(f"{name} {'/'.join(a.option_strings) or a.dest}")
    walk(build_parser(), "torchnas")
    assert not missing
    try:
        main(["--help"])
    except SystemExit:
        pass
    assert "``" not in capsys.readouterr().out


def test_a_closed_pipe_ends_quietly():
    """`torchnas presets | head -1` printed a BrokenPipeError traceback (issue 14); here the
    reader has gone before anything is written."""
    import subprocess
    import sys
    p = subprocess.run(f"{sys.executable} -m torchnas presets | true; echo ${{PIPESTATUS[0]}}", shell=True,
                       capture_output=True, text=True, executable="/bin/bash")
    assert p.stdout.strip() == "0" and p.stderr == "", p.stderr


def test_device_is_recorded_in_the_run(tmp_path):
    out = tmp_path / "run"
    assert main(["search", "--queries", "2", "--quiet", "--no-retrain", "--device", "cpu", "--out", str(out),
                 "--set", "evaluator.epochs=1", "--set", "evaluator.data.per_class=10",
                 "--set", "strategies.reinforce.batch_size=2"]) == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["evaluator"]["device"] == "cpu" and cfg["train"]["device"] == "cpu"
