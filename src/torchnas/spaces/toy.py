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


    def config(self) -> dict:
        return {"name": self.name, "layers": self.layers, "options": self.options, "layout": self.layout}
