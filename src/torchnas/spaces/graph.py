"""The diagram of an architecture as a small, backend-neutral graph: every space draws its
own (``SearchSpace.graph``) with these pieces; ``torchnas.viz.diagrams`` renders it."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    kind: str = "node"          # "input", "node" (a cell node), "op" (an op box), "layer" or "output"


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    label: str = ""             # the op on the edge
    style: str = "solid"        # "solid" or "dashed" (skip connections, NB201's 'none')


@dataclass(frozen=True)
class Cluster:
    id: str
    label: str
    nodes: tuple[str, ...]


@dataclass
class Graph:
    title: str
    nodes: list[Node]
    edges: list[Edge]
    clusters: list[Cluster] = field(default_factory=list)
    direction: str = "LR"       # "LR" (cells) or "BT" (layer stacks, input at the bottom)
    ordered: bool = False       # keep the nodes of a rank in the order they were added

    def node(self, id: str) -> Node:
        return next(n for n in self.nodes if n.id == id)

    def into(self, id: str) -> list[Edge]:
        """The edges entering node ``id``."""
        return [e for e in self.edges if e.dst == id]


def cell_graph(g: Graph, prefix: str, title: str, inputs: list[str], nodes, out_label: str,
               op_boxes: bool = False) -> None:
    """Add one DAG cell to ``g``: ``nodes`` is ``[(name, [(input index, op), ...])]``, an input
    index counting the cell inputs first; the output concatenates the loose ends. Node ids are
    ``node{k}``: ``k`` counts from 0, or with ``op_boxes`` from ``len(inputs)`` (the index an arc
    gives the node), and each op is then a box of its own (``node{k}.op{j}``) feeding the node,
    as ENAS Fig. 8 draws a cell; otherwise the op labels the edge."""
    first = len(inputs) if op_boxes else 0
    ids = [f"{prefix}in{k}" for k in range(len(inputs))] + [f"{prefix}node{first + i}" for i in range(len(nodes))]
    members = list(ids) + [f"{prefix}out"]
    g.nodes += [Node(ids[k], name, "input") for k, name in enumerate(inputs)]
    used = set()
    for i, (name, preds) in enumerate(nodes):
        node = ids[len(inputs) + i]
        for j, (k, op) in enumerate(preds if op_boxes else ()):
            g.nodes.append(Node(f"{node}.op{j}", op, "op"))
            members.append(f"{node}.op{j}")
            g.edges += [Edge(ids[k], f"{node}.op{j}"), Edge(f"{node}.op{j}", node)]
        g.nodes.append(Node(node, name))
        for k, op in preds:
            if not op_boxes:
                g.edges.append(Edge(ids[k], node, op))
            used.add(k)
    g.nodes.append(Node(f"{prefix}out", out_label, "output"))
    g.edges += [Edge(ids[k], f"{prefix}out") for k in range(len(ids)) if k not in used]
    g.clusters.append(Cluster(prefix.rstrip(".") or "cell", title, tuple(members)))


def stack_graph(title: str, first: list[Node], layers: list[str], inputs: list[list[str]],
           skips: list[list[str]], out: Node, out_from: list[str]) -> Graph:
    """A layer stack drawn bottom-up: ``first`` nodes in a chain, then each layer with its
    inputs (solid) and skips (dashed), then ``out`` fed by ``out_from``."""
    g = Graph(title, list(first), [], direction="BT")
    g.edges += [Edge(a.id, b.id) for a, b in zip(first, first[1:])]
    for i, label in enumerate(layers):
        g.nodes.append(Node(f"layer{i}", label, "layer"))
        g.edges += [Edge(s, f"layer{i}") for s in inputs[i]]
        g.edges += [Edge(s, f"layer{i}", style="dashed") for s in skips[i]]
    g.nodes.append(out)
    g.edges += [Edge(s, out.id) for s in out_from]
    return g
