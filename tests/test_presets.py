"""Every preset resolves and builds; the final presets build the authors' published networks."""
import inspect

import pytest

from torchnas.cli import main
from torchnas.config import build_space, build_strategy, final_settings, load_preset, preset_names, resolve
from torchnas.enas import ENASSearch
from torchnas.train import TRAIN_KEYS


@pytest.mark.parametrize("name", preset_names())
def test_preset_builds(name):
    cfg = load_preset(name)
    strategies = list((cfg.get("strategies") or {"reinforce": {}}))
    for s in strategies:
        r = resolve(cfg, s)
        space = build_space(r)
        if "strategy" in cfg or "strategies" in cfg:
            build_strategy(r, space)
        if "enas" in r:
            allowed = set(inspect.signature(ENASSearch).parameters)
            assert set(r["enas"]) <= allowed, set(r["enas"]) - allowed
        net, train = final_settings(r)
        if train:
            assert set(train) <= TRAIN_KEYS
        if r.get("arch"):
            space.parse(r["arch"])


@pytest.mark.parametrize("preset, params", [("enas-micro-final", "4,389,220"), ("enas-macro-final", "30,947,424")])
def test_published_networks_dry_run(preset, params, capsys):
    assert main(["train", "--preset", preset, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"parameters: {params}" in out
