"""Every preset resolves and builds; the final presets build the authors' published networks."""
from pathlib import Path

import pytest

from torchnas.cli import main
from torchnas.config import build_space, build_strategy, final_settings, load_preset, preset_names, resolve
from torchnas.enas import allowed_settings
from torchnas.tasks import task_of


@pytest.mark.parametrize("name", preset_names())
def test_preset_builds(name):
    cfg = load_preset(name)
    strategies = list((cfg.get("strategies") or {"reinforce": {}}))
    for s in strategies:
        r = resolve(cfg, s)
        space = build_space(r)
        if "strategy" in cfg or "strategies" in cfg:
            build_strategy(r, space)
        task = task_of(space)
        if "enas" in r:
            allowed = allowed_settings(space)
            assert set(r["enas"]) <= allowed, set(r["enas"]) - allowed
            task.check_net_settings(space, r["enas"].get("net"), "enas.net")     # typed, in range
            if space.task == "language-modeling":      # the shared language model builds from the settings
                space.language_model(None, 50, **r["enas"]["net"])
        net, train = final_settings(r)
        if train:
            assert task.check_train_settings(train) == train      # typed, in range, nothing to coerce
            task.check_net_settings(space, net)
        if r.get("arch"):
            space.parse(r["arch"])


DOC = Path(__file__).resolve().parents[1] / "docs" / "results.md"


@pytest.mark.parametrize("args, printed, documented", [
    (["--preset", "enas-micro-final"], ["parameters: 4,389,220", "3,894,372 without the auxiliary head"],
     ["3.89 M", "4.39 M with the auxiliary head"]),
    (["--preset", "enas-macro-final"], ["parameters: 30,947,424"], ["30.95 M"]),
    (["--preset", "enas-rnn-final"], ["parameters: 20,800,000", "12,800,000 in the cell", "8,000,000 in the tied"],
     ["20.80 M (12.80 M cell + 8.00 M tied embedding)"]),
    (["--preset", "enas-rnn-final", "--set", "final_net.hidden_size=850"], ["parameters: 22,950,000"],
     ["22.95 M at hidden 850 (`--set final_net.hidden_size=850`"]),
    (["--preset", "nas-rnn-final"], ["parameters: 53,987,328", "42,467,328 in the cell", "11,520,000 in the tied"],
     ["53.99 M (42.47 M cells + 11.52 M tied embedding)"]),
])
def test_documented_parameter_counts_are_what_their_commands_print(args, printed, documented, capsys):
    """docs/results.md's parameter-count table: each figure is printed by the dry run it names."""
    assert main(["train", *args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert all(p in out for p in printed), out
    table = [line for line in DOC.read_text().splitlines() if line.startswith(("| ENAS", "| Zoph & Le"))]
    assert all(any(d in line for line in table) for d in documented), documented
