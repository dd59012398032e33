"""A small space that uses every decision kind and every controller-program feature.

Used by the tests (sampling frequencies, REINFORCE convergence, resumption) and handy for
trying a strategy in seconds. Two layouts:

* ``layout="chain"`` (Zoph & Le / ENAS macro style): layer i picks an op (Choice), one input
  (Anchor over the i earlier layers, from layer 1 on) and skip inputs (AnchorSet over the i
  earlier layers); the skip step registers layer i as an anchor point.
* ``layout="cell"`` (ENAS micro style): two zero-content anchors stand for the cell inputs;
  node i picks one input (Anchor over 2 + i) and an op; a pure anchor-point step follows
  each node.
"""
from __future__ import annotations

from ..registry import register
from .base import Anchor, AnchorSet, Choice, SearchSpace, Step
from .graph import Graph, Node, cell_graph, stack_graph


@register("space")
class ToySpace(SearchSpace):
    name = "toy"

    def __init__(self, layers: int = 3, options: int = 2, layout: str = "chain"):
        if layers < 1 or options < 1:
            raise ValueError("toy space needs layers >= 1 and options >= 1")
        if layout not in ("chain", "cell"):
            raise ValueError(f"toy space layout must be 'chain' or 'cell', not {layout!r}")
        self.layers, self.options, self.layout = layers, options, layout
        ops = tuple(f"op{k}" for k in range(options))
        decisions, steps = [], []
        if layout == "cell":
            steps += [Step(None, anchor="zero"), Step(None, anchor="zero")]
        for i in range(layers):
            if layout == "chain":
                steps.append(Step(len(decisions)))
                decisions.append(Choice(f"layer{i}.op", ops, kind="op"))
                if i > 0:
                    steps.append(Step(len(decisions)))
                    decisions.append(Anchor(f"layer{i}.input", i))
                steps.append(Step(len(decisions), anchor="h"))
                decisions.append(AnchorSet(f"layer{i}.skips", i))
            else:
                steps.append(Step(len(decisions)))
                decisions.append(Anchor(f"node{i}.input", 2 + i))
                steps.append(Step(len(decisions)))
                decisions.append(Choice(f"node{i}.op", ops, kind="op"))
                steps.append(Step(None, anchor="h"))
        self.decisions = tuple(decisions)
        self._steps = tuple(steps)


    def graph(self, arch, **options) -> Graph:
        """The toy space: a chain (op per layer, one input, dashed skips) or a cell (one input
        and op per node); the loose ends feed the output."""
        v = {d.name: x for d, x in zip(self.decisions, arch.values)}
        option = {d.name: d.options for d in self.decisions if isinstance(d, Choice)}
        op = lambda name: option[name][v[name]]
        n = self.layers
        if self.layout == "cell":
            g = Graph("toy space (cell layout)", [], [])
            cell_graph(g, "", "toy cell", ["in 0", "in 1"],
                       [(f"node {i}", [(v[f"node{i}.input"], op(f"node{i}.op"))]) for i in range(n)], "output")
            return g
        inputs = [["input"]] + [[f"layer{v[f'layer{i}.input']}"] for i in range(1, n)]
        skips = [[f"layer{j}" for j in v[f"layer{i}.skips"]] for i in range(n)]
        used = {s for ins in inputs[1:] + skips for s in ins}
        return stack_graph("toy space (chain layout)", [Node("input", "input", "input")],
                           [f"layer {i}: {op(f'layer{i}.op')}" for i in range(n)], inputs, skips,
                           Node("output", "output", "output"), [f"layer{i}" for i in range(n) if f"layer{i}" not in used])

    def config(self) -> dict:
        return {"name": self.name, "layers": self.layers, "options": self.options, "layout": self.layout}
