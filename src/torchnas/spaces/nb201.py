"""NAS-Bench-201 cell space (Dong & Yang, ICLR 2020, §2).

A cell is a DAG of 4 nodes; every edge j -> i (j < i) carries one of five operations, so an
architecture is six Choices in the benchmark's edge order: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2.
The benchmark writes it as ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (its ``arch_str``);
:meth:`NB201Space.to_arch_str` and :meth:`NB201Space.from_arch_str` convert both ways, and
:meth:`NB201Space.parse` accepts either form.
"""
from __future__ import annotations

from .base import Architecture, ArchitectureError, Choice, SearchSpace

# The benchmark's operation order (NAS-Bench-201 paper, §2; `NAS_BENCH_201` in its API).
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from) in arch_str order


class NB201Space(SearchSpace):
    name = "nb201"

    def __init__(self):
        self.decisions = tuple(Choice(f"node{i}<-{j}", OPS, kind="op") for i, j in EDGES)

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
        if text.strip().startswith("|"):
            return self.from_arch_str(text)
        return super().parse(text)
