"""Where data sets live: one data root, laid out like the project's shared copy.

    ROOT/nasbench201/nb201_12epoch.csv
    ROOT/ptb/ptb.{train,valid,test}.txt
    ROOT/cifar10/cifar-10-batches-py/...

The root is ``--data-dir DIR`` if given, else ``$TORCHNAS_DATA``, else ``~/.torchnas/data``.
Nothing is ever downloaded: a missing data set is an error that says where it was looked for
and how to get it.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "TORCHNAS_DATA"
DEFAULT_ROOT = Path("~/.torchnas/data")


class DataNotFoundError(FileNotFoundError):
    """A data set is missing; the message names the path and how to provide it."""


class DataFormatError(ValueError):
    """A data file exists but is not in the expected format; the message names the file."""


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return DEFAULT_ROOT.expanduser()


def _origin(data_dir) -> str:
    if data_dir:
        return "--data-dir"
    if os.environ.get(ENV_VAR):
        return f"${ENV_VAR}"
    return f"the default root (set --data-dir or ${ENV_VAR} to change it)"


def find(relpath: str, data_dir: str | os.PathLike | None = None, how_to_get: str = "") -> Path:
    """``ROOT/relpath`` if it exists, else a :class:`DataNotFoundError`."""
    root = data_root(data_dir)
    path = root / relpath
    if not path.exists():
        msg = f"data not found: {path} (data root {root}, from {_origin(data_dir)})."
        if how_to_get:
            msg += " " + how_to_get
        raise DataNotFoundError(msg)
    return path
