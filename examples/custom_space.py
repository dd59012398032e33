"""Your own search space and evaluator, in your own file, searched by REINFORCE through the API
without editing torchnas (docs/extending.md): the widths and activations of an MLP on
scikit-learn's digits.

    python examples/custom_space.py [--queries 24] [--out runs/mlp-digits]

Registering makes the names usable in a config; the controller, the strategies, the run
directory (resume, logs, figures) and `torchnas show` then work on the new space as on any other.
"""
import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_digits

from torchnas import api
from torchnas.evaluators import Evaluation, Evaluator
from torchnas.registry import register
from torchnas.settings import Count, Positive
from torchnas.spaces import Choice, SearchSpace
from torchnas.spaces.graph import Node, stack_graph

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


@register("space")
class MLPSpace(SearchSpace):
    """Per hidden layer: its width, then its activation (two softmax decisions of the controller)."""

    name = "mlp"

    def __init__(self, layers: Count = 2, widths: tuple[int, ...] = (16, 32, 64, 128)):
        self.layers, self.widths = layers, tuple(widths)
        self.decisions = tuple(d for i in range(layers) for d in (
            Choice(f"layer{i}.width", [str(w) for w in self.widths], kind="width"),
            Choice(f"layer{i}.act", list(ACTIVATIONS), kind="act")))

    def network(self, arch, inputs: int, classes: int) -> nn.Sequential:
        modules, width = [], inputs
        for i in range(self.layers):
            w, act = self.widths[arch.values[2 * i]], list(ACTIVATIONS)[arch.values[2 * i + 1]]
            modules += [nn.Linear(width, w), ACTIVATIONS[act]()]
            width = w
        return nn.Sequential(*modules, nn.Linear(width, classes))

    def graph(self, arch, **options):
        labels = [f"linear {self.widths[arch.values[2 * i]]} + {list(ACTIVATIONS)[arch.values[2 * i + 1]]}"
                  for i in range(self.layers)]
        inputs = [["input"]] + [[f"layer{i}"] for i in range(self.layers - 1)]
        return stack_graph("MLP", [Node("input", "input (64 pixels)", "input")], labels, inputs,
                           [[] for _ in labels], Node("output", "linear 10", "output"), [f"layer{self.layers - 1}"])

    def config(self) -> dict:
        return {"name": self.name, "layers": self.layers, "widths": list(self.widths)}


@register("evaluator", "mlp-digits")
class MLPOnDigits(Evaluator):
    """Reward: validation accuracy of the MLP after ``epochs`` of Adam on 1,437 digits
    (the same seed for every architecture)."""

    def __init__(self, space, data_dir=None, seed: int = 0, epochs: Count = 20, lr: Positive = 0.01):
        x, y = load_digits(return_X_y=True)
        x = torch.tensor(x / 16.0, dtype=torch.float32)
        self.train, self.valid = (x[:1437], torch.tensor(y[:1437])), (x[1437:], torch.tensor(y[1437:]))
        self.space, self.seed, self.epochs, self.lr = space, seed, epochs, lr

    def evaluate(self, arch) -> Evaluation:
        torch.manual_seed(self.seed)
        model = self.space.network(arch, 64, 10)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        (x, y), (vx, vy) = self.train, self.valid
        for _ in range(self.epochs):
            for idx in torch.randperm(len(x)).split(128):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
        with torch.no_grad():
            acc = (model(vx).argmax(1) == vy).float().mean().item()
        return Evaluation(acc, {"valid_acc": acc, "params": sum(p.numel() for p in model.parameters())})


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--queries", type=int, default=24)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--out", default="runs/mlp-digits")
    args = p.parse_args()
    config = {"space": {"name": "mlp", "layers": 2}, "evaluator": {"name": "mlp-digits", "epochs": args.epochs},
              "budget": args.queries, "seed": 0,
              "strategy": {"name": "reinforce", "batch_size": 4, "lr": 0.01, "controller": {"tanh_constant": 1.5}}}
    run = api.search(config=config, out=args.out, quiet=False)
    print(f"best: {run.best['arch']}  valid accuracy {run.best['reward']:.4f}")
