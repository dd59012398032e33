"""Architecture diagrams in the style of the papers' figures.

:func:`graph_of` asks the architecture's space for its diagram, a small, backend-neutral
:class:`~torchnas.spaces.graph.Graph` (``SearchSpace.graph``, defined beside each space);
:func:`to_dot` writes it as Graphviz DOT and :func:`draw` renders it to SVG/PNG with the ``dot``
executable when it is installed, else with Matplotlib (no system packages).

One diagram per space (each in its space's module):

* ``enas-rnn``: the recurrent cell (Pham et al. 2018, Fig. 1);
* ``enas-micro``: the normal and the reduction cell (Pham et al. 2018, Fig. 8);
* ``enas-macro`` and ``nas-cnn``: the layer stack with its skip connections (Zoph & Le 2017,
  Fig. 7; Pham et al. 2018, Fig. 7);
* ``nb201``: the 4-node cell (Dong & Yang 2020, Fig. 1); ``none`` edges are drawn dashed;
* ``toy``: its chain or cell, drawn like the ENAS spaces.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..spaces.base import Architecture
from ..spaces.graph import Cluster, Edge, Graph, Node

FORMATS = ("svg", "png", "pdf")
ENGINES = ("auto", "graphviz", "matplotlib")
RNN_OUTPUTS = ("average", "loose_ends")
DPI = 150
MIN_PX, MAX_PX = 200, 4000


def graph_of(arch: Architecture, rnn_output: str = "average") -> Graph:
    """The diagram of ``arch`` as a :class:`Graph`. ``rnn_output`` (enas-rnn only): ``"average"``
    of nodes 1..N (the reference code) or ``"loose_ends"`` (the paper)."""
    if rnn_output not in RNN_OUTPUTS:
        raise ValueError(f"rnn_output must be one of {', '.join(RNN_OUTPUTS)}, not {rnn_output!r}")
    space = arch.search_space
    if space is None:
        from ..spaces import get_space
        space = get_space(arch.space)
    space.check(arch)
    return space.graph(arch, rnn_output=rnn_output)


# -- Graphviz ----------------------------------------------------------------------------------
FILL = {"input": "#d5e8d4", "node": "#dae8fc", "op": "#ffe6cc", "layer": "#dae8fc", "output": "#fff2cc"}


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: Graph) -> str:
    """Graphviz DOT source of ``graph`` (clusters become ``subgraph cluster_*``)."""
    lines = ["digraph architecture {",
             f"  graph [rankdir={graph.direction}, label={_q(graph.title)}, labelloc=t, fontname=Helvetica];",
             '  node [shape=box, style="rounded,filled", fontname=Helvetica, fontsize=11];',
             "  edge [fontname=Helvetica, fontsize=9];"]
    node_line = lambda n, pad: (f"{pad}{_q(n.id)} [label={_q(n.label)}, fillcolor={_q(FILL.get(n.kind, '#ffffff'))}"
                                + (", shape=ellipse" if n.kind == "input" else "") + "];")
    clustered = set()
    for k, c in enumerate(graph.clusters):
        lines += [f"  subgraph cluster_{k} {{", f"    label={_q(c.label)};"]
        lines += [node_line(graph.node(i), "    ") for i in c.nodes]
        lines.append("  }")
        clustered.update(c.nodes)
    lines += [node_line(n, "  ") for n in graph.nodes if n.id not in clustered]
    for e in graph.edges:
        attrs = ([f"label={_q(e.label)}"] if e.label else []) + (["style=dashed"] if e.style == "dashed" else [])
        lines.append(f"  {_q(e.src)} -> {_q(e.dst)}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    return "\n".join(lines + ["}"]) + "\n"


def _draw_dot(graph: Graph, dot: str, out: Path, fmt: str) -> None:
    inches = MAX_PX / DPI                       # at most MAX_PX pixels at DPI
    args = [dot, f"-T{fmt}", f"-Gsize={inches:.1f},{inches:.1f}", "-o", str(out)]
    if fmt == "png":
        args.insert(2, f"-Gdpi={DPI}")
    done = subprocess.run(args, input=to_dot(graph), text=True, capture_output=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")


# -- Matplotlib fallback: a longest-path layered layout ----------------------------------------
FONT, EDGE_FONT = 9, 7                    # points
CHAR_W, LINE_H = 0.075, 0.17              # inches per character / line at FONT


def _size(label: str) -> tuple[float, float]:
    lines = label.split("\n")
    return max(len(s) for s in lines) * CHAR_W + 0.25, len(lines) * LINE_H + 0.16


def _ranks(ids: list[str], edges: list[Edge]) -> dict[str, int]:
    """Longest path from the sources (every edge goes one rank forward or more)."""
    rank = {i: 0 for i in ids}
    for _ in ids:                           # Bellman-Ford style: the graphs are small DAGs
        changed = False
        for e in edges:
            if rank[e.dst] < rank[e.src] + 1:
                rank[e.dst], changed = rank[e.src] + 1, True
        if not changed:
            break
    return rank


def layout(graph: Graph) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]], dict[str, int]]:
    """Node centres and box sizes in inches, and ranks: clusters are laid out separately and
    stacked (top to bottom for ``LR`` graphs, left to right for ``BT``)."""
    lr = graph.direction == "LR"
    size = {n.id: _size(n.label) for n in graph.nodes}
    groups = [list(c.nodes) for c in graph.clusters]
    rest = [n.id for n in graph.nodes if not any(n.id in g for g in groups)]
    groups += [rest] if rest else []
    pos, ranks, offset = {}, {}, 0.0
    for ids in groups:
        inner = [e for e in graph.edges if e.src in ids and e.dst in ids]
        rank = _ranks(ids, inner)
        ranks.update(rank)
        by_rank: dict[int, list[str]] = {}
        for i in ids:
            by_rank.setdefault(rank[i], []).append(i)
        along, a = {}, 0.0
        for r in sorted(by_rank):
            ext = max(size[i][0 if lr else 1] for i in by_rank[r])
            along[r], a = a + ext / 2, a + ext + (1.6 if lr else 0.45)
        lo = hi = 0.0
        for r in sorted(by_rank):               # order each rank by its predecessors' mean place
            preds = {i: [pos[e.src][1] for e in inner if e.dst == i] for i in by_rank[r]}
            members = by_rank[r] if graph.ordered else sorted(
                by_rank[r], key=lambda i: sum(preds[i]) / len(preds[i]) if preds[i] else 0.0)
            exts = [size[i][1 if lr else 0] for i in members]
            c = -(sum(exts) + 0.35 * (len(members) - 1)) / 2
            for i, ext in zip(members, exts):
                pos[i] = (along[r], c + ext / 2)
                lo, hi, c = min(lo, c), max(hi, c + ext), c + ext + 0.35
        for i in ids:                           # stack the groups along the cross axis
            a, c = pos[i]
            pos[i] = (a, -(c - lo + offset)) if lr else (c - lo + offset, a)
        offset += hi - lo + 1.0
    return pos, size, ranks


def _route(graph: Graph, e: Edge, pos, size, rank, n_long: int):
    """Ends and arc3 ``rad`` of a long edge (spanning more than one rank): it leaves and enters
    on the outer side of its boxes (away from its group's centre; alternating sides, by the
    count ``n_long``, in a straight chain) and bows out past the nodes between."""
    cross = 1 if graph.direction == "LR" else 0
    group = next((c.nodes for c in graph.clusters if e.src in c.nodes), list(pos))
    away = (pos[e.src][cross] + pos[e.dst][cross]) / 2 - sum(pos[i][cross] for i in group) / len(group)
    side = (1 if n_long % 2 else -1) if abs(away) < 0.05 else (1 if away > 0 else -1)
    lo, hi = sorted((rank[e.src], rank[e.dst]))
    (x0, y0), (x1, y1) = [tuple(p + side * size[i][cross] / 2 * (a == cross) for a, p in enumerate(pos[i]))
                          for i in (e.src, e.dst)]
    line = ((x0, y0)[cross] + (x1, y1)[cross]) / 2
    need = [side * (pos[i][cross] - line) + size[i][cross] / 2 for i in group if lo < rank[i] < hi]
    bulge = max(need + [0.0]) + 0.15 + 0.06 * (hi - lo)
    length = max(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5, 1e-6)
    normal = (y1 - y0, x0 - x1)[cross]          # arc3 bends towards (dy, -dx) for rad > 0
    return (x0, y0), (x1, y1), side * (1 if normal > 0 else -1) * 2 * bulge / length


def _routes(graph: Graph, pos, size, rank) -> list[tuple[tuple, tuple, float, bool]]:
    """Per edge: its two ends, the arc3 ``rad`` and whether the ends are box centres (clipped
    by the boxes) rather than box sides (long edges, :func:`_route`)."""
    out, seen, n_long = [], {}, 0
    for e in graph.edges:
        twins = sum(1 for f in graph.edges if (f.src, f.dst) == (e.src, e.dst))
        k = seen[e.src, e.dst] = seen.get((e.src, e.dst), -1) + 1
        if abs(rank[e.dst] - rank[e.src]) > 1:
            n_long += 1
            out.append(_route(graph, e, pos, size, rank, n_long) + (False,))
        else:                                   # rad != 0 only for parallel edges (one input read twice)
            out.append((pos[e.src], pos[e.dst], (k - (twins - 1) / 2) * 0.35, True))
    return out


def _bezier(p0, p1, rad: float, t: float) -> tuple[float, float]:
    """A point of matplotlib's arc3 quadratic Bezier (axes of equal aspect: data coordinates work)."""
    c = ((p0[0] + p1[0]) / 2 + rad * (p1[1] - p0[1]), (p0[1] + p1[1]) / 2 - rad * (p1[0] - p0[0]))
    return tuple((1 - t) ** 2 * a + 2 * t * (1 - t) * b + t * t * d for a, b, d in zip(p0, c, p1))


def _separate(graph: Graph, pos, size, rank) -> None:
    """Move the clusters along the cross axis so that their frames, bowed edges included, keep
    a fixed gap (the layout spaces them by their nodes only)."""
    cross, sign = (1, -1) if graph.direction == "LR" else (0, 1)      # the stacking direction
    mids = [_bezier(p0, p1, rad, 0.5) for p0, p1, rad, _ in _routes(graph, pos, size, rank)]
    end = None
    for c in graph.clusters:
        inner = [m[cross] for e, m in zip(graph.edges, mids) if e.src in c.nodes and e.dst in c.nodes]
        ext = [sign * v for v in inner + [pos[i][cross] + s * size[i][cross] / 2 for i in c.nodes for s in (-1, 1)]]
        shift = 0.0 if end is None else end + 0.9 - min(ext)
        for i in c.nodes:
            p = list(pos[i])
            p[cross] += sign * shift
            pos[i] = tuple(p)
        end = max(ext) + shift


def _overlaps(r, rects) -> bool:
    return any(r[0] < o[2] and o[0] < r[2] and r[1] < o[3] and o[1] < r[3] for o in rects)


MATRIX_FROM = 12                          # dashed skips in a layer stack drawn as a matrix from here on
CELL = 0.2                                # inches per skip-matrix column


def _short(label: str) -> str:
    """A layer's name in a skip-matrix column: "layer 5: conv 3x3" -> "5", "stem: ..." -> "stem"."""
    return label.split("\n")[0].split(":")[0].removeprefix("layer ").strip()


def _skip_matrix(ax, graph: Graph, skips: list[Edge], pos, size) -> tuple[list[float], list[float]]:
    """Draw a layer stack's skips as a lower-triangular matrix beside the chain (Zoph & Le and
    ENAS macro networks of many layers): row = the layer a skip enters, at that layer's height;
    column = the layer it comes from, labelled on the diagonal at its own height; a filled
    square per skip. Returns the x and y extents drawn."""
    from matplotlib.patches import Rectangle
    y = {i: pos[i][1] for i in pos}
    srcs = sorted({e.src for e in skips}, key=y.get)
    lo, hi = y[srcs[0]], max(y[e.dst] for e in skips)
    cols = sorted({n.id for n in graph.nodes if lo <= y[n.id] < hi and n.kind != "output"} | set(srcs), key=y.get)
    rows = [n.id for n in graph.nodes if y[cols[0]] < y[n.id] <= hi and n.kind != "output"]
    x0 = max(pos[i][0] + size[i][0] / 2 for i in pos) + 0.4
    xc = {c: x0 + (k + 0.5) * CELL for k, c in enumerate(cols)}
    have = {(e.src, e.dst) for e in skips}
    chain = {(e.src, e.dst) for e in graph.edges}    # a layer's own input is no skip position
    for r in rows:                                  # a faint guide from each layer to its row
        left = pos[r][0] + size[r][0] / 2
        ax.plot([left + 0.05, x0 + len(cols) * CELL], [y[r]] * 2, color="#dddddd", lw=0.6, zorder=0)
        for c in cols:
            if y[c] < y[r] and (c, r) not in chain:
                on = (c, r) in have
                ax.add_patch(Rectangle((xc[c] - 0.075, y[r] - 0.075), 0.15, 0.15, zorder=2, lw=0.5,
                                       fc="#333333" if on else "white", ec="#333333" if on else "#cccccc"))
    for c in cols:                                  # the column's layer, on the diagonal
        ax.text(xc[c], y[c], _short(graph.node(c).label), ha="center", va="center", fontsize=EDGE_FONT,
                rotation=90 if len(_short(graph.node(c).label)) > 2 else 0, parse_math=False, zorder=3)
    top = hi + 0.45
    ax.text(x0, top, "skip inputs: row = layer fed,\ncolumn = layer read (on the diagonal)", ha="left",
            va="bottom", fontsize=EDGE_FONT, style="italic", parse_math=False)
    return [x0, x0 + len(cols) * CELL + 0.1, x0 + 2.6], [y[cols[0]] - 0.2, top + 2 * LINE_H]


def _draw_matplotlib(graph: Graph, out: Path, fmt: str) -> None:
    """Boxes at the :func:`layout` positions, arc3 arrows, op labels near the edge middles
    (moved along the edge to avoid the boxes and earlier labels), clusters as grey frames; the
    dashed skips of a layer stack with many of them as a matrix beside it (:func:`_skip_matrix`).
    Long: Matplotlib's figure set-up, boxes, arrows and labels share the one figure's scale."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    skips = [e for e in graph.edges if e.style == "dashed"]
    if graph.direction == "BT" and len(skips) >= MATRIX_FROM:
        graph = Graph(graph.title, graph.nodes, [e for e in graph.edges if e.style != "dashed"], graph.clusters,
                      graph.direction, graph.ordered)
    else:
        skips = []
    pos, size, rank = layout(graph)
    _separate(graph, pos, size, rank)
    fig = Figure()
    FigureCanvasAgg(fig)                        # no pyplot, no global backend
    ax = fig.add_axes((0, 0, 1, 1))
    rect = lambda i: (pos[i][0] - size[i][0] / 2, pos[i][1] - size[i][1] / 2,
                      pos[i][0] + size[i][0] / 2, pos[i][1] + size[i][1] / 2)
    taken = [rect(n.id) for n in graph.nodes]   # what an edge label must not cover
    xs, ys = [r[k] for r in taken for k in (0, 2)], [r[k] for r in taken for k in (1, 3)]
    boxes = {}
    for n in graph.nodes:
        x0, y0, x1, y1 = rect(n.id)
        boxes[n.id] = ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, fc=FILL.get(n.kind, "white"),
                                                  boxstyle="round,pad=0,rounding_size=0.06", ec="#444444",
                                                  lw=0.8, zorder=2))
        ax.text(*pos[n.id], n.label, ha="center", va="center", fontsize=FONT, zorder=3, parse_math=False)
    mids: dict[tuple[str, str], tuple[float, float]] = {}
    for e, (p0, p1, rad, clipped) in zip(graph.edges, _routes(graph, pos, size, rank)):
        dashed = e.style == "dashed"
        clip = dict(patchA=boxes[e.src], patchB=boxes[e.dst]) if clipped else {}
        ax.add_patch(FancyArrowPatch(p0, p1, connectionstyle=f"arc3,rad={rad:.4f}", arrowstyle="-|>",
                                     mutation_scale=9, lw=0.6 if dashed else 0.8, zorder=1, **clip,
                                     color="#777777" if dashed else "#222222", linestyle="--" if dashed else "-"))
        at = lambda t: _bezier(p0, p1, rad, t)
        mids[e.src, e.dst] = at(0.5)
        xs.append(at(0.5)[0]), ys.append(at(0.5)[1])
        if e.label:
            w, h = len(e.label) * CHAR_W * EDGE_FONT / FONT / 2 + 0.03, LINE_H * EDGE_FONT / FONT / 2 + 0.03
            rects = [(mx - w, my - h, mx + w, my + h) for mx, my in map(at, (0.6, 0.45, 0.72, 0.35, 0.82, 0.52))]
            r = next((r for r in rects if not _overlaps(r, taken)), rects[0])
            taken.append(r)
            ax.text((r[0] + r[2]) / 2, (r[1] + r[3]) / 2, e.label, ha="center", va="center", fontsize=EDGE_FONT,
                    zorder=4, parse_math=False, bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.9))
            xs += [r[0], r[2]]
    if skips:
        mx, my = _skip_matrix(ax, graph, skips, pos, size)
        xs, ys = xs + mx, ys + my
    for c in graph.clusters:
        inner = [m for (a, b), m in mids.items() if a in c.nodes and b in c.nodes]
        cx = [rect(i)[k] for i in c.nodes for k in (0, 2)] + [m[0] for m in inner]
        cy = [rect(i)[k] for i in c.nodes for k in (1, 3)] + [m[1] for m in inner]
        x0, x1, y0, y1 = min(cx) - 0.2, max(cx) + 0.2, min(cy) - 0.2, max(cy) + 0.2
        ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0,rounding_size=0.1",
                                    fc="#f7f7f7", ec="#bbbbbb", lw=0.8, zorder=0))
        ax.text(x0 + 0.1, y1 + 0.05, c.label, ha="left", va="bottom", fontsize=FONT, style="italic", parse_math=False)
        xs += [x0, x1]
        ys += [y0, y1 + LINE_H + 0.05]
    x0, x1, y0, y1 = min(xs) - 0.25, max(xs) + 0.25, min(ys) - 0.25, max(ys) + 0.2
    title_w, title_h = _size(graph.title)
    ax.text((x0 + x1) / 2, y1 + 0.05, graph.title, ha="center", va="bottom", fontsize=FONT + 1, weight="bold",
            parse_math=False)
    mid, half = (x0 + x1) / 2, max(x1 - x0, title_w * 1.2) / 2
    x0, x1, y1 = mid - half, mid + half, y1 + title_h * 1.2 + 0.1
    w, h = max(x1 - x0, MIN_PX / DPI), max(y1 - y0, MIN_PX / DPI)      # inches; data units are inches
    ax.set_xlim((x0 + x1 - w) / 2, (x0 + x1 + w) / 2)
    ax.set_ylim((y0 + y1 - h) / 2, (y0 + y1 + h) / 2)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.set_size_inches(w, h)
    dpi = min(DPI, MAX_PX / max(w, h))          # a very large graph gets a lower resolution, not a huge PNG
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "torchnas"}):
        fig.savefig(out, format=fmt, dpi=dpi, metadata={"Date": None} if fmt == "svg" else None)


def draw(arch: Architecture, path, formats=("svg", "png"), engine: str = "auto",
         rnn_output: str = "average") -> list[Path]:
    """Render the diagram of ``arch`` to ``path`` with each suffix in ``formats`` (svg, png,
    pdf) and return the files. ``engine``: ``"graphviz"`` (the ``dot`` executable),
    ``"matplotlib"``, or ``"auto"`` (Graphviz when ``dot`` is on PATH)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"formats must be among {', '.join(FORMATS)}, got {list(formats)}")
    dot = shutil.which("dot") if engine != "matplotlib" else None
    if engine == "graphviz" and dot is None:
        raise ValueError("engine='graphviz' needs the Graphviz 'dot' executable on PATH: "
                         "install Graphviz or use engine='matplotlib'")
    graph = graph_of(arch, rnn_output=rnn_output)
    path = Path(path)
    if path.suffix.lstrip(".") in FORMATS:        # "cell.svg" -> "cell"; "cell.v2" stays "cell.v2"
        path = path.with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    outs = []
    for fmt in formats:
        out = path.with_name(f"{path.name}.{fmt}")
        _draw_dot(graph, dot, out, fmt) if dot else _draw_matplotlib(graph, out, fmt)
        outs.append(out)
    return outs


__all__ = ["Graph", "Node", "Edge", "Cluster", "graph_of", "to_dot", "draw", "layout"]
