import json
import random

import pytest

from torchnas.spaces import (Anchor, AnchorSet, Architecture, ArchitectureError, Choice, NB201Space,
                             ToySpace, get_space, iter_all)


def test_canonical_string_json_equality_hash():
    space = ToySpace(layers=3, options=3)
    rng = random.Random(0)
    for _ in range(50):
        a = space.random(rng)
        s = str(a)
        assert s.startswith("toy:")
        b = space.parse(s)
        assert a == b and hash(a) == hash(b) and str(b) == s
        c = Architecture.from_json(json.loads(json.dumps(a.to_json())), space)
        assert c == a
        assert Architecture.parse(s, space) == a
    assert len({space.random(random.Random(i)) for i in range(200)}) > 50


def test_anchor_set_format():
    space = ToySpace(layers=3, options=2)
    a = space.make([1, [], 0, 0, [0], 1, 1, [1, 0]])
    assert str(a) == "toy:op1,-,op0,0,0,op1,1,0+1"
    assert a.values[-1] == (0, 1)


@pytest.mark.parametrize("values, needle", [
    ([0, ()], "has 8 decisions"),
    ([1, (), 0, 0, (0,), 1, 1, (1,), ()], "has 8 decisions"),
    ([7, (), 0, 0, (0,), 1, 1, (1,)], "layer0.op"),
    ([0, (), 0, 3, (0,), 1, 1, (1,)], "layer1.input"),
    ([0, (), 0, 0, (0, 1), 1, 1, (1,)], "layer1.skips"),
    ([0, (0,), 0, 0, (0,), 1, 1, (1,)], "layer0.skips"),
])
def test_invalid_values_name_the_decision(values, needle):
    with pytest.raises(ArchitectureError, match=needle):
        ToySpace(layers=3, options=2).make(values)


def test_invalid_strings_name_decision_and_allowed_values():
    space = NB201Space()
    with pytest.raises(ArchitectureError, match=r"node2<-1.*one of none, skip_connect, nor_conv_1x1"):
        space.parse("nb201:none,none,conv9x9,none,none,none")
    with pytest.raises(ArchitectureError, match="6 decisions"):
        space.parse("nb201:none,none")
    with pytest.raises(ArchitectureError, match="unknown search space 'nope'"):
        Architecture.parse("nope:1,2")
    with pytest.raises(ArchitectureError, match="no space prefix"):
        space.parse("none,none,none,none,none,none")
    with pytest.raises(ArchitectureError, match=r"layer2.input.*anchor index 0..1"):
        ToySpace(layers=3).parse("toy:op0,-,op1,0,-,op0,2,-")


def test_nb201_arch_str_round_trip_all():
    space = NB201Space()
    archs = list(iter_all(space))
    assert len(archs) == 15625 == space.size()
    for a in archs[::97]:
        s = space.to_arch_str(a)
        assert space.from_arch_str(s) == a and space.parse(s) == a
    a = space.from_arch_str("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    assert str(a) == "nb201:nor_conv_3x3,nor_conv_3x3,avg_pool_3x3,skip_connect,nor_conv_3x3,skip_connect"


@pytest.mark.parametrize("bad, needle", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|", "3 nodes"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|", "node 3 needs 3 edges"),
    ("|conv~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|", "op 'conv' is not one of"),
    ("|none~1|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|", "must come from node 0"),
])
def test_nb201_bad_arch_str(bad, needle):
    with pytest.raises(ArchitectureError, match=needle):
        NB201Space().from_arch_str(bad)


def test_mutate_changes_exactly_one_decision():
    rng = random.Random(1)
    for space in (NB201Space(), ToySpace(layers=4, options=3), ToySpace(layers=3, layout="cell")):
        for _ in range(100):
            a = space.random(rng)
            b = space.mutate(a, rng)
            assert sum(x != y for x, y in zip(a.values, b.values)) == 1
            space.check(b)


def test_decision_constructors_reject_nonsense():
    with pytest.raises(ValueError):
        Choice("x", ())
    with pytest.raises(ValueError):
        Choice("x", ("a", "a"))
    with pytest.raises(ValueError):
        Anchor("x", 0)
    with pytest.raises(ValueError):
        AnchorSet("x", -1)
    with pytest.raises(ValueError, match="layout"):
        get_space("toy", layout="tree")


# -- the registry (tests/test_space_contract.py checks every registered space) ----------------------
from torchnas.registry import register, registered  # noqa: E402


def test_registering_a_second_definition_under_a_name_fails():
    with pytest.raises(ValueError, match="registered twice"):
        register("space", "nb201")(ToySpace)
    with pytest.raises(ValueError, match="unknown registry"):
        register("model")
    with pytest.raises(ValueError, match="unknown registry"):
        registered("model")
    assert registered("space")["nb201"] is NB201Space
