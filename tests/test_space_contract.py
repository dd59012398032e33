"""The contract every registered search space meets, checked on a small instance of each.

A new space is registered with ``@register("space")``; this file then fails until SMALL names a
small configuration of it, and from then on checks it like every other space: parse/format
round trip, random and mutated architectures valid, the controller's probabilities summing to
one over the whole space, its diagram, and, where the space has networks, the standalone
child's forward pass, the shared-weight network computing what the child computes, and the
python export reproducing the child.
"""
import random

import pytest
import torch

from torchnas.controller import Controller
from torchnas.export import export_model
from torchnas.registry import registered
from torchnas.spaces import Architecture, get_space, iter_all
from torchnas.tasks import task_of

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:.*torch.jit.* is deprecated:DeprecationWarning")]

# name -> (space settings, network settings, image side or None for a language model)
SMALL = {
    "toy": ({"layers": 2, "options": 2}, None, None),
    "nb201": ({}, {"channels": 4, "num_cells": 1}, 8),
    "nas-cnn": ({"layers": 2, "num_filters": [4], "strides": [1], "filter_sizes": [1, 3]}, {}, 8),
    "enas-micro": ({"num_nodes": 1, "ops": ["identity", "sep_conv_3x3"]}, {"channels": 4, "num_layers": 1}, 8),
    "enas-macro": ({"num_layers": 2}, {"channels": 4}, 8),
    "enas-rnn": ({"num_nodes": 2}, {"hidden_size": 6}, None),
    "nas-rnn": ({"base": 2, "activations": ["tanh", "relu"]}, {"hidden_size": 6}, None),
}
VOCAB = 11


def test_every_registered_space_has_a_small_configuration_here():
    assert set(registered("space")) == set(SMALL)


def _space(name):
    return get_space(name, **SMALL[name][0])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_strings_random_and_mutated_architectures(name):
    space, rng = _space(name), random.Random(0)
    for _ in range(20):
        a = space.random(rng)
        assert space.parse(str(a)) == a and Architecture.from_json(a.dumps(), space) == a
        m = space.mutate(a, rng)
        assert space.check(m) is m and sum(x != y for x, y in zip(m.values, a.values)) == 1


@pytest.mark.parametrize("name", sorted(SMALL))
def test_distinct_draws_and_function_keys(name):
    """``random_distinct`` gives valid, seeded architectures; ``function_key`` is a function of
    the architecture, and, over a small space, no coarser than needed to split what differs."""
    space = _space(name)
    draws = [space.random_distinct(random.Random(k)) for k in range(10)]
    assert draws == [space.random_distinct(random.Random(k)) for k in range(10)]
    for a in draws:
        assert space.check(a) is a and space.function_key(a) == space.function_key(space.parse(str(a)))
    if name == "toy":               # every encoding its own function: one key per architecture
        every = list(iter_all(space))
        assert len({space.function_key(a) for a in every}) == len(every)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_controller_probabilities_sum_to_one_over_the_space(name):
    space = _space(name)
    archs = list(iter_all(space))
    assert len(archs) == space.size() <= 20_000
    c = Controller(space, hidden_size=8, seed=0, init_range=0.3)
    with torch.no_grad():
        total = c.log_prob(archs).log_probs.double().exp().sum().item()
    assert total == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_controller_draw_is_sample_without_its_statistics(name):
    """``draw`` (the shared phase's and derive's draws: no log-probabilities, entropies or
    penalty computed) gives exactly ``sample``'s architectures from the same generator state, with
    fewer operators."""
    from torch.profiler import ProfilerActivity, profile
    kw, _, _ = SMALL[name]
    c = Controller(get_space(name, **kw), hidden_size=8, init_range=0.8, seed=3)
    ops = {}
    for how in ("sample", "draw"):
        with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
            out = getattr(c, how)(7, torch.Generator().manual_seed(5))
        ops[how] = (out.archs if how == "sample" else out, len(prof.events()))
    assert ops["draw"][0] == ops["sample"][0]
    assert ops["draw"][1] < ops["sample"][1]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_diagram_task_and_dry_run(name):
    space = _space(name)
    arch = space.random(random.Random(1))
    g = space.graph(arch)
    assert g.nodes and g.edges and {e.src for e in g.edges} | {e.dst for e in g.edges} <= {n.id for n in g.nodes}
    assert space.task in registered("task")
    if SMALL[name][1] is not None:            # spaces with networks: their task describes them for --dry-run
        d = task_of(space).describe(space, arch, {"name": "cifar10"}, SMALL[name][1])
        assert d["arch"] == str(arch) and d["params"] > 0


def _child_and_input(name, arch):
    space, (_, net, side) = _space(name), SMALL[name]
    if task_of(space).name == "language-modeling":
        return space.language_model(arch, VOCAB, **net), (torch.randint(0, VOCAB, (5, 2)),)
    in_ch = 1 if name == "nas-cnn" else 3
    return space.child(arch, in_ch, 10, **net), (torch.randn(2, in_ch, side, side),)


NETWORKS = sorted(n for n in SMALL if SMALL[n][1] is not None)


@pytest.mark.parametrize("name", NETWORKS)
def test_child_forward_and_python_export(name, tmp_path):
    space = _space(name)
    torch.manual_seed(0)
    model, example = _child_and_input(name, space.random(random.Random(2)))
    model.eval()
    out = model(*example)
    logits = out.logits if hasattr(out, "logits") else out
    assert torch.isfinite(logits).all() and logits.shape[-1] == (VOCAB if hasattr(out, "logits") else 10)
    record = export_model(model, example, tmp_path, formats=("python",))
    assert record["formats"]["python"]["max_abs_diff"] < 1e-4


@pytest.mark.parametrize("name", [n for n in NETWORKS if hasattr(get_space(n), "child_from_shared")])
def test_shared_weights_compute_what_the_child_computes(name):
    space, (_, net, side) = _space(name), SMALL[name]
    torch.manual_seed(0)
    arch = space.random(random.Random(3))
    if task_of(space).name == "language-modeling":
        shared = space.language_model(None, VOCAB, **net).eval()
        x = torch.randint(0, VOCAB, (5, 2))
        child = space.language_model(arch, VOCAB, **net).eval()
        child.cell = space.child_from_shared(shared.cell, arch)
        child.load_state_dict({k: v for k, v in shared.state_dict().items() if not k.startswith("cell.")},
                              strict=False)
        torch.testing.assert_close(child(x).logits, shared(x, None, arch).logits)
        return
    shared = space.shared(3, 10, **net).eval()
    x = torch.randn(2, 3, side, side)
    child = space.child_from_shared(shared, arch).eval()
    torch.testing.assert_close(child(x), shared(x, arch))
