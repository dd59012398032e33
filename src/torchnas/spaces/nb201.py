"""NAS-Bench-201 cell space (Dong & Yang, ICLR 2020, §2).

A cell is a DAG of 4 nodes; every edge j -> i (j < i) carries one of five operations, so an
architecture is six Choices in the benchmark's edge order: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2.
The benchmark writes it as ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (its ``arch_str``);
:meth:`NB201Space.to_arch_str` and :meth:`NB201Space.from_arch_str` convert both ways, and
:meth:`NB201Space.parse` accepts either form.
"""
from __future__ import annotations

import csv
import functools
import math
from bisect import bisect_left, bisect_right
from pathlib import Path
from typing import Literal, Sequence

import torch
from torch import nn

from ..data import DataFormatError, find
from ..registry import register
from .base import Architecture, ArchitectureError, Choice, SearchSpace, iter_all
from .graph import Edge, Graph, Node

# The benchmark's operation order (NAS-Bench-201 paper, §2; `NAS_BENCH_201` in its API).
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from) in arch_str order

TABLE_FILE = "nasbench201/nb201_12epoch.csv"
TABLE_HOW = ("It is the NAS-Bench-201 12-epoch table (15,625 rows: index, arch_str and accuracy "
             "columns); put it at <data root>/" + TABLE_FILE + " or pass --data-dir.")
VALID_COLUMN, TEST_COLUMN = "cifar10valid_xvalid_acc_12ep", "cifar10_oritest_acc_12ep"
# The verdict on a searched cell, as papers report it (NAS-Bench-201 Table 5, NATS-Bench): its
# CIFAR-10 test accuracy after the benchmark's full 200-epoch training. The 12-epoch table is
# the search signal only.
VERDICT_FILE = "nasbench201/nb201_200epoch_cifar10.csv"
VERDICT_HOW = ("It is the NAS-Bench-201 200-epoch CIFAR-10 table (15,625 rows: index, arch_str, "
               "cifar10_test_acc_200ep); put it at <data root>/" + VERDICT_FILE + " or pass --data-dir.")
VERDICT_COLUMN = "cifar10_test_acc_200ep"


@register("space")
class NB201Space(SearchSpace):
    """``sampling``: how :meth:`random` draws (random search, RSWS, ENAS's warm-up, ws-rank):
    ``uniform`` over the 15,625 encodings, or ``unique`` over the 6,466 distinct cells
    (:meth:`unique_str`). Uniform encodings over-sample simple cells, which have many
    encodings each: a cell whose node 1 feeds nothing useful has 5 encodings per op choice it
    ignores. Ning et al. (NeurIPS 2021, §6.2) find that this makes a super-net trained on them
    overestimate simple cells on this space, and that sampling unique cells fixes much of it."""
    name = "nb201"

    def __init__(self, sampling: Literal["uniform", "unique"] = "uniform"):
        if sampling not in ("uniform", "unique"):
            raise ValueError(f"space nb201: sampling must be 'uniform' or 'unique', not {sampling!r}")
        self.sampling = sampling
        self.decisions = tuple(Choice(f"node{i}<-{j}", OPS, kind="op") for i, j in EDGES)

    def unique_str(self, arch: Architecture) -> str:
        """The cell's computation with its encoding's freedom taken out: ``none`` and edges from
        a zero node give zero (``#``), ``skip_connect`` is its input, each node's inputs are
        sorted. Two encodings with the same string compute the same function; the converse can
        fail (two nodes that swap roles behind a zero term give different strings). 6,466
        strings over the 15,625 cells (AutoDL-Projects ``genotypes.py``,
        ``to_unique_str(consider_zero=True)``; Ning et al. 2021 §6.2 give the same count)."""
        self.check(arch)
        nodes = ["0"]
        for i in range(1, 4):
            terms = []
            for (to, j), v in zip(EDGES, arch.values):
                if to != i:
                    continue
                op = OPS[v]
                terms.append("#" if op == "none" or nodes[j] == "#" else
                             nodes[j] if op == "skip_connect" else f"({nodes[j]})@{op}")
            nodes.append("+".join(sorted(terms)))
        return nodes[3]

    def function_key(self, arch: Architecture) -> str:
        return self.unique_str(arch)

    def random_distinct(self, rng) -> Architecture:
        """Uniform over the 6,466 distinct cells: a cell, then one of its encodings."""
        classes = _unique_classes()
        members = classes[rng.randrange(len(classes))]
        return self.make(members[rng.randrange(len(members))])

    def random(self, rng) -> Architecture:
        return super().random(rng) if self.sampling == "uniform" else self.random_distinct(rng)

    def param_count(self, arch: Architecture, channels: int = 16, num_cells: int = 5, in_channels: int = 3,
                    num_classes: int = 10) -> int:
        """Parameters of :meth:`child` (by default the benchmark's network, as its table trained
        it), without building it: the backbone's plus each stage's cells' edge operations."""
        self.check(arch)
        cells = sum(_op_params(OPS[v], c) for c in (channels, 2 * channels, 4 * channels) for v in arch.values)
        return _backbone_params(channels, num_cells, in_channels, num_classes) + num_cells * cells

    def to_arch_str(self, arch: Architecture) -> str:
        self.check(arch)
        ops = iter(OPS[v] for v in arch.values)
        nodes = []
        for i in range(1, 4):
            nodes.append("|" + "|".join(f"{next(ops)}~{j}" for j in range(i)) + "|")
        return "+".join(nodes)

    def from_arch_str(self, text: str) -> Architecture:
        want = "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' with op one of " + ", ".join(OPS)
        nodes = text.strip().split("+")
        if len(nodes) != 3:
            raise ArchitectureError(f"NAS-Bench-201 arch_str {text!r} must have 3 nodes: {want}")
        values = []
        for i, node in enumerate(nodes, start=1):
            if not (node.startswith("|") and node.endswith("|")):
                raise ArchitectureError(f"NAS-Bench-201 arch_str {text!r}: node {i} {node!r} is not {want}")
            edges = node[1:-1].split("|")
            if len(edges) != i:
                raise ArchitectureError(
                    f"NAS-Bench-201 arch_str {text!r}: node {i} needs {i} edges, has {len(edges)}: {want}")
            for j, edge in enumerate(edges):
                op, _, src = edge.partition("~")
                if src != str(j):
                    raise ArchitectureError(
                        f"NAS-Bench-201 arch_str {text!r}: edge {edge!r} of node {i} must come from node {j}")
                if op not in OPS:
                    raise ArchitectureError(
                        f"NAS-Bench-201 arch_str {text!r}: edge {i}<-{j} op {op!r} is not one of {', '.join(OPS)}")
                values.append(OPS.index(op))
        return self.make(values)

    def parse(self, text: str) -> Architecture:
        """``nb201:v1,...,v6``, the benchmark's ``arch_str``, or ``nb201:`` and an ``arch_str``."""
        body = text.strip()
        if body.startswith(self.name + ":") and body[len(self.name) + 1:].strip().startswith("|"):
            body = body[len(self.name) + 1:].strip()
        if body.startswith("|"):
            return self.from_arch_str(body)
        return super().parse(text)

    # -- networks ---------------------------------------------------------------------------
    def graph(self, arch, **options) -> Graph:
        """NAS-Bench-201 cell (Dong & Yang 2020, Fig. 1): 4 nodes, an op on every edge j -> i;
        ``none`` (zero) edges are kept, dashed, so the diagram shows all six decisions."""
        kinds = ("input", "node", "node", "output")
        g = Graph("NAS-Bench-201 cell\n" + self.to_arch_str(arch),
                  [Node(f"n{i}", f"node {i}", kinds[i]) for i in range(4)], [])
        for (i, j), v in zip(EDGES, arch.values):
            g.edges.append(Edge(f"n{j}", f"n{i}", OPS[v], "dashed" if OPS[v] == "none" else "solid"))
        return g

    def child(self, arch: Architecture, in_channels: int, num_classes: int, channels: int = 16,
              num_cells: int = 5, *, affine: bool = True, track_running_stats: bool = True) -> "NB201Net":
        """The benchmark's network of ``arch`` (``channels=16, num_cells=5`` as in its table)."""
        self.check(arch)
        return NB201Net([OPS[v] for v in arch.values], in_channels, num_classes, channels, num_cells,
                        affine, track_running_stats)

    def shared(self, in_channels: int, num_classes: int, channels: int = 16, num_cells: int = 5, *,
               affine: bool = False, track_running_stats: bool = False,
               param_free_dropout: float = 0.0) -> "NB201Shared":
        """The shared-weight network; ``forward(x, arch)``. The benchmark's one-shot searches
        build their cells' BN without affine terms; ``track_running_stats`` is the
        ``--track_running_stats`` flag of its scripts (False: batch statistics always).
        ``param_free_dropout``: P-DARTS's operation-level dropout (Chen et al. 2019, §3.3) on the
        output of every parameter-free edge (``skip_connect``, ``avg_pool_3x3``) while the shared
        weights train, at this rate at the start of the search and decayed linearly to 0 at its end
        (:meth:`NB201Shared.set_progress`); never while a reward is computed (no gradient)."""
        return NB201Shared(in_channels, num_classes, channels, num_cells, affine, track_running_stats,
                           param_free_dropout)

    def child_from_shared(self, shared_net: "NB201Shared", arch: Architecture) -> "NB201Net":
        """A standalone network with the shared weights of ``arch`` copied in: it computes
        ``shared_net(x, arch)``."""
        h = shared_net.hparams
        net = self.child(arch, h["in_channels"], h["num_classes"], h["channels"], h["num_cells"],
                         affine=h["affine"], track_running_stats=h["track_running_stats"])
        p = next(shared_net.parameters())
        net.to(device=p.device, dtype=p.dtype)
        with torch.no_grad():
            for name in ("stem", "lastact", "classifier"):
                getattr(net, name).load_state_dict(getattr(shared_net, name).state_dict())
            for layer, slayer in zip(net.layers, shared_net.layers):
                if isinstance(layer, ResidualReduction):
                    layer.load_state_dict(slayer.state_dict())
                    continue
                for e, v in enumerate(arch.values):
                    layer.edges[e].load_state_dict(slayer.edges[e][v].state_dict())
        net.train(shared_net.training)
        return net

    def function_params(self, arch: Architecture) -> int:
        """The parameters that the cell's function uses: the fewest of :meth:`param_count` over
        the encodings of the same function (:meth:`unique_str`), so a convolution on an edge
        that carries only zeros or reaches no output counts nothing. Cells with equal counts have
        the same convolutions at work (a 3x3 and a 1x1 never trade: 9C² + 2C against C² + 2C)."""
        return _function_params()[self.unique_str(arch)]

    # -- the benchmark's tables, for judging a finished search ------------------------------------
    def ground_truth(self, arch: Architecture, data_dir=None) -> dict:
        """What NAS-Bench-201 says of ``arch``: first the verdict, its CIFAR-10 test accuracy after
        200 epochs (``test_acc_200ep``), its rank among the 15,625 cells by it (1 = best; tied
        cells share the best rank) and percentile (the share of cells below it); then the
        12-epoch search signal: validation and test accuracy, percentiles, rank by validation.
        ``params`` is the benchmark network's size. A table that is not found leaves its fields
        out and says why in ``note``. Only for reporting after a search: a search that read
        either table would peek at the answer."""
        out = {"arch_str": self.to_arch_str(arch), "params": self.param_count(arch),
               "function_params": self.function_params(arch)}
        notes = []
        verdict = _lookup(VERDICT_FILE, VERDICT_HOW, VERDICT_COLUMN, data_dir)
        if isinstance(verdict, str):
            out["verdict_table"] = None
            notes.append(verdict)
        else:
            path, rows, ranked = verdict
            acc = rows[arch.values][VERDICT_COLUMN]
            col = ranked[VERDICT_COLUMN]
            out.update(verdict_table=str(path), test_acc_200ep=acc, rank_200ep=_rank(col, acc),
                       percentile_200ep=_percentile(col, acc), cells=len(col))
        signal = _lookup(TABLE_FILE, TABLE_HOW, (VALID_COLUMN, TEST_COLUMN), data_dir)
        if isinstance(signal, str):
            out["table"] = None
            notes.append(signal)
        else:
            path, rows, ranked = signal
            m = rows[arch.values]
            valid, test = ranked[VALID_COLUMN], ranked[TEST_COLUMN]
            out.update(table=str(path), valid_acc=m[VALID_COLUMN], test_acc=m[TEST_COLUMN],
                       valid_percentile=_percentile(valid, m[VALID_COLUMN]),
                       test_percentile=_percentile(test, m[TEST_COLUMN]),
                       valid_rank=_rank(valid, m[VALID_COLUMN]), cells=len(valid), metrics=dict(m))
        if notes:
            out["note"] = " ".join(notes)
        return out

    def baselines(self, data_dir=None) -> dict:
        """The verdict (200-epoch test accuracy) on what a reviewer tries before any search, from
        the table: the optimum; the largest cell (most parameters in the benchmark's network:
        every edge ``nor_conv_3x3``); the expected random cell, uniform over the 15,625
        encodings (``random_cell``) and over the 6,466 distinct cells (``random_distinct_cell``,
        each cell its encodings' mean). ``{"verdict_table": None, "note": ...}`` without the table."""
        verdict = _lookup(VERDICT_FILE, VERDICT_HOW, VERDICT_COLUMN, data_dir)
        if isinstance(verdict, str):
            return {"verdict_table": None, "note": verdict}
        path, rows, ranked = verdict
        acc = {v: r[VERDICT_COLUMN] for v, r in rows.items()}
        largest = max(acc, key=lambda v: (self.param_count(self.make(v)), acc[v]))
        classes = [sum(acc[v] for v in members) / len(members) for members in _unique_classes()]
        a = self.make(largest)
        return {"verdict_table": str(path), "optimum": ranked[VERDICT_COLUMN][-1],
                "largest_cell": {"arch_str": self.to_arch_str(a), "params": self.param_count(a),
                                 "test_acc_200ep": acc[largest], "rank_200ep": _rank(ranked[VERDICT_COLUMN], acc[largest])},
                "random_cell": sum(acc.values()) / len(acc), "random_distinct_cell": sum(classes) / len(classes),
                "cells": len(acc)}


@functools.cache
def _op_params(op: str, channels: int) -> int:
    return sum(p.numel() for p in make_op(op, channels).parameters())


@functools.cache
def _backbone_params(channels: int, num_cells: int, in_channels: int, num_classes: int) -> int:
    net = NB201Net(["none"] * len(EDGES), in_channels, num_classes, channels, num_cells)
    return sum(p.numel() for p in net.parameters())


def _rank(ranked: list[float], value: float) -> int:
    """``value``'s rank in the sorted column ``ranked``: 1 = best, tied cells share the best rank."""
    return len(ranked) - bisect_right(ranked, value) + 1


def _percentile(ranked: list[float], value: float) -> float:
    """The share of the sorted column ``ranked`` strictly below ``value``, in percent."""
    return round(100.0 * bisect_left(ranked, value) / len(ranked), 2)


@functools.cache
def _unique_classes() -> list[list[tuple[int, ...]]]:
    """The 15,625 encodings grouped by :meth:`NB201Space.unique_str`, in a fixed order."""
    space, groups = NB201Space(), {}
    for arch in iter_all(space):
        groups.setdefault(space.unique_str(arch), []).append(arch.values)
    return [groups[k] for k in sorted(groups)]


@functools.cache
def _function_params() -> dict[str, int]:
    space = NB201Space()
    return {space.unique_str(space.make(members[0])): min(space.param_count(space.make(v)) for v in members)
            for members in _unique_classes()}


_TABLES: dict = {}


def _lookup(file: str, how: str, columns, data_dir):
    """(path, rows, {column: its values sorted}) of one of the benchmark's files, read once per
    file version; a string saying why when the file is not found."""
    try:
        path = find(file, data_dir, how)
    except FileNotFoundError as e:
        return str(e)
    columns = (columns,) if isinstance(columns, str) else tuple(columns)
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size, columns)
    if key not in _TABLES:
        rows, have = read_table(path, how)
        missing = [c for c in columns if c not in have]
        if missing:
            raise DataFormatError(f"{path}: no column {', '.join(missing)} (it has {', '.join(have)}). {how}")
        if len(_TABLES) > 4:
            _TABLES.clear()
        _TABLES[key] = (path, rows, {c: sorted(r[c] for r in rows.values()) for c in columns})
    return _TABLES[key]


def read_table(path: Path, how: str = TABLE_HOW) -> tuple[dict, list[str]]:
    """A NAS-Bench-201 table: {architecture values: {column: accuracy}} and the metric columns;
    a malformed or truncated file is a :class:`DataFormatError` naming the file and line."""
    space = NB201Space()
    try:
        f = open(path, newline="")
    except OSError as e:
        raise DataFormatError(f"{path}: cannot read the NAS-Bench-201 table ({e})") from None
    with f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or "arch_str" not in header:
            raise DataFormatError(f"{path}: not a NAS-Bench-201 table: the header must name an 'arch_str' "
                                  f"column (got {header!r}). {how}")
        a = header.index("arch_str")
        columns = [c for i, c in enumerate(header) if i != a and c != "index"]
        rows = {}
        for line, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise DataFormatError(f"{path}, line {line}: {len(row)} fields, the header has {len(header)}")
            try:
                arch = space.from_arch_str(row[a])
            except ValueError as e:
                raise DataFormatError(f"{path}, line {line}: {e}") from None
            try:
                values = {c: float(v) for c, v in zip(header, row) if c in columns}
            except ValueError:
                raise DataFormatError(f"{path}, line {line}: a metric is not a number: {row}") from None
            if any(not math.isfinite(v) for v in values.values()):
                raise DataFormatError(f"{path}, line {line}: a metric is not finite: {row}")
            rows[arch.values] = values
    if len(rows) != space.size():
        raise DataFormatError(f"{path}: {len(rows)} distinct architectures, the NAS-Bench-201 space has "
                              f"{space.size()}; the file is truncated or not the table it should be. {how}")
    return rows, columns

# -- networks (AutoDL-Projects lib/models: cell_operations.py, cell_infers/, cell_searchs/) ----
# The benchmark's network (Dong & Yang 2020, §2, Fig. 1): a 3x3 conv stem (16 channels, no
# bias) + BN; three stages of ``num_cells`` cells with C, 2C, 4C channels; between stages a
# residual reduction block (ResNetBasicblock, stride 2); then BN-ReLU, global average pooling
# and a linear classifier. Every operation on an edge keeps its channel count (stride 1).


class ReLUConvBN(nn.Sequential):
    """``nor_conv_kxk`` (``ReLUConvBN``): ReLU, conv without bias, BN."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats))


class Zero(nn.Module):
    """``none``: the edge carries zeros (``x.mul(0.)``), so no gradient reaches its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class AvgPool(nn.AvgPool2d):
    """``avg_pool_3x3``: stride 1, padding 1, the padding not counted (``count_include_pad=False``)."""

    def __init__(self):
        super().__init__(3, stride=1, padding=1, count_include_pad=False)


def make_op(name: str, channels: int, affine: bool = True, track_running_stats: bool = True) -> nn.Module:
    """One edge operation of a cell (every cell edge has stride 1 and C_in = C_out)."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "avg_pool_3x3":
        return AvgPool()
    if name in ("nor_conv_1x1", "nor_conv_3x3"):
        return ReLUConvBN(channels, channels, int(name[-1]), 1, affine, track_running_stats)
    raise ValueError(f"unknown NAS-Bench-201 op {name!r}; the ops are {', '.join(OPS)}")


class ResidualReduction(nn.Module):
    """The block between stages (``ResNetBasicblock(C, 2C, stride=2)``): two ReLU-conv3x3-BN
    (the first with stride 2) added to a shortcut of 2x2 average pooling and a 1x1 conv."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def run_cell(x: torch.Tensor, edge_op) -> torch.Tensor:
    """Node i = Σ_{j<i} op_ij(node j); the output is node 3. ``edge_op(e)`` is the module on
    edge ``EDGES[e]``, or None for ``none``: a zero term is left out of the sum (it adds
    nothing and passes no gradient), and a node whose every edge is ``none`` is zeros."""
    nodes = [x]
    for i in range(1, 4):
        terms = [op(nodes[j]) for e, (to, j) in enumerate(EDGES) if to == i
                 for op in [edge_op(e)] if op is not None]
        nodes.append(sum(terms[1:], terms[0]) if terms else torch.zeros_like(x))
    return nodes[3]


class NB201Cell(nn.Module):
    """A cell of one architecture (``InferCell``): one module per edge."""

    def __init__(self, ops: Sequence[str], channels: int, affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        self.ops = tuple(ops)
        self.edges = nn.ModuleList(make_op(o, channels, affine, track_running_stats) for o in self.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_cell(x, lambda e: None if self.ops[e] == "none" else self.edges[e])


PARAM_FREE = ("skip_connect", "avg_pool_3x3")


class SharedCell(nn.Module):
    """The shared-weight cell (``SearchCell``): every op on every edge has its own module;
    only the sampled op of each edge runs. ``drop``: the rate of dropout on parameter-free edges'
    outputs, applied only in training mode with gradients on (the shared weights' step)."""

    def __init__(self, channels: int, affine: bool = False, track_running_stats: bool = False):
        super().__init__()
        self.edges = nn.ModuleList(nn.ModuleList(make_op(o, channels, affine, track_running_stats) for o in OPS)
                                   for _ in EDGES)
        self.drop = 0.0

    def forward(self, x: torch.Tensor, values: Sequence[int]) -> torch.Tensor:
        drop = self.drop if self.training and torch.is_grad_enabled() else 0.0

        def edge(e):
            op = OPS[values[e]]
            if op == "none":
                return None
            if drop and op in PARAM_FREE:
                return lambda h: nn.functional.dropout(self.edges[e][values[e]](h), drop)
            return self.edges[e][values[e]]
        return run_cell(x, edge)


class _NB201Backbone(nn.Module):
    """Stem, stages, reductions and head (``TinyNetwork``); subclasses make the cells."""

    def __init__(self, in_channels: int, num_classes: int, channels: int, num_cells: int, make_cell):
        super().__init__()
        if channels < 1 or num_cells < 1:
            raise ValueError(f"nb201 network needs channels >= 1 and num_cells >= 1, got {channels}, {num_cells}")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))
        layers, c = [], channels
        for stage in range(3):
            if stage:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers.extend(make_cell(c) for _ in range(num_cells))
        self.layers = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(c, num_classes)

    def _forward(self, x: torch.Tensor, run) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x) if isinstance(layer, ResidualReduction) else run(layer, x)
        x = self.lastact(x)
        return self.classifier(x.mean((2, 3)))


class NB201Net(_NB201Backbone):
    """The standalone network of one cell (every stage repeats it)."""

    def __init__(self, ops: Sequence[str], in_channels: int, num_classes: int, channels: int = 16,
                 num_cells: int = 5, affine: bool = True, track_running_stats: bool = True):
        super().__init__(in_channels, num_classes, channels, num_cells,
                         lambda c: NB201Cell(ops, c, affine, track_running_stats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x, lambda cell, h: cell(h))


class NB201Shared(_NB201Backbone):
    """The shared-weight network (``TinyNetworkENAS``): ``forward(x, arch)`` runs the sampled
    cell in every stage with the weights of the ops it uses."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 16, num_cells: int = 5,
                 affine: bool = False, track_running_stats: bool = False, param_free_dropout: float = 0.0):
        if not 0.0 <= param_free_dropout < 1.0:
            raise ValueError(f"nb201 param_free_dropout must be in [0, 1), got {param_free_dropout}")
        super().__init__(in_channels, num_classes, channels, num_cells,
                         lambda c: SharedCell(c, affine, track_running_stats))
        self.hparams = dict(in_channels=in_channels, num_classes=num_classes, channels=channels,
                            num_cells=num_cells, affine=affine, track_running_stats=track_running_stats)
        self.param_free_dropout = param_free_dropout
        self.set_progress(0.0)

    def set_progress(self, done: float) -> None:
        """The share ``done`` of the search's shared training is over: the parameter-free edges'
        dropout is ``param_free_dropout · (1 − done)`` (P-DARTS decays its rate during a stage)."""
        for layer in self.layers:
            if isinstance(layer, SharedCell):
                layer.drop = self.param_free_dropout * max(0.0, 1.0 - done)

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        return self._forward(x, lambda cell, h: cell(h, arch.values))
