"""The search-space contract.

A search space is the ordered list of decisions a controller makes (Zoph & Le 2017 §3.1;
Pham et al. 2018 §2), plus the code that turns a list of decision values into a network.
Three kinds of decision cover both papers:

* :class:`Choice`    -- one of k options (filter height, an operation, an activation);
* :class:`Anchor`    -- one earlier anchor point (ENAS micro/RNN: a node picks one input);
* :class:`AnchorSet` -- any subset of earlier anchor points (Zoph & Le skip connections,
  ENAS macro skips).

Anchor points are registered by the controller program (:class:`Step`): after a step marked
``anchor``, that step's LSTM output becomes the next anchor point, so an ``Anchor(n)`` or
``AnchorSet(n)`` decision chooses among the first ``n`` anchor points registered since the
last ``reset_anchors``. A space that needs no anchors uses the default program: one step per
decision.

An :class:`Architecture` is an immutable value -- the space's name plus one value per decision:
an option index for a Choice, an anchor index for an Anchor, a sorted tuple of anchor indices
for an AnchorSet. Its canonical string is ``space:v1,v2,...`` where a Choice shows its option
label, an Anchor its index and an AnchorSet its indices joined by ``+`` (``-`` when empty).
"""
from __future__ import annotations

import json
import random as _random
from dataclasses import dataclass, field
from typing import Iterable, Sequence


class ArchitectureError(ValueError):
    """An architecture does not fit its search space."""


@dataclass(frozen=True)
class Choice:
    """Pick one of ``options``. Decisions with the same ``kind`` share the controller's
    softmax head and embedding table (ENAS shares one op head across layers). ``bias`` is a
    fixed prior the controller adds to this decision's logits after the tanh (ENAS micro's
    ``b_soft_no_learn`` on the normal cell's ops)."""

    name: str
    options: tuple[str, ...]
    kind: str = ""
    bias: tuple[float, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "options", tuple(str(o) for o in self.options))
        if len(self.options) < 1:
            raise ValueError(f"decision {self.name!r} needs at least one option")
        if len(set(self.options)) != len(self.options):
            raise ValueError(f"decision {self.name!r} has repeated options {self.options}")
        if not self.kind:
            object.__setattr__(self, "kind", self.name)
        if self.bias is not None:
            object.__setattr__(self, "bias", tuple(float(b) for b in self.bias))
            if len(self.bias) != len(self.options):
                raise ValueError(f"decision {self.name!r}: bias has {len(self.bias)} values for "
                                 f"{len(self.options)} options")

    def allowed(self) -> str:
        return "one of " + ", ".join(self.options)

    def check(self, value) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(self.options):
            raise ArchitectureError(
                f"decision {self.name!r}: value {value!r} is not an option index 0..{len(self.options) - 1} "
                f"({self.allowed()})")
        return value

    def format(self, value: int) -> str:
        return self.options[value]

    def parse(self, token: str) -> int:
        if token in self.options:
            return self.options.index(token)
        raise ArchitectureError(f"decision {self.name!r}: {token!r} is not {self.allowed()}")

    def num_values(self) -> int:
        return len(self.options)


@dataclass(frozen=True)
class Anchor:
    """Pick exactly one of the first ``num_anchors`` anchor points."""

    name: str
    num_anchors: int

    def __post_init__(self):
        if self.num_anchors < 1:
            raise ValueError(f"decision {self.name!r} needs at least one anchor to choose from")

    def allowed(self) -> str:
        return f"an anchor index 0..{self.num_anchors - 1}"

    def check(self, value) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < self.num_anchors:
            raise ArchitectureError(f"decision {self.name!r}: value {value!r} is not {self.allowed()}")
        return value

    def format(self, value: int) -> str:
        return str(value)

    def parse(self, token: str) -> int:
        try:
            return self.check(int(token))
        except (ValueError, ArchitectureError):
            raise ArchitectureError(f"decision {self.name!r}: {token!r} is not {self.allowed()}") from None

    def num_values(self) -> int:
        return self.num_anchors


@dataclass(frozen=True)
class AnchorSet:
    """Pick any subset of the first ``num_anchors`` anchor points (may be empty)."""

    name: str
    num_anchors: int

    def __post_init__(self):
        if self.num_anchors < 0:
            raise ValueError(f"decision {self.name!r}: num_anchors must be >= 0")

    def allowed(self) -> str:
        if self.num_anchors == 0:
            return "the empty set '-' (no earlier anchors)"
        return f"a set of distinct anchor indices in 0..{self.num_anchors - 1} joined by '+', or '-' for none"

    def check(self, value) -> tuple[int, ...]:
        try:
            items = tuple(sorted(value))
        except TypeError:
            raise ArchitectureError(f"decision {self.name!r}: value {value!r} is not {self.allowed()}") from None
        ok = all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < self.num_anchors for i in items)
        if not ok or len(set(items)) != len(items):
            raise ArchitectureError(f"decision {self.name!r}: value {value!r} is not {self.allowed()}")
        return items

    def format(self, value: tuple[int, ...]) -> str:
        return "+".join(str(i) for i in value) if value else "-"

    def parse(self, token: str) -> tuple[int, ...]:
        if token == "-":
            return ()
        try:
            return self.check([int(t) for t in token.split("+")])
        except (ValueError, ArchitectureError):
            raise ArchitectureError(f"decision {self.name!r}: {token!r} is not {self.allowed()}") from None

    def num_values(self) -> int:
        return 2 ** self.num_anchors


Decision = Choice | Anchor | AnchorSet


@dataclass(frozen=True)
class Step:
    """One step of the controller program.

    ``decision`` is the index of the decision emitted at this step, or ``None`` for a pure
    anchor point (ENAS micro adds one LSTM step after each node). ``anchor`` registers this
    step's output as an anchor point: ``"h"`` uses the LSTM output as the anchor's content,
    ``"zero"`` a zero vector (ENAS micro's two cell inputs), ``"void"`` a zero content *and* a
    zero attention key without running the LSTM at all (enas_lm's node 0; only with
    ``decision=None``). ``reset_anchors`` clears the anchor list before the step (ENAS micro
    starts the reduction cell afresh).
    """

    decision: int | None
    anchor: str | None = None
    reset_anchors: bool = False


def _space_named(name: str) -> "SearchSpace":
    """The registered space ``name`` with its default settings."""
    from ..registry import lookup
    return lookup("space", name, error=ArchitectureError)()


@dataclass(frozen=True)
class Architecture:
    """An immutable architecture: a space name and one value per decision."""

    space: str
    values: tuple
    # The space object that made this value, for formatting; not part of equality or hash.
    search_space: "SearchSpace | None" = field(default=None, compare=False, hash=False, repr=False)

    def __str__(self) -> str:
        space = self.search_space
        if space is None:
            space = _space_named(self.space)
        return space.format(self)

    def to_json(self) -> dict:
        return {"space": self.space, "values": [list(v) if isinstance(v, tuple) else v for v in self.values]}

    def dumps(self) -> str:
        return json.dumps(self.to_json())

    @staticmethod
    def from_json(obj: dict | str, space: "SearchSpace | None" = None) -> "Architecture":
        if isinstance(obj, str):
            obj = json.loads(obj)
        if space is None:
            space = _space_named(obj["space"])
        elif obj["space"] != space.name:
            raise ArchitectureError(f"architecture is for space {obj['space']!r}, not {space.name!r}")
        return space.make(obj["values"])

    @staticmethod
    def parse(text: str, space: "SearchSpace | None" = None) -> "Architecture":
        if space is None:
            space = _space_named(text.split(":", 1)[0].strip())
        return space.parse(text)


class SearchSpace:
    """Base class: an ordered list of decisions, a controller program and (per space) the
    networks an architecture denotes. Subclasses set ``name`` and ``decisions``."""

    name: str = ""
    decisions: tuple[Decision, ...] = ()
    task: str = "image-classification"      # what its networks are for (torchnas.tasks)

    # -- the controller program ---------------------------------------------------------
    @property
    def steps(self) -> tuple[Step, ...]:
        """The controller program: a space's own ``_steps``, else one step per decision."""
        explicit = getattr(self, "_steps", None)
        return explicit if explicit is not None else tuple(Step(i) for i in range(len(self.decisions)))

    def choice_kinds(self) -> dict[str, int]:
        """Each Choice kind and its number of options (the controller's softmax heads)."""
        kinds: dict[str, int] = {}
        for d in self.decisions:
            if isinstance(d, Choice):
                if kinds.setdefault(d.kind, len(d.options)) != len(d.options):
                    raise ValueError(f"Choice kind {d.kind!r} used with different option counts")
        return kinds

    # -- architectures --------------------------------------------------------------------
    def make(self, values: Sequence) -> Architecture:
        """Validate ``values`` and return the architecture; the error names the decision."""
        values = list(values)
        if len(values) != len(self.decisions):
            raise ArchitectureError(
                f"space {self.name!r} has {len(self.decisions)} decisions "
                f"({', '.join(d.name for d in self.decisions)}); got {len(values)} values")
        checked = tuple(d.check(v) for d, v in zip(self.decisions, values))
        return Architecture(self.name, checked, self)

    def format(self, arch: Architecture) -> str:
        self.check(arch)
        return self.name + ":" + ",".join(d.format(v) for d, v in zip(self.decisions, arch.values))

    def parse(self, text: str) -> Architecture:
        """``name:v1,v2,...``; a space that reads its authors' arc format (``parse_arc``) also
        takes that, with or without the ``name:`` prefix."""
        text = text.strip()
        name, sep, body = text.partition(":")
        has_arc = type(self).parse_arc is not SearchSpace.parse_arc
        if not sep:
            if not has_arc:
                raise ArchitectureError(
                    f"architecture string {text!r} has no space prefix: expected '{self.name}:v1,v2,...'")
            name, body = self.name, text
        name = name.strip()
        if name != self.name:
            raise ArchitectureError(f"architecture string is for space {name!r}, not {self.name!r}")
        if has_arc and "," not in body:
            return self.parse_arc(body)
        tokens = [t.strip() for t in body.split(",")] if body else []
        if len(tokens) != len(self.decisions):
            raise ArchitectureError(
                f"space {self.name!r} has {len(self.decisions)} decisions "
                f"({', '.join(d.name for d in self.decisions)}); the string has {len(tokens)} values")
        return Architecture(self.name, tuple(d.parse(t) for d, t in zip(self.decisions, tokens)), self)

    def parse_arc(self, body: str) -> Architecture:
        """The authors' arc string (spaces that have one override this)."""
        raise NotImplementedError

    def check(self, arch: Architecture) -> Architecture:
        if arch.space != self.name:
            raise ArchitectureError(f"architecture is for space {arch.space!r}, not {self.name!r}")
        self.make(arch.values)
        return arch

    def size(self) -> int:
        n = 1
        for d in self.decisions:
            n *= d.num_values()
        return n

    def random(self, rng: _random.Random) -> Architecture:
        """Uniform over each decision independently (random search, Li & Talwalkar 2019)."""
        values = []
        for d in self.decisions:
            if isinstance(d, AnchorSet):
                values.append(tuple(i for i in range(d.num_anchors) if rng.random() < 0.5))
            else:
                values.append(rng.randrange(d.num_values()))
        return self.make(values)

    def function_key(self, arch: Architecture) -> str:
        """A key that two architectures may share only if they compute the same function: no
        coarser than the encoding. By default the architecture's string; a space that knows its
        encodings' equivalences (NAS-Bench-201's ``unique_str``) merges them."""
        return str(self.check(arch))

    def random_distinct(self, rng: _random.Random) -> Architecture:
        """Uniform over the distinct functions (:meth:`function_key`), not the encodings; the same
        as :meth:`random` for a space whose every encoding is its own function."""
        return SearchSpace.random(self, rng)

    def mutate(self, arch: Architecture, rng: _random.Random) -> Architecture:
        """Change exactly one decision to a different value (Real et al. 2019, §2)."""
        mutable = [i for i, d in enumerate(self.decisions) if d.num_values() > 1]
        if not mutable:
            return arch
        i = rng.choice(mutable)
        d = self.decisions[i]
        values = list(arch.values)
        if isinstance(d, AnchorSet):  # flip one anchor in or out of the set
            j = rng.randrange(d.num_anchors)
            values[i] = tuple(sorted(set(values[i]) ^ {j}))
        else:
            values[i] = rng.choice([v for v in range(d.num_values()) if v != values[i]])
        return self.make(values)

    def graph(self, arch: Architecture, **options):
        """The diagram of ``arch`` (a :class:`torchnas.spaces.graph.Graph`, drawn by
        ``torchnas.viz.diagrams``); every space draws its own."""
        raise ValueError(f"space {self.name!r} has no diagram: define {type(self).__name__}.graph")

    def layer_counts(self, arch: Architecture) -> dict[str, int] | None:
        """The layers of ``arch``'s network by kind (``{"conv layers": 39, "pooling layers": 2}``),
        where the space counts them (``torchnas train --dry-run`` prints them); else None."""
        return None

    def network_notes(self, arch: Architecture, net: dict, params_with) -> list[str]:
        """Lines ``torchnas train --dry-run`` prints under the parameter count, where a network
        setting deserves one; ``params_with(**changes)`` counts the parameters with ``net``
        changed so (e.g. the count without an addition). None by default."""
        return []

    def ground_truth(self, arch: Architecture, data_dir=None) -> dict | None:
        """What a benchmark table of this space says of ``arch`` (NAS-Bench-201's does), or None
        for a space without one. Read only to report a finished search, never inside one."""
        return None

    def baselines(self, data_dir=None) -> dict | None:
        """The benchmark's verdict on the cells a reviewer tries first (the largest, a random
        one), computed from its table; None for a space without one. Reporting only."""
        return None

    def config(self) -> dict:
        """The keyword arguments that rebuild this space (for run configs)."""
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.decisions)} decisions, {self.size():.3g} architectures)"


def check_size_and_options(space: str, what: str, count, options, validate) -> tuple[int, tuple[str, ...]]:
    """Constructor checks shared by the ENAS spaces: ``count >= 1`` and a non-empty list of
    option names, each accepted by ``validate(name)`` (which raises a clear ValueError)."""
    if count < 1:
        raise ValueError(f"{space} needs {what} >= 1, got {count}")
    options = tuple(str(o) for o in options)
    if not options:
        raise ValueError(f"{space} needs at least one option, got none")
    for o in options:
        validate(o)
    return int(count), options


def iter_all(space: SearchSpace) -> Iterable[Architecture]:
    """Enumerate a (small) space in lexicographic order of decision values."""
    import itertools
    domains = []
    for d in space.decisions:
        if isinstance(d, AnchorSet):
            domains.append([tuple(i for i in range(d.num_anchors) if m >> i & 1) for m in range(2 ** d.num_anchors)])
        else:
            domains.append(range(d.num_values()))
    for values in itertools.product(*domains):
        yield Architecture(space.name, tuple(values), space)


__all__ = ["Architecture", "ArchitectureError", "Choice", "Anchor", "AnchorSet", "Step",
           "SearchSpace", "Decision", "iter_all", "check_size_and_options"]
