"""Property tests (Hypothesis, issue 13) over every registered space at its default size: any
architecture, not only the ones a seeded sampler happens to draw, survives the string, JSON and
authors' arc formats unchanged; and the controller's log-probability of the architectures it
samples, recomputed by teacher forcing, is what sampling reported."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchnas.controller import Controller
from torchnas.registry import registered
from torchnas.spaces import Anchor, AnchorSet, Architecture, Choice, get_space

from .test_space_contract import SMALL

SPACES = sorted(registered("space"))
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _space(name):
    return get_space(name) if name != "toy" else get_space(name, **SMALL[name][0])


def _value(decision):
    if isinstance(decision, AnchorSet):
        if decision.num_anchors == 0:
            return st.just(())
        return st.sets(st.integers(0, decision.num_anchors - 1)).map(lambda s: tuple(sorted(s)))
    if isinstance(decision, (Anchor, Choice)):
        return st.integers(0, decision.num_values() - 1)
    raise AssertionError(f"no Hypothesis strategy for decision type {type(decision).__name__}")


def architectures(space):
    return st.tuples(*[_value(d) for d in space.decisions]).map(space.make)


@pytest.mark.parametrize("name", SPACES)
def test_any_architecture_round_trips_through_every_format(name):
    space = _space(name)

    @FAST
    @given(architectures(space))
    def check(arch):
        assert space.parse(str(arch)) == arch
        assert Architecture.from_json(arch.dumps(), space) == arch
        if hasattr(space, "to_arc"):
            arc = space.to_arc(arch)
            body = " ".join(arc) if isinstance(arc, tuple) else arc
            assert space.parse(body) == arch or space.parse(f"{space.name}:{body}") == arch
        if hasattr(space, "to_arch_str"):
            assert space.from_arch_str(space.to_arch_str(arch)) == arch
    check()


@pytest.mark.parametrize("name", SPACES)
def test_log_prob_of_sampled_architectures_is_what_sampling_reported(name):
    space = _space(name)
    controller = Controller(space, hidden_size=16, seed=0, init_range=0.3, temperature=1.5, tanh_constant=2.0)

    @settings(max_examples=15, deadline=None)
    @given(st.integers(0, 2**31 - 1), st.integers(1, 4))
    def check(seed, m):
        with torch.no_grad():
            sample = controller.sample(m, torch.Generator().manual_seed(seed))
            again = controller.log_prob(sample.archs)
        assert all(space.check(a) is a for a in sample.archs)
        torch.testing.assert_close(again.log_probs, sample.log_probs, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(again.entropies, sample.entropies, rtol=1e-5, atol=1e-4)
        assert torch.all(sample.log_probs <= 0) and torch.all(torch.isfinite(sample.log_probs))
    check()


def _setting_keys(cfg, prefix=""):
    """Every setting of a preset as a dotted key, sections included."""
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        yield key
        if isinstance(v, dict):
            yield from _setting_keys(v, key + ".")


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=8), st.lists(st.integers(-3, 3), max_size=3),
                    st.dictionaries(st.sampled_from(["a", "name", "lr"]), st.integers(0, 3), max_size=2))


def _signature_keys(cfg):
    """The settings a preset's space, evaluator and strategy take by their signatures, the ones
    the preset leaves at their defaults included (and those the search passes itself, which must
    be refused)."""
    from torchnas.evaluators import evaluator_class
    from torchnas.registry import registered
    from torchnas.settings import allowed
    space = (cfg.get("space") or {}).get("name")
    if space in registered("space"):
        yield from (f"space.{k}" for k in allowed(registered("space")[space]))
    evaluator = (cfg.get("evaluator") or {}).get("name")
    if evaluator in registered("evaluator"):
        cls = evaluator_class(evaluator) or registered("evaluator")[evaluator]
        yield from (f"evaluator.{k}" for k in allowed(cls))
    strategy = cfg.get("strategy", "reinforce")
    strategy = strategy.get("name") if isinstance(strategy, dict) else strategy
    yield from (f"strategies.{strategy}.{k}" for k in allowed(registered("strategy")[strategy]))
    if "enas" in cfg:                       # the loop's and the task's shared weights' settings
        from torchnas.enas import allowed_settings
        yield from (f"enas.{k}" for k in allowed_settings(registered("space")[space]()))
    else:                                   # the search loop's section (mode, replicas, finish)
        from torchnas.search import loop_settings
        yield from (f"search.{k}" for k in allowed(loop_settings))


# one search preset of each family (the full-size ones build the same sections at larger sizes)
SEARCH_PRESETS = ["nas-cnn-tiny", "nas-cnn-pool-tiny", "nas-cnn-strides-tiny", "nas-rnn-tiny", "nb201", "enas-micro-tiny",
                  "enas-macro-tiny", "enas-rnn-tiny", "enas-nb201-tiny"]
TRAIN_PRESETS = ["nas-cnn-tiny", "nas-rnn-final", "enas-micro-final", "enas-macro-final", "enas-rnn-final",
                 "enas-nb201-final"]


def test_the_property_tests_cover_every_family_of_presets():
    from torchnas import api
    families = {n.removesuffix("-tiny").removesuffix("-final") for n, _ in api.presets()}
    assert families <= {n.removesuffix("-tiny") for n in SEARCH_PRESETS}
    assert {n for n, _ in api.presets() if n.endswith("-final")} <= set(TRAIN_PRESETS)


def _fuzz(command: list[str], keys: list[str], out, capsys) -> None:
    """``command --set KEY=VALUE`` for random keys and values of any type: it passes or ends in
    one line (exit 2); never a traceback, and nothing is written."""
    import os
    import yaml
    from torchnas.cli import main

    @settings(max_examples=int(os.environ.get("TORCHNAS_HYPOTHESIS_EXAMPLES", 12)), deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(st.sampled_from(keys), _VALUES)
    def check(key, value):
        text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        code = main(command + ["--set", f"{key}={text}", "--quiet", "--out", str(out)])
        err = capsys.readouterr().err
        assert code in (0, 2), (key, text, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, (key, text, err)
        assert not out.exists()
    check()


@pytest.mark.parametrize("preset", SEARCH_PRESETS)
def test_any_value_for_any_setting_is_checked_or_refused_in_one_line(preset, tmp_path_factory, capsys, monkeypatch):
    """Issue 27: a random value of any type, for any setting of a preset (those its space,
    evaluator and strategies take by their signatures too), by ``search --set ... --check``."""
    from torchnas.config import load_preset
    cfg = load_preset(preset)
    keys = sorted((set(_setting_keys(cfg)) | set(_signature_keys(cfg))) - {"preset", "description"})
    empty = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("TORCHNAS_DATA", str(empty))
    _fuzz(["search", "--preset", preset, "--check", "--data-dir", str(empty)], keys,
          tmp_path_factory.mktemp("out") / "run", capsys)


@pytest.mark.parametrize("preset", TRAIN_PRESETS)
def test_any_value_for_any_training_setting_is_checked_or_refused_in_one_line(preset, tmp_path_factory, capsys):
    """The same for ``torchnas train --dry-run``: the retraining's ``train`` and ``final_net``
    settings (and the rest of the preset)."""
    from torchnas.config import load_preset
    keys = sorted(set(_setting_keys(load_preset(preset))) - {"preset", "description"})
    _fuzz(["train", "--preset", preset, "--arch", "random", "--dry-run"], keys,
          tmp_path_factory.mktemp("out") / "run", capsys)
