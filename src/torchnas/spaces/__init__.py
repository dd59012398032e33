"""Search spaces: the decisions a controller makes and the networks they denote."""
from __future__ import annotations

from .base import (Anchor, AnchorSet, Architecture, ArchitectureError, Choice, SearchSpace,
                   Step, iter_all)
from .enas_macro import ENASMacroSpace
from .enas_micro import ENASMicroSpace
from .enas_rnn import ENASRNNSpace
from .nas_cnn import NASCNNSpace
from .nas_rnn import NASRNNSpace
from .nb201 import NB201Space
from .toy import ToySpace

from ..registry import lookup, registered
from ..settings import checked

SPACES: dict[str, type[SearchSpace]] = registered("space")     # every space registers itself (@register)


def get_space(name: str, **kwargs) -> SearchSpace:
    """Build the space registered as ``name`` (keyword arguments configure it)."""
    cls = lookup("space", name, error=ArchitectureError)
    try:
        return cls(**checked("space", cls, kwargs, owner=f"space {name!r}"))
    except TypeError as e:   # a setting the space does not take
        raise ValueError(f"space {name!r}: {e}") from None


def space_from_config(cfg: dict) -> SearchSpace:
    cfg = dict(cfg)
    return get_space(cfg.pop("name"), **cfg)


__all__ = ["Anchor", "AnchorSet", "Architecture", "ArchitectureError", "Choice", "SearchSpace",
           "Step", "iter_all", "get_space", "space_from_config", "SPACES", "ENASMacroSpace", "ENASMicroSpace", "ENASRNNSpace", "NASCNNSpace", "NASRNNSpace", "NB201Space", "ToySpace"]
