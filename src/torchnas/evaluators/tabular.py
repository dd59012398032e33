"""Tabular evaluation: look an architecture up in a benchmark table (NAS-Bench-201).

The table is ``nasbench201/nb201_12epoch.csv`` under the data root: one row per cell of the
NAS-Bench-201 space, ``index, arch_str`` and accuracy columns in percent. The reward is one
column divided by 100; the default is the benchmark's search signal, the 12-epoch CIFAR-10
validation accuracy (``cifar10valid_xvalid_acc_12ep``). Every numeric column is returned as
a metric so that a search can be judged on test accuracy it never saw.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from ..data import DataFormatError, find
from ..spaces import Architecture, NB201Space
from .base import Evaluation, Evaluator

NB201_FILE = "nasbench201/nb201_12epoch.csv"
NB201_DEFAULT_REWARD = "cifar10valid_xvalid_acc_12ep"
NB201_HOW = ("It is the NAS-Bench-201 12-epoch table (15,625 rows: index, arch_str and accuracy "
             "columns); put it at <data root>/" + NB201_FILE + " or pass --data-dir.")


class NB201Table(Evaluator):
    def __init__(self, reward: str = NB201_DEFAULT_REWARD, data_dir: str | None = None,
                 path: str | Path | None = None):
        self.space = NB201Space()
        self.path = Path(path) if path else find(NB201_FILE, data_dir, NB201_HOW)
        self.rows, self.columns = _read_table(self.path, self.space)
        if reward not in self.columns:
            raise DataFormatError(f"{self.path}: reward column {reward!r} is not in the table; "
                                  f"its metric columns are {', '.join(self.columns)}")
        self.reward_column = reward

    def evaluate(self, arch: Architecture) -> Evaluation:
        metrics = self.rows[self.space.check(arch).values]
        return Evaluation(metrics[self.reward_column] / 100.0, dict(metrics))


def _read_table(path: Path, space: NB201Space):
    try:
        f = open(path, newline="")
    except OSError as e:
        raise DataFormatError(f"{path}: cannot read the NAS-Bench-201 table ({e})") from None
    with f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or "arch_str" not in header:
            raise DataFormatError(f"{path}: not a NAS-Bench-201 table: the header must name an 'arch_str' "
                                  f"column (got {header!r}). {NB201_HOW}")
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
                              f"{space.size()}; the file is truncated or not the 12-epoch table. {NB201_HOW}")
    return rows, columns
