"""ENAS macro space: decisions, controller program, arcs, shared / search-child / final networks."""
import random

import pytest
import torch

from torchnas.controller import Controller
from torchnas.spaces import (AnchorSet, ArchitectureError, Choice, ENASMacroSpace, get_space,
                             space_from_config)
from torchnas.spaces.enas_macro import (ENAS_MACRO_OPS, PUBLISHED_ARC, PUBLISHED_ARC_LAYERS, ENASMacroSearchChild,
                                        reduction_layers)

pytestmark = pytest.mark.usefixtures("one_thread")

L, C = 6, 8                  # tiny networks: 6 layers (reductions after layers 1 and 3), 8 channels
SPACE = ENASMacroSpace(num_layers=L)


def _archs(n, seed=0, space=SPACE):
    rng = random.Random(seed)
    return [space.random(rng) for _ in range(n)]




@pytest.fixture(scope="module")
def shared():
    torch.manual_seed(0)
    net = SPACE.shared(3, 10, channels=C)
    # give the BN running statistics non-trivial values, as after some search training
    net.train()
    with torch.no_grad():
        for arch in _archs(4, seed=7):
            net(torch.randn(4, 3, 16, 16), arch)
    return net.eval()


# -- decisions and controller program ---------------------------------------------------------------
def test_decisions_and_program_follow_the_macro_controller():
    d = SPACE.decisions
    assert len(d) == 2 * L and SPACE.choice_kinds() == {"op": 6}
    for i in range(L):
        op, skips = d[2 * i], d[2 * i + 1]
        assert isinstance(op, Choice) and op.name == f"layer{i}.op" and op.kind == "op"
        assert op.options == ENAS_MACRO_OPS
        assert isinstance(skips, AnchorSet) and skips.name == f"layer{i}.skips" and skips.num_anchors == i
    steps = SPACE.steps
    assert len(steps) == 2 * L
    assert [(s.decision, s.anchor, s.reset_anchors) for s in steps] == \
        [x for i in range(L) for x in ((2 * i, None, False), (2 * i + 1, "h", False))]
    registered = 0      # every skip decision sees exactly the anchors of the earlier layers
    for st in steps:
        if isinstance(SPACE.decisions[st.decision], AnchorSet):
            assert SPACE.decisions[st.decision].num_anchors == registered
        registered += st.anchor is not None
    # the paper's count for 12 layers: 6^12 x 2^(12*11/2) = 1.6e29
    assert ENASMacroSpace().size() == 6 ** 12 * 2 ** 66
    assert f"{ENASMacroSpace().size():.2g}" == "1.6e+29"


def test_registry_and_config():
    assert isinstance(get_space("enas-macro"), ENASMacroSpace)
    s = space_from_config(ENASMacroSpace(num_layers=4, ops=ENAS_MACRO_OPS[:4]).config())
    assert s.num_layers == 4 and s.ops == ENAS_MACRO_OPS[:4] and len(s.decisions) == 8
    with pytest.raises(ValueError, match="unknown op"):
        ENASMacroSpace(ops=("conv_3x3", "dil_conv_3x3"))
    with pytest.raises(ValueError, match="num_layers"):
        ENASMacroSpace(num_layers=0)


def test_reduction_layers_follow_pool_distance():
    # general_child.py: pool_distance = L // 3; pool_layers = [pool_distance - 1, 2 * pool_distance - 1]
    assert reduction_layers(12) == (3, 7)
    assert reduction_layers(24) == (7, 15)
    assert reduction_layers(6) == (1, 3)
    assert reduction_layers(5) == (0, 1)     # 2 * (5 // 3) - 1, not 2 * 5 // 3 - 1
    assert reduction_layers(2) == ()


def test_controller_samples_valid_architectures_and_scores_them():
    ctrl = Controller(SPACE, tanh_constant=1.5)          # scripts/cifar10_macro_search.sh
    sample = ctrl.sample(16, generator=torch.Generator().manual_seed(0))
    for a in sample.archs:
        SPACE.check(a)
        assert a.values[1] == ()
    assert len({a for a in sample.archs}) > 1
    again = ctrl.log_prob(sample.archs)
    torch.testing.assert_close(again.log_probs, sample.log_probs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again.skip_penalties, sample.skip_penalties, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(sample.log_probs).all() and (sample.log_probs < 0).all()


# -- arcs -------------------------------------------------------------------------------------------
def test_arc_round_trip_for_random_archs():
    for space in (SPACE, ENASMacroSpace(num_layers=24)):
        for arch in _archs(20, seed=3, space=space):
            arc = space.to_arc(arch)
            assert len(arc.split()) == space.num_layers * (space.num_layers + 1) // 2
            assert space.from_arc(arc) == arch
            assert space.parse(arc) == arch
            assert space.parse("enas-macro: " + arc) == arch
            assert space.parse(str(arch)) == arch


def test_published_arc_parses_and_round_trips():
    space = ENASMacroSpace(num_layers=24)
    arch = space.from_arc(PUBLISHED_ARC)
    assert space.to_arc(arch) == PUBLISHED_ARC
    assert space.parse("\n".join(PUBLISHED_ARC_LAYERS)) == arch      # line breaks allowed
    layers = space.layers_of(arch)
    assert {op for op, _ in layers} == {0, 1, 2, 3}                   # the final script: num_branches=4
    assert layers[0] == (0, ()) and layers[1] == (3, ())
    assert layers[5] == (3, (0, 1, 3))                                # "3 1 1 0 1 0"
    assert layers[9] == (0, ())                                       # "0 0 0 0 0 0 0 0 0 0"
    assert space.parse(str(arch)) == arch
    with pytest.raises(ArchitectureError, match="num_layers=24"):
        ENASMacroSpace(num_layers=12).from_arc(PUBLISHED_ARC)


@pytest.mark.parametrize("arc, pattern", [
    ("0 1 0 2 0 1", r"ends in layer 3: expected the op index and 3 skip bit"),
    ("0 1 0 2 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0", r"1 left over after layer 5"),
    ("0 6 0", r"layer 1 \(decision 'layer1.op'\): '6' is not an op index 0..5"),
    ("0 1 0 2 0 1 0 1 2 0", r"layer 3 \(decision 'layer3.skips'\): skip bit 1 is '2'; expected 0 or 1"),
    ("0 1 0 x", r"layer 2 \(decision 'layer2.op'\): 'x' is not an op index"),
    ("-1", r"layer 0 \(decision 'layer0.op'\)"),
])
def test_bad_arcs_are_rejected_naming_the_layer(arc, pattern):
    with pytest.raises(ArchitectureError, match=pattern):
        SPACE.parse(arc)


def test_other_space_prefix_is_rejected():
    with pytest.raises(ArchitectureError, match="enas-micro"):
        SPACE.parse("enas-micro: 0")


# -- shared network and its standalone search children --------------------------------------------
def test_shared_matches_the_standalone_search_child(shared):
    x = torch.randn(3, 3, 16, 16)
    for arch in _archs(6, seed=11):
        child = SPACE.child_from_shared(shared, arch)
        assert isinstance(child, ENASMacroSearchChild) and not child.training
        n_child = sum(p.numel() for p in child.parameters())
        assert n_child < sum(p.numel() for p in shared.parameters())
        with torch.no_grad():
            torch.testing.assert_close(child(x), shared(x, arch), atol=1e-5, rtol=0)
    # train mode (batch statistics) too; keep_prob = 1 so no dropout noise
    arch = _archs(1, seed=12)[0]
    shared.train()
    try:
        child = SPACE.child_from_shared(shared, arch)
        with torch.no_grad():
            torch.testing.assert_close(child(x), shared(x, arch), atol=1e-5, rtol=0)
    finally:
        shared.eval()


def test_search_network_sums_skips_then_bn_with_constant_channels(shared):
    """_enas_layer: out = BN(op(prev[-1]) + sum of chosen prev[j]); no doubling at reductions."""
    ops = [0, 1, 2, 4, 5, 3]
    arch = SPACE.make([0, (), 1, (0,), 2, (0, 1), 4, (1,), 5, (0, 2, 3), 3, ()])
    seen = {}

    def keep(key):
        return lambda m, i, o: seen.__setitem__(key, (i[0], o))
    hooks = [layer.ops[str(op)].register_forward_hook(keep(("op", k)))
             for k, (layer, op) in enumerate(zip(shared.layers, ops))]
    hooks += [layer.combine.register_forward_hook(keep(("bn", k)))
              for k, layer in enumerate(shared.layers) if layer.combine is not None]
    hooks += [r.register_forward_hook(keep(("reduce", 1, j))) for j, r in enumerate(shared.layers[1].reduce)]
    try:
        with torch.no_grad():
            shared(torch.randn(2, 3, 16, 16), arch)
    finally:
        for h in hooks:
            h.remove()
    assert [seen[("op", k)][0].shape[2] for k in range(L)] == [16, 16, 8, 8, 4, 4]   # reductions after 1, 3
    assert all(seen[("op", k)][0].shape[1] == seen[("op", k)][1].shape[1] == C for k in range(L))
    assert len(shared.layers[1].reduce) == 3 and len(shared.layers[3].reduce) == 5   # stem + every output
    # skip j of layer i is the input of layer j: after the reduction at layer 1, prev_layers is
    # [R(stem), R(out_0), R(out_1)]; layer 2's skips (0, 1) are R(stem) and R(out_0)
    r_stem, r_out0 = seen[("reduce", 1, 0)][1], seen[("reduce", 1, 1)][1]
    torch.testing.assert_close(seen[("bn", 2)][0], seen[("op", 2)][1] + r_stem + r_out0)
    # layer 3's skip 1 is R(out_0) as well
    torch.testing.assert_close(seen[("bn", 3)][0], seen[("op", 3)][1] + r_out0)
    # layer 5 has no skips: its BN input is the op output alone
    torch.testing.assert_close(seen[("bn", 5)][0], seen[("op", 5)][1])


def test_only_the_sampled_path_gets_gradients():
    torch.manual_seed(1)
    net = SPACE.shared(3, 10, channels=C).train()
    arch = _archs(1, seed=5)[0]
    net.zero_grad(set_to_none=True)
    net(torch.randn(2, 3, 16, 16), arch).sum().backward()
    chosen = [op for op, _ in SPACE.layers_of(arch)]
    for i, layer in enumerate(net.layers):
        for k, op in layer.ops.items():
            grads = [p.grad for p in op.parameters()]
            if int(k) == chosen[i]:
                assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads), (i, k)
            else:
                assert all(g is None or not g.any() for g in grads), (i, k)
    assert net.stem[0].weight.grad is not None and net.classifier.weight.grad is not None


# -- the final network ------------------------------------------------------------------------------
def test_final_child_shapes_reductions_and_channel_doubling():
    torch.manual_seed(2)
    arch = SPACE.make([1, (), 3, (0,), 0, (0, 1), 4, (1, 2), 5, (0, 3), 2, (0, 1, 2, 3, 4)])
    net = SPACE.child(arch, 3, 10, channels=C).eval()
    inputs, combines = {}, {}
    hooks = [layer.ops[str(op)].register_forward_hook(lambda m, i, o, k=k: inputs.__setitem__(k, (i[0], o)))
             for k, (layer, (op, _)) in enumerate(zip(net.layers, SPACE.layers_of(arch)))]
    hooks += [layer.combine.register_forward_hook(lambda m, i, o, k=k: combines.__setitem__(k, (i[0], o)))
              for k, layer in enumerate(net.layers) if layer.combine is not None]
    try:
        with torch.no_grad():
            out = net(torch.randn(2, 3, 32, 32))
    finally:
        for h in hooks:
            h.remove()
    assert out.shape == (2, 10)
    assert [inputs[k][0].shape[2] for k in range(L)] == [32, 32, 16, 16, 8, 8]
    assert [inputs[k][0].shape[1] for k in range(L)] == [C, C, 2 * C, 2 * C, 4 * C, 4 * C]
    assert [inputs[k][1].shape[1] for k in range(L)] == [C, C, 2 * C, 2 * C, 4 * C, 4 * C]
    assert net.layer_channels == [C, C, 2 * C, 2 * C, 4 * C, 4 * C] and net.out_channels == 4 * C
    # final-model rule: concat(skips + [op output]) -> ReLU -> 1x1 conv -> BN
    for k, (_, skips) in enumerate(SPACE.layers_of(arch)):
        if k:
            c = net.layer_channels[k]
            assert combines[k][0].shape[1] == (len(skips) + 1) * c
            torch.testing.assert_close(combines[k][0][:, -c:], inputs[k][1])
    # skip bit j of layer i is the input of layer j (general_child.py: prev_layers[j] with
    # prev_layers = [stem, out_0, ...]): layer 1's only skip is the stem output, layer 0's input
    torch.testing.assert_close(combines[1][0][:, :C], inputs[0][0])
    # layer 2's skips (0, 1) are the reduced stem output and the reduced output of layer 0
    # (layer 1's input); both went through a factorized reduction to 2C channels
    assert combines[2][0].shape == (2, 3 * 2 * C, 16, 16)
    # separable ops are separable (the authors' final script would build plain convs)
    sep = net.layers[0].ops["1"][1].blocks[0][1]
    assert sep.groups == C and sep.kernel_size == (3, 3)
    assert net.classifier.bias is None


def test_channels_last_and_keywords():
    torch.manual_seed(3)
    arch = _archs(1, seed=9)[0]
    x = torch.randn(2, 3, 16, 16)
    for net, run in ((SPACE.child(arch, 3, 10, channels=C).eval(), lambda n, t: n(t)),
                     (SPACE.shared(3, 10, channels=C).eval(), lambda n, t: n(t, arch))):
        with torch.no_grad():
            ref = run(net, x)
            cl = run(net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(cl, ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(TypeError, match="aux"):
        SPACE.child(arch, 3, 10, channels=C, aux_head=True)
    with pytest.raises(ValueError, match="even"):
        SPACE.shared(3, 10, channels=7)
    with pytest.raises(ValueError, match="another enas-macro space"):
        other = ENASMacroSpace(num_layers=4)
        other.child_from_shared(SPACE.shared(3, 10, channels=C), _archs(1, space=other)[0])


def _expected_final_params(layers, channels, num_classes, in_channels, kernel, separable):
    """Count the final network's parameters from the layer rules (general_child.py _model /
    _fixed_layer / _factorized_reduction), without building it. ``layers``: (op, n_skips)."""
    c = channels
    n = 3 * 3 * in_channels * c + 2 * c                            # stem conv 3x3 + BN
    pools = {len(layers) // 3 - 1, 2 * (len(layers) // 3) - 1}
    for i, (op, n_skips) in enumerate(layers):
        k = kernel[op]
        n += c * c + 2 * c                                         # ReLU-conv1x1-BN
        n += (k * k * c + c * c if op in separable else k * k * c * c) + 2 * c   # k x k (sep) conv + BN
        if i > 0:
            n += (n_skips + 1) * c * c + 2 * c                     # concat -> ReLU-conv1x1-BN
        if i in pools:                                             # every prev_layers entry: 2 convs c -> c, BN 2c
            n += (i + 2) * (2 * c * c + 2 * 2 * c)
            c *= 2
    return n + c * num_classes                                    # linear, no bias


def test_published_arc_on_the_command_line(capsys):
    """The authors' 24-layer arc is longer than a file name may be: it is taken as an
    architecture, never asked of the file system (it used to raise OSError: File name too long)."""
    from torchnas.cli import main
    assert len(PUBLISHED_ARC) > 255
    assert main(["train", "--preset", "enas-macro-final", "--arc", PUBLISHED_ARC, "--dry-run"]) == 0
    assert "parameters: 30,947,424" in capsys.readouterr().out


def test_final_configuration_parameter_count(capsys):
    """The paper's final macro network: 24 layers, 96 channels, the published arc, 10 classes."""
    tokens = [int(t) for t in PUBLISHED_ARC.split()]
    layers, pos = [], 0
    for i in range(24):                                            # parse the arc independently
        layers.append((tokens[pos], sum(tokens[pos + 1:pos + 1 + i])))
        pos += 1 + i
    kernel = {0: 3, 1: 3, 2: 5, 3: 5}
    expected = _expected_final_params(layers, 96, 10, 3, kernel, separable={1, 3})
    # as the authors' final script trains it: ops 1 and 3 as plain convs (same arc, ops renamed)
    expected_plain = _expected_final_params(layers, 96, 10, 3, kernel, separable=set())

    space = ENASMacroSpace(num_layers=24)
    plain_space = ENASMacroSpace(num_layers=24, ops=("conv_3x3", "conv_5x5"))
    with torch.device("meta"):                                     # count without allocating
        net = space.child(space.from_arc(PUBLISHED_ARC), 3, 10, channels=96)
        plain_arc = " ".join(str({0: 0, 1: 0, 2: 1, 3: 1}[int(t)]) if j == 0 else t
                             for line in PUBLISHED_ARC_LAYERS for j, t in enumerate(line.split()))
        plain = plain_space.child(plain_space.from_arc(plain_arc), 3, 10, channels=96)
    got = sum(p.numel() for p in net.parameters())
    got_plain = sum(p.numel() for p in plain.parameters())
    with capsys.disabled():
        print(f"\nENAS macro final network (24 layers, 96 channels, published arc, 10 classes): "
              f"{got:,} parameters ({got / 1e6:.2f}M) with separable ops 1/3; "
              f"{got_plain:,} ({got_plain / 1e6:.2f}M) with plain convs as in the authors' _fixed_layer; "
              f"paper: 21.3M / 38.0M")
    assert got == expected
    assert got_plain == expected_plain
    assert net.reduction_layers == (7, 15) and net.out_channels == 384
