"""Every preset resolves and builds; the final presets build the authors' published networks."""
import inspect

import pytest

from torchnas.cli import main
from torchnas.config import build_space, build_strategy, final_settings, load_preset, preset_names, resolve
from torchnas.enas import ENASLMSearch, ENASSearch
from torchnas.train import LM_TRAIN_KEYS, TRAIN_KEYS


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
            cls = ENASLMSearch if space.name == "enas-rnn" else ENASSearch
            allowed = set(inspect.signature(cls).parameters)
            assert set(r["enas"]) <= allowed, set(r["enas"]) - allowed
            if space.name == "enas-rnn":       # the shared language model builds from the settings
                space.language_model(None, 50, **r["enas"]["net"])
        net, train = final_settings(r)
        if train:
            assert set(train) <= (LM_TRAIN_KEYS if space.name == "enas-rnn" else TRAIN_KEYS)
        if r.get("arch"):
            space.parse(r["arch"])


@pytest.mark.parametrize("preset, params", [("enas-micro-final", "4,389,220"), ("enas-macro-final", "30,947,424")])
def test_published_networks_dry_run(preset, params, capsys):
    assert main(["train", "--preset", preset, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"parameters: {params}" in out
