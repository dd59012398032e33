"""The example of a user's own search space runs from its own file, through the API (issue 14)."""
import json
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
