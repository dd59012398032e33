"""ENAS micro space: decisions, controller program, arcs, standalone and shared networks."""
import random

import pytest
import torch

from torchnas.controller import Controller
from torchnas.nn import ops as O
from torchnas.spaces import (Anchor, Architecture, ArchitectureError, Choice, ENASMicroSpace, get_space,
                             space_from_config)
from torchnas.spaces.enas_micro import PUBLISHED_ARC, reduction_layers

pytestmark = pytest.mark.usefixtures("one_thread")

SPACE = ENASMicroSpace()
C, LAYERS = 8, 3            # tiny networks: 8 channels, one normal cell per stage


def _archs(n, seed=0):
    rng = random.Random(seed)
    return [SPACE.random(rng) for _ in range(n)]




@pytest.fixture(scope="module")
def shared():
    torch.manual_seed(0)
    return SPACE.shared(3, 10, channels=C, num_layers=LAYERS)


# -- decisions and controller program ---------------------------------------------------------------
def test_decisions_follow_the_authors_arc_order():
    d = SPACE.decisions
    assert len(d) == 2 * 5 * 4
    assert [x.name for x in d[:4]] == ["normal.node0.input1", "normal.node0.op1", "normal.node0.input2",
                                       "normal.node0.op2"]
    assert d[20].name == "reduce.node0.input1" and d[-1].name == "reduce.node4.op2"
    for cell in range(2):
        for i in range(5):
            b = cell * 20 + 4 * i
            assert isinstance(d[b], Anchor) and isinstance(d[b + 2], Anchor)
            assert d[b].num_anchors == d[b + 2].num_anchors == 2 + i
            assert isinstance(d[b + 1], Choice) and d[b + 1].kind == d[b + 3].kind == "op"
            assert d[b + 1].options == ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
    assert SPACE.choice_kinds() == {"op": 5}


def test_controller_program_matches_the_micro_controller():
    steps = SPACE.steps
    assert len(steps) == 2 * (2 + 5 * 5)
    for cell in range(2):
        s = steps[cell * 27:(cell + 1) * 27]
        assert s[0].decision is None and s[0].anchor == "zero" and s[0].reset_anchors == (cell == 1)
        assert s[1].decision is None and s[1].anchor == "zero" and not s[1].reset_anchors
        for i in range(5):
            b = cell * 20 + 4 * i
            node = s[2 + 5 * i:7 + 5 * i]
            assert [st.decision for st in node] == [b, b + 2, b + 1, b + 3, None]   # idx1, idx2, op1, op2
            assert [st.anchor for st in node] == [None] * 4 + ["h"]
    # every Anchor decision sees exactly 2 + i registered anchors when it is made
    registered = 0
    for st in steps:
        registered = 0 if st.reset_anchors else registered
        if st.decision is not None and isinstance(SPACE.decisions[st.decision], Anchor):
            assert SPACE.decisions[st.decision].num_anchors == registered
        registered += st.anchor is not None
    assert sorted(st.decision for st in steps if st.decision is not None) == list(range(40))


def test_controller_samples_valid_architectures_and_scores_them():
    ctrl = Controller(SPACE, tanh_constant=1.10, op_tanh_reduce=2.5)   # scripts/cifar10_micro_search.sh
    sample = ctrl.sample(16, generator=torch.Generator().manual_seed(0))
    for a in sample.archs:
        SPACE.check(a)
        assert SPACE.from_arc(*SPACE.to_arc(a)) == a
    again = ctrl.log_prob(sample.archs)
    assert torch.allclose(again.log_probs, sample.log_probs, atol=1e-5)
    assert torch.allclose(again.entropies, sample.entropies, atol=1e-5)


# -- arcs ----------------------------------------------------------------------------------------
def test_published_cell_round_trips():
    # melodyguan/enas scripts/cifar10_micro_final.sh @014bae1: fixed_arc, normal then reduction cell
    normal, reduce = PUBLISHED_ARC
    assert normal == "0 2 0 0 0 4 0 1 0 4 1 1 1 0 0 1 0 2 1 1"
    assert reduce == "1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1"
    a = SPACE.from_arc(normal, reduce)
    assert SPACE.to_arc(a) == (normal, reduce)
    assert a.values[:4] == (0, 2, 0, 0)                          # node0 = avg_pool(in 0) + sep_conv_3x3(in 0)
    assert str(a).startswith("enas-micro:0,avg_pool_3x3,0,sep_conv_3x3,0,identity,")
    for text in (str(a), f"enas-micro:{normal} | {reduce}", f"{normal} {reduce}", f"enas-micro: {normal}; {reduce}"):
        assert SPACE.parse(text) == a
    assert Architecture.parse(str(a)) == a
    assert Architecture.from_json(a.dumps()) == a


def test_random_arcs_round_trip():
    for a in _archs(30):
        assert SPACE.from_arc(*SPACE.to_arc(a)) == a
        assert SPACE.parse(str(a)) == a and SPACE.parse(" ".join(SPACE.to_arc(a))) == a


@pytest.mark.parametrize("normal, reduce, needle", [
    ("0 2 0 0 0 4 0 1 5 4 1 1 1 0 0 1 0 2 1 1", PUBLISHED_ARC[1], "normal.node2.input1"),
    (PUBLISHED_ARC[0], "1 0 1 5 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1", "reduce.node0.op2"),
    (PUBLISHED_ARC[0], "1 0 2 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1", "reduce.node0.input2"),
    ("0 2 0 x 0 4 0 1 0 4 1 1 1 0 0 1 0 2 1 1", PUBLISHED_ARC[1], "normal.node0.op2"),
    ("0 2 0 0", PUBLISHED_ARC[1], "normal cell arc has 4 integers"),
])
def test_invalid_arcs_name_the_node(normal, reduce, needle):
    with pytest.raises(ArchitectureError, match=needle.replace(".", r"\.")):
        SPACE.from_arc(normal, reduce)


def test_invalid_arc_messages_give_allowed_values():
    with pytest.raises(ArchitectureError, match=r"0\.\.3") as e:
        SPACE.from_arc("0 2 0 0 0 4 0 1 5 4 1 1 1 0 0 1 0 2 1 1", PUBLISHED_ARC[1])
    assert "node2" in str(e.value)
    with pytest.raises(ArchitectureError, match="4=identity"):
        SPACE.from_arc(PUBLISHED_ARC[0], "1 0 1 7 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1")
    with pytest.raises(ArchitectureError, match="40 integers"):
        SPACE.parse("enas-micro:0 1 0 1")
    with pytest.raises(ArchitectureError, match="nas-cnn"):
        SPACE.parse("nas-cnn:" + PUBLISHED_ARC[0])


def test_config_and_registry():
    space = get_space("enas-micro", num_nodes=3, ops=["sep_conv_3x3", "identity"])
    assert space_from_config(space.config()).decisions == space.decisions
    assert len(space.decisions) == 24 and space.choice_kinds() == {"op": 2}
    assert space_from_config(SPACE.config()).decisions == SPACE.decisions
    with pytest.raises(ValueError, match="unknown op"):
        ENASMicroSpace(ops=("conv_3x3",))


# -- standalone networks --------------------------------------------------------------------------
def test_reduction_cells_sit_where_the_authors_put_them():
    assert reduction_layers(6) == (2, 5) and reduction_layers(15) == (5, 11) and reduction_layers(3) == (1, 3)
    net = SPACE.child(_archs(1)[0], 3, 10, channels=C, num_layers=LAYERS)
    sizes = []
    hooks = [cell.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1])) for cell in net.cells]
    net(torch.randn(2, 3, 16, 16))
    for h in hooks:
        h.remove()
    assert sizes == [16, 8, 8, 4, 4]                          # N R N R N


@pytest.mark.parametrize("layout", ["final", "search"])
def test_child_logits_for_random_architectures(layout):
    x = torch.randn(2, 3, 32, 32)                              # a CIFAR-shaped batch
    for a in _archs(4, seed=1):
        net = SPACE.child(a, 3, 10, channels=C, num_layers=LAYERS, layout=layout)
        for mode in (net.train, net.eval):
            mode()
            out = net(x)
            assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_parameter_count_by_hand():
    """num_nodes=1, each cell = identity(input 0) + identity(input 1); channels 4, one cell per
    stage (layers N R N R N); stem 3 -> 12; counts derived by hand from micro_child.py."""
    space = ENASMicroSpace(num_nodes=1)
    net = space.child(space.from_arc("0 4 1 4", "0 4 1 4"), 3, 10, channels=4, num_layers=3)
    stem = 3 * 12 * 9 + 2 * 12
    rcb = lambda i, o: i * o + 2 * o                       # noqa: E731  ReLU-conv1x1-BN
    fr = lambda i, o: 2 * i * (o // 2) + 2 * o             # noqa: E731  factorized reduction
    n0 = rcb(12, 4) + rcb(12, 4) + rcb(4, 4)               # calibrate both stem copies, layer_base
    r1 = rcb(12, 8) + rcb(4, 8) + rcb(8, 8) + 2 * fr(8, 8)  # identity with stride 2 = factorized reduction
    n2 = fr(4, 8) + rcb(8, 8)                              # input 0 twice as large: factorized reduction
    r3 = rcb(8, 16) + rcb(8, 16) + rcb(16, 16) + 2 * fr(16, 16)
    n4 = fr(8, 16) + rcb(16, 16)
    fc = 16 * 10                                           # no bias
    assert sum(p.numel() for p in net.parameters()) == stem + n0 + r1 + n2 + r3 + n4 + fc == 2804


def test_parameter_counts_are_deterministic():
    a = SPACE.from_arc(*PUBLISHED_ARC)
    counts = {sum(p.numel() for p in SPACE.child(a, 3, 10, channels=C, num_layers=LAYERS).parameters())
              for _ in range(2)}
    assert counts == {78248}
    assert sum(p.numel() for p in SPACE.child(a, 3, 10, channels=C, num_layers=LAYERS,
                                              layout="search").parameters()) == 71944
    # the final-training size (channels 36, 15 layers), aux head excluded as in the authors' count
    big = SPACE.child(a, 3, 10, channels=36, num_layers=15)
    assert sum(p.numel() for p in big.parameters()) == 3894372


def test_loose_ends_are_concatenated():
    a = SPACE.from_arc(*PUBLISHED_ARC)
    net = SPACE.child(a, 3, 10, channels=C, num_layers=LAYERS)
    # normal: nodes use only the cell inputs -> all 5 nodes are loose; reduction: inputs 0, 1 and node 1 used
    assert net.cells[0].loose == [2, 3, 4, 5, 6] and net.cells[1].loose == [2, 4, 5, 6]
    seen = []
    hooks = [cell.register_forward_hook(lambda m, i, o: seen.append(o.shape[1])) for cell in net.cells]
    net(torch.randn(2, 3, 16, 16))
    for h in hooks:
        h.remove()
    assert seen == [5 * C, 4 * 2 * C, 5 * 2 * C, 4 * 4 * C, 5 * 4 * C] == [c.out_channels for c in net.cells]
    for a in _archs(10, seed=2):
        net = SPACE.child(a, 3, 10, channels=C, num_layers=LAYERS)
        normal, reduce = SPACE.cells_of(a)
        for layer, cell in enumerate(net.cells):
            nodes = reduce if layer in net.reduction_layers else normal
            used = {n[0] for n in nodes} | {n[2] for n in nodes}
            assert cell.loose == [k for k in range(7) if k not in used] and 6 in cell.loose
            assert cell.out_channels == len(cell.loose) * C * (1, 2, 2, 4, 4)[layer]
        assert net.classifier.in_features == net.cells[-1].out_channels
    search = SPACE.child(a, 3, 10, channels=C, num_layers=LAYERS, layout="search")
    assert [c.out_channels for c in search.cells] == [C, 2 * C, 2 * C, 4 * C, 4 * C]


def test_aux_head_and_drop_path():
    a = SPACE.from_arc(*PUBLISHED_ARC)
    net = SPACE.child(a, 3, 10, channels=C, num_layers=LAYERS, aux_head=True, image_size=32)
    assert net.aux_layer == 4                                  # aux_head_indices = [pool_layers[-1] + 1]
    x = torch.randn(3, 3, 32, 32)
    logits, aux = net(x)
    assert logits.shape == aux.shape == (3, 10)
    net.eval()
    assert net(x).shape == (3, 10)
    net.train()
    torch.manual_seed(0)
    assert torch.equal(net(x)[0], net(x)[0])                   # keep prob 1: deterministic
    net.drop_path_keep_prob = 0.5                              # the trainer's schedule sets this
    assert net.layer_keep_prob(0) == pytest.approx(1 - 1 / 5 * 0.5)
    assert net.layer_keep_prob(4) == pytest.approx(0.5)
    assert not torch.equal(net(x)[0], net(x)[0])
    y = O.drop_path(torch.ones(1000, 2, 3, 3), 0.6)
    kept = y[:, 0, 0, 0] != 0
    assert 0.5 < kept.float().mean() < 0.7 and torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.6))
    assert (y[~kept] == 0).all()


def test_channels_last_input():
    net = SPACE.child(_archs(1, seed=3)[0], 3, 10, channels=C, num_layers=LAYERS).eval()
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(net(x), net.to(memory_format=torch.channels_last)(x.contiguous(
        memory_format=torch.channels_last)), atol=1e-5)


# -- TF "SAME" ops --------------------------------------------------------------------------------
def test_same_padding_and_pooling_follow_tensorflow():
    assert O.same_padding(32, 3, 2) == (0, 1) and O.same_padding(32, 5, 2) == (1, 2)
    assert O.same_padding(32, 3, 1) == (1, 1) and O.same_padding(7, 3, 2) == (1, 1)
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    avg = O.pool2d_same(x, "avg", 3, 2)                        # windows rows/cols 0-2 and 2-3 (pad after)
    assert avg.shape == (1, 1, 2, 2)
    assert torch.isclose(avg[0, 0, 0, 0], x[0, 0, :3, :3].mean())
    assert torch.isclose(avg[0, 0, 1, 1], x[0, 0, 2:, 2:].mean())
    assert O.pool2d_same(x, "max", 3, 2)[0, 0].tolist() == [[10.0, 11.0], [14.0, 15.0]]
    assert torch.isclose(O.pool2d_same(x, "avg", 3, 1)[0, 0, 0, 0], x[0, 0, :2, :2].mean())   # padding not counted
    fr = O.FactorizedReduce(1, 2)
    with torch.no_grad():
        fr.conv_1.weight.fill_(1.0)
        fr.conv_2.weight.fill_(1.0)
    fr.eval()
    y = (fr(x) - fr.bn.bias[:, None, None]) * torch.sqrt(fr.bn.running_var + fr.bn.eps)[:, None, None]
    assert torch.allclose(y[0, 0], x[0, 0, ::2, ::2]) and torch.allclose(y[0, 1], x[0, 0, 1::2, 1::2])


# -- shared weights --------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_child_from_shared_computes_the_shared_function(shared, mode):
    getattr(shared, mode)()
    x = torch.randn(3, 3, 16, 16)
    for a in _archs(4, seed=4) + [SPACE.from_arc(*PUBLISHED_ARC)]:
        child = SPACE.child_from_shared(shared, a)
        assert type(child) is type(SPACE.child(a, 3, 10, channels=C, num_layers=LAYERS))
        with torch.no_grad():
            assert torch.allclose(shared(x, a), child(x), atol=1e-5)
    shared.train()


def test_child_from_shared_with_running_stats_and_aux():
    torch.manual_seed(1)
    net = SPACE.shared(3, 10, channels=C, num_layers=LAYERS, batch_stats=False, aux_head=True)
    a = _archs(1, seed=5)[0]
    x = torch.randn(2, 3, 32, 32)
    net(x, a)                                                  # move the running averages
    child = SPACE.child_from_shared(net, a)
    for p, q in zip(net(x, a), child(x)):                      # train mode: (logits, aux)
        assert torch.allclose(p, q, atol=1e-5)
    net.eval()
    child.eval()
    assert torch.allclose(net(x, a), child(x), atol=1e-5)


def test_only_the_sampled_path_gets_gradients(shared):
    shared.train()
    x = torch.randn(2, 3, 16, 16)
    for a in _archs(2, seed=6):
        shared.zero_grad(set_to_none=True)
        shared(x, a).sum().backward()
        normal, reduce = SPACE.cells_of(a)
        for layer, cell in enumerate(shared.cells):
            nodes = reduce if layer in shared.reduction_layers else normal
            for i, node in enumerate(nodes):
                for slot in range(2):
                    for inp, ops in enumerate(cell.branches[i][slot]):
                        for op, module in ops.items():
                            on_path = (inp, int(op)) == (node[2 * slot], node[2 * slot + 1])
                            for p in module.parameters():
                                if on_path:
                                    assert p.grad is not None and p.grad.abs().sum() > 0
                                else:
                                    assert p.grad is None or not p.grad.any()
            used = {n[0] for n in nodes} | {n[2] for n in nodes}
            has_grad = cell.final_w.grad.flatten(1).abs().sum(1) > 0      # final_conv blocks of loose ends only
            assert has_grad.tolist() == [k not in used for k in range(7)]
            for m in (cell.pre0, cell.pre1, cell.final_bn):
                for p in ([] if m is None else m.parameters()):
                    assert p.grad is not None and p.grad.abs().sum() > 0
        for p in list(shared.stem.parameters()) + list(shared.pre_reduce.parameters()) + [shared.classifier.weight]:
            assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("train_head", [False, True])
def test_aux_train_head_false_keeps_the_head_at_its_initial_weights(train_head):
    """``aux_train_head: false`` (micro_child.py ``_build_train``: no ``aux_head`` variable in
    the trained, l2-decayed list): after a step the head's weights are their initial values,
    while the trunk has still received the head's 0.4-weighted gradient; with true the head
    learns too."""
    from torchnas.data.images import ImageData
    from torchnas.training import Training
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(8) % 2
    data = ImageData("toy", x, y, x, y, x, y, 2, ["a", "b"], torch.full((3,), 0.5), torch.full((3,), 0.25))
    a = SPACE.from_arc(*PUBLISHED_ARC)
    torch.manual_seed(0)
    net = SPACE.child(a, 3, 2, channels=C, num_layers=LAYERS, aux_head=True, image_size=32)
    head0 = {k: v.clone() for k, v in net.aux_head.state_dict().items()}
    trunk0 = net.stem[0].weight.detach().clone()

    def run(weight):
        torch.manual_seed(0)
        m = SPACE.child(a, 3, 2, channels=C, num_layers=LAYERS, aux_head=True, image_size=32)
        t = Training(m, data, epochs=1, batch_size=8, lr=0.1, weight_decay=1e-3, augment=False,
                     channels_last=False, aux_weight=weight, aux_train_head=train_head, grad_clip=5.0)
        t.train_epoch()
        return t

    t = run(0.4)
    head = t.model.aux_head
    trained = [k for k, p in head.named_parameters() if not torch.equal(p.detach(), head0[k])]
    assert trained == ([] if not train_head else [k for k, _ in head.named_parameters()])
    assert all(p.requires_grad == train_head for p in head.parameters())
    assert {id(p) for p in t.params} == {id(p) for p in t.model.parameters() if p.requires_grad}
    bn = [k for k in head0 if k.endswith("running_mean")]
    assert bn and all(not torch.equal(head.state_dict()[k], head0[k]) for k in bn)   # statistics still move
    # the head's loss still reaches the trunk: a different aux weight gives a different stem
    stem = t.model.stem[0].weight.detach()
    assert not torch.equal(stem, trunk0)
    assert not torch.equal(stem, run(0.0).model.stem[0].weight.detach())
