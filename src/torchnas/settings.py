"""Typed settings: each section of a config is checked against the signature of what it configures.

A strategy, evaluator, space, training loop or data loader declares its settings once, as typed
keyword arguments (ranges as ``Annotated`` constraints: :data:`Positive`, :data:`Count`, ...).
:func:`checked` turns that signature into a pydantic model and validates a config section
against it before anything is built or written: numbers are coerced (``"1e6"`` is a float),
NaN and infinity are refused, unknown keys are refused, and the one error reported names the
key, the value and what is allowed::

    checked("evaluator", ChildTrainer, {"epochs": "abc"})
    # SettingsError: evaluator.epochs = 'abc': input should be a valid integer (int)
"""
from __future__ import annotations

import functools
import inspect
import types
import typing
from typing import Annotated, Any

from annotated_types import Ge, Gt, Interval

Positive = Annotated[float, Gt(0)]           # a learning rate, a temperature
NonNegative = Annotated[float, Ge(0)]        # a decay, a weight, a momentum
Fraction = Annotated[float, Interval(ge=0, le=1)]
Count = Annotated[int, Ge(1)]                # epochs, a batch size, a number of layers
NonNegativeInt = Annotated[int, Ge(0)]


class SettingsError(ValueError):
    """A config setting is unknown, of the wrong type or out of range; the message names it."""


@functools.lru_cache(maxsize=None)
def _model(fn, fixed: tuple[str, ...]):
    """The pydantic model of ``fn``'s keyword settings (``fixed``: the arguments the code passes
    itself), its field names and whether it also takes ``**kwargs``."""
    from pydantic import ConfigDict, Field, create_model
    target = fn.__init__ if inspect.isclass(fn) else fn
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:                                   # noqa: BLE001 (an annotation that does not resolve)
        hints = {}
    fields, open_ = {}, False
    for i, (name, p) in enumerate(inspect.signature(fn).parameters.items()):
        if p.kind is p.VAR_KEYWORD:
            open_ = True
            continue
        if p.kind is p.VAR_POSITIONAL or name in fixed or (i == 0 and name == "self"):
            continue
        default = ... if p.default is p.empty else p.default
        fields["f_" + name] = (hints.get(name, Any), Field(default, alias=name))
    config = ConfigDict(extra="allow" if open_ else "forbid", allow_inf_nan=False, arbitrary_types_allowed=True,
                        populate_by_name=False, protected_namespaces=())
    model = create_model(f"{getattr(fn, '__name__', 'settings')}Settings", __config__=config, **fields)
    return model, sorted(f[2:] for f in fields)


def allowed(fn, fixed=()) -> list[str]:
    """The setting names ``fn`` takes (``fixed`` ones left out)."""
    return _model(fn, tuple(sorted(fixed)))[1]


def checked(where: str, fn, settings: dict | None, fixed=(), required: bool = True, owner: str | None = None) -> dict:
    """``settings`` validated against ``fn``'s keyword arguments and returned coerced (only the
    keys given). ``where``: the section's name in the config (``evaluator``, ``strategy``, ...);
    ``required=False`` lets a setting without a default be missing (the code supplies it);
    ``owner`` names what takes them in the message (``strategy 'reinforce'``)."""
    from pydantic import ValidationError
    if settings is not None and not isinstance(settings, dict):
        raise SettingsError(f"{where} = {settings!r}: must be a section (key: value settings)")
    settings = dict(settings or {})
    if not all(isinstance(k, str) for k in settings):
        raise SettingsError(f"{where}: setting names must be words, got {sorted(map(repr, settings))}")
    model, names = _model(fn, tuple(sorted(fixed)))
    for key, value in settings.items():                 # YAML's yes/no/on/off are not numbers
        field = model.model_fields.get("f_" + key)
        if isinstance(value, bool) and field is not None and _numeric_only(field.annotation):
            raise SettingsError(f"{where}.{key} = {value!r}: expected a number ({_type_name(field.annotation)}), "
                                f"not true/false")
    try:
        m = model.model_validate(settings)
    except ValidationError as e:
        errors = [err for err in e.errors() if required or err["type"] != "missing"]
        if errors:
            raise SettingsError(_message(where, owner or where, model, names, errors)) from None
        m = model.model_construct(**settings)
    return {k: (getattr(m, "f_" + k) if "f_" + k in model.model_fields else v) for k, v in settings.items()}


def _message(where: str, owner: str, model, names: list[str], errors: list[dict]) -> str:
    """One line for the first bad setting: its key, its value and what is allowed."""
    err = errors[0]
    key = str(err["loc"][0]) if err["loc"] else "?"
    if err["type"] == "extra_forbidden":
        return f"{where}.{key} is not a setting of {owner}; it takes: {', '.join(names) or 'none'}"
    if err["type"] == "missing":
        return f"{where}.{key} is required and missing"
    field = model.model_fields.get("f_" + key)
    expected = _type_name(field.annotation) if field is not None else "?"
    same_key = [x for x in errors if x["loc"] and str(x["loc"][0]) == key]
    if len(same_key) > 1:                              # a union: each member failed
        return f"{where}.{key} = {err['input']!r}: expected {expected}"
    msg = err["msg"][0].lower() + err["msg"][1:]
    return f"{where}.{key} = {err['input']!r}: {msg} ({expected})"


def _numeric_only(annotation) -> bool:
    """Whether a setting takes numbers (and perhaps None) but not a bool."""
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    args = [typing.get_args(a)[0] if typing.get_origin(a) is Annotated else a for a in args]
    return bool(args) and all(a in (int, float, type(None)) for a in args) and any(a in (int, float) for a in args)


def _type_name(annotation) -> str:
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")
