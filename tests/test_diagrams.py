"""Architecture diagrams (torchnas.viz.diagrams): the graphs follow the decisions of each space,
and both renderers write real files."""
import random
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from importlib import resources

import pytest
import yaml
from PIL import Image

from torchnas.spaces import (Architecture, Choice, ENASMacroSpace, ENASMicroSpace, ENASRNNSpace, NASCNNSpace,
                             NB201Space, SearchSpace, ToySpace, space_from_config)
from torchnas.spaces.enas_rnn import PUBLISHED_ARC
from torchnas.viz import diagrams as D
from torchnas.viz import draw, graph_of, to_dot


def preset_arch(name):
    cfg = yaml.safe_load((resources.files("torchnas.presets") / f"{name}.yaml").read_text())
    return space_from_config(cfg["space"]).parse(cfg["arch"])


def sample(space, seed=0):
    return space.random(random.Random(seed))


def sources(g, dst):
    """Counter of (source id, op label) over the edges entering ``dst``."""
    return Counter((e.src, e.label) for e in g.into(dst))


def label_lines(g):
    """Every line of every node and edge label (multi-line labels are drawn line by line)."""
    texts = [n.label for n in g.nodes] + [e.label for e in g.edges if e.label]
    return {line for t in texts for line in t.split("\n")}


def all_labels(g):
    return " ".join([n.label for n in g.nodes] + [e.label for e in g.edges])


RNN_PUB = ENASRNNSpace().parse(PUBLISHED_ARC)
MICRO_PUB = preset_arch("enas-micro-final")
MACRO_PUB = preset_arch("enas-macro-final")


# -- ENAS recurrent cell (Pham et al. 2018, Fig. 1) ---------------------------------------------
@pytest.mark.parametrize("arch", [RNN_PUB, sample(ENASRNNSpace(), 1), sample(ENASRNNSpace(num_nodes=3), 2)])
@pytest.mark.parametrize("output", ["average", "loose_ends"])
def test_rnn_graph_follows_the_arc(arch, output):
    space = arch.search_space
    nodes = space.nodes_of(arch)
    N = len(nodes)
    g = graph_of(arch, rnn_output=output)
    assert len(g.nodes) == N + 4                                        # x, h_prev, node 0..N, h[t]
    assert {n.id for n in g.nodes} == {"x", "h_prev", "h"} | {f"n{i}" for i in range(N + 1)}
    assert sources(g, "n0") == Counter({("x", ""): 1, ("h_prev", ""): 1})
    assert g.node("n0").label == "0: tanh"
    for i, (p, a) in enumerate(nodes, 1):
        assert [e.src for e in g.into(f"n{i}")] == [f"n{p}"]           # node i reads its prev
        assert g.node(f"n{i}").label == f"{i}: {space.activations[a]}"
    used = {p for p, _ in nodes}
    want = set(range(1, N + 1)) if output == "average" else set(range(1, N + 1)) - used
    assert {e.src for e in g.into("h")} == {f"n{k}" for k in want}
    assert g.node("h").kind == "output" and g.node("x").kind == "input"


def test_rnn_published_cell():
    g = graph_of(RNN_PUB, rnn_output="loose_ends")
    # arc 0 2 1 0 2 1 2 2 4 0 5 0 3 2 6 2: prevs 0 1 2 2 4 5 3 6
    assert [g.into(f"n{i}")[0].src for i in range(1, 9)] == [f"n{p}" for p in (0, 1, 2, 2, 4, 5, 3, 6)]
    assert [g.node(f"n{i}").label.split(": ")[1] for i in range(1, 9)] == \
        ["sigmoid", "tanh", "relu", "sigmoid", "tanh", "tanh", "sigmoid", "sigmoid"]
    assert sorted(e.src for e in g.into("h")) == ["n7", "n8"]           # the paper's loose ends
    assert len(graph_of(RNN_PUB).into("h")) == 8                        # the reference's average
    with pytest.raises(ValueError, match="rnn_output"):
        graph_of(RNN_PUB, rnn_output="sum")


# -- ENAS convolutional cells (Pham et al. 2018, Fig. 8) ----------------------------------------
def op_sources(g, dst):
    """Counter of (source id, op label) over the op boxes feeding ``dst`` (ENAS Fig. 8)."""
    return Counter((f.src, g.node(e.src).label) for e in g.into(dst) for f in g.into(e.src))


@pytest.mark.parametrize("arch", [MICRO_PUB, sample(ENASMicroSpace(), 3), sample(ENASMicroSpace(num_nodes=2), 4)])
def test_micro_graph_follows_the_cells(arch):
    """Fig. 8: per node two op boxes (labelled with the op) feeding an add; nodes numbered as
    the arc numbers them (2..B+1, after the inputs 0 and 1) and added in that order."""
    space = arch.search_space
    B = space.num_nodes
    g = graph_of(arch)
    assert len(g.nodes) == 2 * (2 + 3 * B + 1) and g.ordered
    assert [c.label for c in g.clusters] == ["normal cell", "reduction cell"]
    for cluster, cell in zip(g.clusters, space.cells_of(arch)):
        p = cluster.id + "."
        assert len(cluster.nodes) == 2 + 3 * B + 1
        assert [g.node(p + "in0").label, g.node(p + "in1").label] == ["h[i-2] (0)", "h[i-1] (1)"]
        state = [p + "in0", p + "in1"] + [f"{p}node{k}" for k in range(2, B + 2)]
        adds = [n.id for n in g.nodes if n.id in state[2:]]
        assert adds == state[2:]                                     # in the arc's order
        for k, (i1, o1, i2, o2) in enumerate(cell, 2):
            assert g.node(f"{p}node{k}").label == f"node {k}: add"
            assert op_sources(g, f"{p}node{k}") == Counter([(state[i1], space.ops[o1]), (state[i2], space.ops[o2])])
            assert all(g.node(e.src).kind == "op" and not e.label for e in g.into(f"{p}node{k}"))
        used = {n[0] for n in cell} | {n[2] for n in cell}
        assert {e.src for e in g.into(p + "out")} == {state[k] for k in range(B + 2) if k not in used}
        assert len(g.into(p + "out")) == B + 2 - len(used)
        assert g.node(p + "out").kind == "output"
    assert not [e for e in g.edges if e.label]                       # every op is a box, no edge label


def test_micro_published_cells():
    g = graph_of(MICRO_PUB)
    # normal cell: every node is a loose end; reduction cell: nodes 2, 4, 5 and 6 (node 3 feeds node 4)
    assert sorted(e.src for e in g.into("normal.out")) == [f"normal.node{k}" for k in range(2, 7)]
    assert sorted(e.src for e in g.into("reduce.out")) == [f"reduce.node{k}" for k in (2, 4, 5, 6)]
    # reduction node 2 = "1 0 1 0": sep_conv_3x3 of h[i-1], twice
    assert op_sources(g, "reduce.node2") == Counter({("reduce.in1", "sep_conv_3x3"): 2})
    assert {"sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity"} <= label_lines(g)


# -- layer stacks: ENAS macro and Zoph & Le (Zoph & Le 2017, Fig. 7) -----------------------------
@pytest.mark.parametrize("arch", [MACRO_PUB, sample(ENASMacroSpace(), 5), sample(ENASMacroSpace(num_layers=4), 6)])
def test_macro_graph_follows_the_layers(arch):
    space = arch.search_space
    layers = space.layers_of(arch)
    L = len(layers)
    g = graph_of(arch)
    assert len(g.nodes) == L + 3                                        # image, stem, layers, output
    assert g.direction == "BT"
    src = ["stem"] + [f"layer{i}" for i in range(L)]
    for i, (op, skips) in enumerate(layers):
        assert g.node(f"layer{i}").label.split("\n")[0] == f"layer {i}: {space.ops[op]}"
        ins = g.into(f"layer{i}")
        assert [e.src for e in ins if e.style == "solid"] == [src[i]]   # the chain: prev_layers[-1]
        # skip bit j reads prev_layers[j]: the stem for j = 0, else layer j - 1
        assert sorted(e.src for e in ins if e.style == "dashed") == sorted(src[j] for j in skips)
        assert ("then reduce" in g.node(f"layer{i}").label) == (i in space.reduction_layers())
    assert [e.src for e in g.into("output")] == [f"layer{L - 1}"]
    assert [e.src for e in g.into("stem")] == ["image"]
    assert len(g.edges) == 1 + L + sum(len(s) for _, s in layers) + 1


def test_macro_published_network():
    g = graph_of(MACRO_PUB)
    assert g.node("layer1").label == "layer 1: sep_conv_5x5" and not g.into("layer1")[1:]   # "3 0"
    assert [e.src for e in g.into("layer2") if e.style == "dashed"] == ["stem"]              # "0 1 0"
    assert [e.src for e in g.into("layer3") if e.style == "dashed"] == ["layer1"]            # "2 0 0 1": bit 2
    assert "then reduce" in g.node("layer7").label and "then reduce" in g.node("layer15").label


def test_nas_cnn_graph_follows_the_layers():
    space = NASCNNSpace(layers=3, strides=(1, 2, 3), pool_after=(0,))
    # per layer: fh, fw, stride, nf, inputs
    arch = space.parse("nas-cnn:3,5,2,36,-,1,1,1,24,0,7,3,3,64,0+1")
    g = graph_of(arch)
    assert len(g.nodes) == 3 + 2
    assert g.node("layer0").label == "layer 0: 3x5, 36 filters, stride 2\n+ max pool 2x2"
    assert g.node("layer1").label == "layer 1: 1x1, 24 filters, stride 1"
    assert g.node("layer2").label == "layer 2: 7x3, 64 filters, stride 3"
    assert [e.src for e in g.into("layer0")] == ["image"]              # no input: the image
    assert [e.src for e in g.into("layer1")] == ["layer0"]
    assert sorted(e.src for e in g.into("layer2")) == ["layer0", "layer1"]
    assert [e.src for e in g.into("output")] == ["layer2"]             # the only loose end


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nas_cnn_random(seed):
    space = NASCNNSpace()
    arch = sample(space, seed)
    g = graph_of(arch)
    layers = space.layers_of(arch)
    assert len(g.nodes) == len(layers) + 2
    used = {j for l in layers for j in l["inputs"]}
    for i, l in enumerate(layers):
        assert f"{l['fh']}x{l['fw']}, {l['nf']} filters, stride {l['stride'][0]}" in g.node(f"layer{i}").label
        assert sorted(e.src for e in g.into(f"layer{i}")) == ([f"layer{j}" for j in l["inputs"]] or ["image"])
    assert {e.src for e in g.into("output")} == {f"layer{i}" for i in range(len(layers)) if i not in used}


# -- NAS-Bench-201 (Dong & Yang 2020) and the toy space -----------------------------------------
def test_nb201_graph():
    s = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    g = graph_of(NB201Space().parse(s))
    assert len(g.nodes) == 4 and len(g.edges) == 6
    got = {(e.src, e.dst): (e.label, e.style) for e in g.edges}
    assert got == {("n0", "n1"): ("nor_conv_3x3", "solid"), ("n0", "n2"): ("none", "dashed"),
                   ("n1", "n2"): ("skip_connect", "solid"), ("n0", "n3"): ("avg_pool_3x3", "solid"),
                   ("n1", "n3"): ("nor_conv_1x1", "solid"), ("n2", "n3"): ("none", "dashed")}
    assert s in g.title
    # an Architecture without its space object is drawn with the registered space
    assert graph_of(Architecture("nb201", NB201Space().parse(s).values)).edges == g.edges


def test_toy_graphs():
    chain = ToySpace(layers=3, options=2)
    arch = chain.make([1, (), 0, 0, (0,), 0, 1, (0, 1)])   # per layer: op, input (from layer 1), skips
    g = graph_of(arch)
    assert len(g.nodes) == 3 + 2
    assert [g.node(f"layer{i}").label for i in range(3)] == ["layer 0: op1", "layer 1: op0", "layer 2: op0"]
    assert sources(g, "layer1") == Counter([("layer0", ""), ("layer0", "")])      # input and skip
    assert sorted((e.src, e.style) for e in g.into("layer2")) == [("layer0", "dashed"), ("layer1", "dashed"),
                                                                  ("layer1", "solid")]
    assert [e.src for e in g.into("output")] == ["layer2"]
    cell = ToySpace(layers=2, options=3, layout="cell")
    g = graph_of(cell.make([1, 2, 2, 0]))                    # node0 <- in1 (op2), node1 <- node0 (op0)
    assert len(g.nodes) == 2 + 2 + 1
    assert sources(g, "node0") == Counter({("in1", "op2"): 1}) and sources(g, "node1") == Counter({("node0", "op0"): 1})
    assert sorted(e.src for e in g.into("out")) == ["in0", "node1"]


def test_space_without_a_diagram():
    class Custom(SearchSpace):
        name = "custom"
        decisions = (Choice("a", ("x", "y")),)
    with pytest.raises(ValueError, match="custom"):
        graph_of(Custom().make([0]))


# -- rendering -----------------------------------------------------------------------------------
DRAWN = {"enas-rnn": RNN_PUB, "enas-micro": MICRO_PUB, "enas-macro": sample(ENASMacroSpace(), 7),
         "nas-cnn": sample(NASCNNSpace(), 8), "nb201": sample(NB201Space(), 9),
         "toy": sample(ToySpace(layers=4, options=3, layout="cell"), 10)}


@pytest.mark.parametrize("name", sorted(DRAWN))
def test_matplotlib_writes_svg_and_png(name, tmp_path):
    arch = DRAWN[name]
    out = draw(arch, tmp_path / "sub" / name, engine="matplotlib")
    assert out == [tmp_path / "sub" / f"{name}.svg", tmp_path / "sub" / f"{name}.png"]
    with Image.open(out[1]) as im:
        assert im.format == "PNG"
        assert all(200 <= s <= 4000 for s in im.size), im.size
    root = ET.parse(out[0]).getroot()
    assert root.tag.endswith("svg")
    texts = {"".join(el.itertext()).strip() for el in root.iter() if el.tag.endswith("text")}
    missing = label_lines(graph_of(arch)) - texts
    assert not missing, f"labels not drawn as SVG text: {missing}"


def test_large_network_png_stays_in_bounds(tmp_path):
    (png,) = draw(MACRO_PUB, tmp_path / "macro", formats=("png",), engine="matplotlib")
    with Image.open(png) as im:
        assert all(200 <= s <= 4000 for s in im.size) and im.size[1] > im.size[0]   # a tall stack
    assert not (tmp_path / "macro.svg").exists()


def test_to_dot_has_every_label():
    for arch in [RNN_PUB, MICRO_PUB, MACRO_PUB, DRAWN["nb201"], DRAWN["nas-cnn"], DRAWN["toy"]]:
        g = graph_of(arch)
        dot = to_dot(g)
        assert dot.startswith("digraph ") and dot.rstrip().endswith("}")
        assert dot.count("{") == dot.count("}")
        assert dot.count(" -> ") == len(g.edges)
        for line in label_lines(g):
            assert line in dot
        for e in g.edges:
            assert f'"{e.src}" -> "{e.dst}"' in dot
        for n in g.nodes:
            assert f'"{n.id}" [label=' in dot
    dot = to_dot(graph_of(MICRO_PUB))
    assert dot.count("subgraph cluster_") == 2 and 'label="normal cell"' in dot
    assert 'label="h[i]\\nconcat"' in dot                               # newline escaped, not raw
    assert "style=dashed" in to_dot(graph_of(MACRO_PUB))
    assert "rankdir=BT" in to_dot(graph_of(MACRO_PUB)) and "rankdir=BT" in to_dot(graph_of(RNN_PUB))
    assert "rankdir=LR" in to_dot(graph_of(MICRO_PUB))


def test_graphviz_engine_needs_dot(monkeypatch, tmp_path):
    monkeypatch.setattr(D.shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match=r"install Graphviz or use engine='matplotlib'"):
        draw(RNN_PUB, tmp_path / "cell", engine="graphviz")
    out = draw(RNN_PUB, tmp_path / "cell", formats=("svg",))         # auto falls back to Matplotlib
    assert "Matplotlib" in out[0].read_text()


def test_auto_uses_dot_when_installed(monkeypatch, tmp_path):
    fake = tmp_path / "dot"                                           # records its call, copies stdin
    fake.write_text(f"#!{sys.executable}\nimport sys\nargs = sys.argv[1:]\n"
                    "open(args[args.index('-o') + 1], 'w').write(' '.join(args) + '\\n' + sys.stdin.read())\n")
    fake.chmod(0o755)
    monkeypatch.setattr(D.shutil, "which", lambda name: str(fake) if name == "dot" else None)
    svg, png = draw(MICRO_PUB, tmp_path / "cells")
    assert svg.read_text().startswith("-Tsvg") and png.read_text().startswith("-Tpng -Gdpi=150")
    assert svg.read_text().split("\n", 1)[1] == to_dot(graph_of(MICRO_PUB))


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="engine"):
        draw(RNN_PUB, tmp_path / "x", engine="tikz")
    with pytest.raises(ValueError, match="formats"):
        draw(RNN_PUB, tmp_path / "x", formats=("jpg",), engine="matplotlib")


# -- legibility of the published diagrams (issue 14) ---------------------------------------------
@pytest.mark.parametrize("name", ["enas-micro-final", "enas-rnn-final", "enas-macro-final"])
def test_published_diagrams_are_legible(name, tmp_path):
    """No edge carries a label (ops are boxes in the micro cells, activations sit in the
    recurrent nodes, ops in the macro layers), no two boxes overlap, and the image fits."""
    g = graph_of(preset_arch(name))
    assert not [e for e in g.edges if e.label]
    pos, size, rank = D.layout(g)
    D._separate(g, pos, size, rank)
    boxes = [(pos[i][0] - size[i][0] / 2, pos[i][1] - size[i][1] / 2, pos[i][0] + size[i][0] / 2,
              pos[i][1] + size[i][1] / 2) for i in pos]
    assert not [(a, b) for k, a in enumerate(boxes) for b in boxes[k + 1:] if D._overlaps(a, [b])]
    (png,) = draw(preset_arch(name), tmp_path / name, formats=("png",), engine="matplotlib")
    with Image.open(png) as im:
        assert max(im.size) <= 4000 and min(im.size) >= 400


def test_recurrent_cell_is_drawn_in_two_dimensions():
    """Fig. 1: upwards from x[t] and h[t-1]; the published cell's branches share ranks, so the
    drawing is not one long strip."""
    g = graph_of(RNN_PUB)
    pos, size, rank = D.layout(g)
    assert g.direction == "BT" and rank["n3"] == rank["n4"] and rank["n5"] == rank["n7"]
    width = max(p[0] for p in pos.values()) - min(p[0] for p in pos.values())
    height = max(p[1] for p in pos.values()) - min(p[1] for p in pos.values())
    assert height > 2 * width > 0


def test_macro_skips_become_a_matrix_beside_the_chain(tmp_path):
    """24 layers: the dashed skips are drawn as squares, one per skip, in a lower-triangular
    matrix (row = layer fed, column = layer read); the chain keeps its arrows. A small network
    keeps its skips as arcs."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    g = graph_of(MACRO_PUB)
    skips = [e for e in g.edges if e.style == "dashed"]
    chain = D.Graph(g.title, g.nodes, [e for e in g.edges if e.style != "dashed"], direction="BT")
    pos, size, _ = D.layout(chain)
    ax = Figure().add_axes((0, 0, 1, 1))
    D._skip_matrix(ax, chain, skips, pos, size)
    cells = [p for p in ax.patches if isinstance(p, Rectangle)]
    filled = [p for p in cells if matplotlib.colors.to_hex(p.get_facecolor()) == "#333333"]
    assert len(filled) == len(skips) == sum(len(s) for _, s in MACRO_PUB.search_space.layers_of(MACRO_PUB)) > 12
    order = sorted(pos, key=lambda i: pos[i][1])                      # bottom to top: image, stem, layers
    x0 = max(pos[i][0] + size[i][0] / 2 for i in pos) + 0.4
    row = {round(pos[i][1], 6): i for i in pos}
    cols = [i for i in order if i not in ("image", "output", "layer23")]
    drawn = {(cols[round((p.get_x() + 0.075 - x0) / D.CELL - 0.5)], row[round(p.get_y() + 0.075, 6)]) for p in filled}
    assert drawn == {(e.src, e.dst) for e in skips}
    ys = {round(p.get_y() + 0.075, 6): [] for p in cells}
    for p in cells:
        ys[round(p.get_y() + 0.075, 6)].append(p)
    # row of layer i: the stem and layers 0..i-2 (its skip bits), not its chain input layer i-1
    assert sorted(len(v) for v in ys.values()) == list(range(1, 24))
    svg = ET.parse(draw(MACRO_PUB, tmp_path / "macro", formats=("svg",), engine="matplotlib")[0]).getroot()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        texts = " ".join("".join(el.itertext()) for el in svg.iter() if el.tag.endswith("text"))
    assert "skip inputs" in texts and "stem" in texts
    small = draw(sample(ENASMacroSpace(num_layers=4), 6), tmp_path / "small", formats=("svg",), engine="matplotlib")
    assert "skip inputs" not in ET.tostring(ET.parse(small[0]).getroot(), encoding="unicode")


def test_epoch_figures_name_their_curves_and_show_the_test_result(tmp_path):
    """retrain.png: the legend says training and validation, and the test accuracy is a line
    and in the title (percent); a language model's test perplexity likewise."""
    import matplotlib
    from torchnas.viz import figures
    history = [{"epoch": e, "loss": 2.0 / e, "train_acc": 0.5 + e / 20, "valid_acc": 0.45 + e / 20} for e in (1, 2, 3)]
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        out = figures.epochs_figure(history, tmp_path / "retrain.svg", "run: retraining", {"test_acc": 0.6123})
    texts = {"".join(el.itertext()).strip() for el in ET.parse(out).getroot().iter() if el.tag.endswith("text")}
    assert {"training loss", "training", "validation", "test 61.23 %", "run: retraining (test 61.23 %)"} <= texts
    lm = [{"epoch": 1, "loss": 5.0, "train_ppl": 150.0, "valid_ppl": 160.0}]
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        out = figures.epochs_figure(lm, tmp_path / "lm.svg", "", {"test_ppl": 155.5})
    texts = {"".join(el.itertext()).strip() for el in ET.parse(out).getroot().iter() if el.tag.endswith("text")}
    assert {"validation", "test 155.50"} <= texts
