"""The example of a user's own search space runs from its own file, through the API (issue 14)."""
import json
import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_custom_space_example_searches_and_draws(tmp_path):
    out = tmp_path / "mlp"
    p = subprocess.run([sys.executable, str(EXAMPLES / "custom_space.py"), "--queries", "4", "--epochs", "1",
                        "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    best = json.loads((out / "best.json").read_text())
    assert best["arch"].startswith("mlp:") and 0 < best["reward"] <= 1
    assert len((out / "evaluations.jsonl").read_text().splitlines()) == 4
    assert (out / "figures" / "best_arch.png").exists()


def test_the_example_space_from_the_command_line(tmp_path):
    """Issue 27: the example's own space searched, resumed and shown through the CLI: the config
    names the file (relative to itself), the run records its absolute path."""
    import yaml
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "mlp.py").write_text((EXAMPLES / "custom_space.py").read_text())
    cfg = tmp_path / "mlp.yaml"
    cfg.write_text("space: {name: mlp, layers: 1}\nevaluator: {name: mlp-digits, epochs: 1}\nbudget: 3\nseed: 0\n"
                   "strategy: {name: reinforce, batch_size: 1}\nplugins: [plugins/mlp.py]\n")
    run = tmp_path / "run"
    cli = [sys.executable, "-m", "torchnas"]

    def ok(*args):
        p = subprocess.run(cli + list(args), capture_output=True, text=True, timeout=300, cwd=tmp_path.parent)
        assert p.returncode == 0, p.stderr
        return p.stdout
    ok("search", "--config", str(cfg), "--out", str(run), "--quiet")
    assert yaml.safe_load((run / "config.yaml").read_text())["plugins"] == [str(tmp_path / "plugins" / "mlp.py")]
    ok("search", "--resume", str(run), "--queries", "5", "--quiet")
    assert len((run / "evaluations.jsonl").read_text().splitlines()) == 5
    shown = ok("show", str(run))
    assert "mlp:" in shown and (run / "figures" / "best_arch.png").exists()
    # an architecture string of the user's space: drawn with --plugin, named as unknown without it
    ok("show", "mlp:32,relu,64,tanh", "--plugin", str(tmp_path / "plugins" / "mlp.py"), "--out", str(tmp_path / "a"))
    assert (tmp_path / "a.png").exists()
    p = subprocess.run(cli + ["show", "mlp:32,relu,64,tanh"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "unknown search space 'mlp'" in p.stderr and "--plugin FILE" in p.stderr
    # retraining and export: the example's space is trained by its own evaluator only, which each says in a line
    for args, said in [(("train", "--arch", str(run), "--dry-run"), "the config of .* has no 'train' settings"),
                       (("export", str(run)), "is not a retraining run .*retrain its architecture first")]:
        p = subprocess.run(cli + list(args), capture_output=True, text=True, timeout=300)
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and re.search(said, p.stderr), p.stderr
    # the same with --plugin on the command line and a module name; a missing plugin is one line
    run2 = tmp_path / "run2"
    cfg.write_text(cfg.read_text().replace("plugins: [plugins/mlp.py]\n", ""))
    p = subprocess.run(cli + ["search", "--config", str(cfg), "--plugin", "mlp", "--out", str(run2), "--quiet",
                              "--queries", "2"], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "PYTHONPATH": str(tmp_path / "plugins")})
    assert p.returncode == 0, p.stderr
    p = subprocess.run(cli + ["search", "--config", str(cfg), "--plugin", "nope.py", "--quiet"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0
    assert "nope.py' cannot be imported: FileNotFoundError: no such file" in p.stderr
