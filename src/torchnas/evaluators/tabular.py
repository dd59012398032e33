"""Tabular evaluation: look an architecture up in a benchmark table (NAS-Bench-201).

The table is ``nasbench201/nb201_12epoch.csv`` under the data root: one row per cell of the
NAS-Bench-201 space, ``index, arch_str`` and accuracy columns in percent. The reward is one
column divided by 100; the default is the benchmark's search signal, the 12-epoch CIFAR-10
validation accuracy (``cifar10valid_xvalid_acc_12ep``). Every numeric column is returned as
a metric so that a search can be judged on test accuracy it never saw.
"""
from __future__ import annotations

from pathlib import Path

from ..data import DataFormatError, find
from ..registry import register
from ..settings import checked
from ..spaces import Architecture, NB201Space
from ..spaces.nb201 import TABLE_FILE as NB201_FILE, TABLE_HOW as NB201_HOW, VALID_COLUMN, read_table
from .base import Evaluation, Evaluator

NB201_DEFAULT_REWARD = VALID_COLUMN


class NB201Table(Evaluator):
    def __init__(self, reward: str = NB201_DEFAULT_REWARD, data_dir: str | None = None,
                 path: str | Path | None = None):
        self.space = NB201Space()
        self.path = Path(path) if path else find(NB201_FILE, data_dir, NB201_HOW)
        self.rows, self.columns = read_table(self.path)
        if reward not in self.columns:
            raise DataFormatError(f"{self.path}: reward column {reward!r} is not in the table; "
                                  f"its metric columns are {', '.join(self.columns)}")
        self.reward_column = reward

    def evaluate(self, arch: Architecture) -> Evaluation:
        metrics = self.rows[self.space.check(arch).values]
        return Evaluation(metrics[self.reward_column] / 100.0, dict(metrics))


@register("evaluator", "nb201")
def _nb201_table(space=None, data_dir: str | None = None, seed: int = 0, **settings) -> NB201Table:
    return NB201Table(data_dir=data_dir, **checked("evaluator", NB201Table, settings, fixed=("data_dir",),
                                                     owner="evaluator 'nb201'"))
