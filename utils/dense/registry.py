"""The part registry: a YAML names a prior generator, box coder, assigner, sampler or loss by its mmdetection
class name with its parameters, as a mapping such as ``{type: ATSSAssigner, topk: 9}``.

``build_part(kind, spec, where)`` builds it. `where` names the spec for error messages, a file and key path
such as ``"models/retinanet-r18.yaml: head_cfg.assigner"``; an unknown type, an unknown or missing
parameter and a value of the wrong type or out of range raise a PartKeyError / PartValueError naming
``where.<key>`` and the known names or parameters. A registered part is a class whose ``__init__`` takes
keyword parameters with type hints (the hints are what values are checked against).

Register your own with ``@register_part("assigner")`` on the class.
"""
from __future__ import annotations

import difflib
import inspect
import types
import typing
from typing import Any, Callable, Mapping

from utils.cli import UserKeyError, UserValueError
from utils.dense.atss_assigner import ATSSAssigner
from utils.dense.coders import DeltaXYWHBBoxCoder, DistancePointBBoxCoder
from utils.dense.losses import (CrossEntropyLoss, DistributionFocalLoss, FocalLoss, GIoULoss, IoULoss, L1Loss,
                                QualityFocalLoss, SmoothL1Loss)
from utils.dense.max_iou_assigner import MaxIoUAssigner
from utils.dense.priors import AnchorGenerator, MlvlPointGenerator
from utils.dense.samplers import PseudoSampler
from utils.dense.simota_assigner import SimOTAAssigner

KINDS = ("prior_generator", "bbox_coder", "assigner", "sampler", "loss")


class PartKeyError(UserKeyError):
    """An unknown part type or parameter, or a missing one."""


class PartValueError(UserValueError):
    """A part parameter of the wrong type or out of range."""


class PartRegistry:
    """kind -> name -> class. Duplicate names are refused."""

    def __init__(self):
        self._parts: dict[str, dict[str, type]] = {k: {} for k in KINDS}

    def add(self, kind: str, cls: type, name: str | None = None) -> None:
        table = self._table(kind)
        name = name or cls.__name__
        if name in table:
            raise KeyError(f"{kind} '{name}' is already registered (by {table[name]!r})")
        table[name] = cls

    def names(self, kind: str) -> list[str]:
        return sorted(self._table(kind))

    def get(self, kind: str, name: str, where: str) -> type:
        table = self._table(kind)
        if name not in table:
            close = difflib.get_close_matches(str(name), table, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise PartKeyError(f"{where}.type: unknown {kind} '{name}'{hint} (known: {', '.join(sorted(table))})")
        return table[name]

    def _table(self, kind: str) -> dict[str, type]:
        if kind not in self._parts:
            raise KeyError(f"unknown part kind '{kind}'; kinds: {', '.join(KINDS)}")
        return self._parts[kind]


def _builtin() -> PartRegistry:
    reg = PartRegistry()
    for kind, classes in (("prior_generator", (AnchorGenerator, MlvlPointGenerator)),
                          ("bbox_coder", (DeltaXYWHBBoxCoder, DistancePointBBoxCoder)),
                          ("assigner", (MaxIoUAssigner, ATSSAssigner, SimOTAAssigner)),
                          ("sampler", (PseudoSampler,)),
                          ("loss", (FocalLoss, QualityFocalLoss, DistributionFocalLoss, IoULoss, GIoULoss, L1Loss,
                                    SmoothL1Loss, CrossEntropyLoss))):
        for cls in classes:
            reg.add(kind, cls)
    return reg


PARTS = _builtin()


def register_part(kind: str, name: str | None = None) -> Callable[[type], type]:
    """Class decorator: make a part selectable in a YAML spec under `name` (default: the class name)."""

    def wrap(cls: type) -> type:
        PARTS.add(kind, cls, name)
        return cls

    return wrap


def parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword parameters a part's constructor takes."""
    if cls.__init__ is object.__init__:
        return {}
    params = inspect.signature(cls.__init__).parameters
    return {k: p for k, p in params.items() if k != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def build_part(kind: str, spec: Mapping[str, Any], where: str, registry: PartRegistry = PARTS) -> Any:
    """The part `spec` names ({type: Name, param: value, ...}), with its parameters checked."""
    if not isinstance(spec, Mapping):
        raise PartValueError(f"{where}: a {kind} is a mapping such as {{type: {registry.names(kind)[0]}, ...}}, "
                             f"got {spec!r}")
    if "type" not in spec:
        raise PartKeyError(f"{where}: the {kind} mapping has no 'type'; known: {', '.join(registry.names(kind))}")
    cls = registry.get(kind, spec["type"], where)
    known = parameters(cls)
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    for key, value in kwargs.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            listed = ", ".join(known) if known else "none"
            raise PartKeyError(f"{where}.{key}: unknown parameter of {spec['type']}{hint} (parameters: {listed})")
        _check_type(cls, key, value, f"{where}.{key}")
    missing = [k for k, p in known.items() if p.default is inspect.Parameter.empty and k not in kwargs]
    if missing:
        raise PartKeyError(f"{where}: {spec['type']} needs {', '.join(missing)} (parameters: {', '.join(known)})")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise PartValueError(f"{where}: bad {spec['type']} parameters: {e}") from None


def _check_type(cls: type, key: str, value: Any, where: str) -> None:
    try:
        hint = typing.get_type_hints(cls.__init__).get(key)
    except Exception:  # an unresolvable annotation: leave the check to the constructor
        return
    if hint is not None and not _matches(value, hint):
        raise PartValueError(f"{where}: expected {_describe(hint)}, got {value!r}{number_text_hint(value)}")


def number_text_hint(value: Any) -> str:
    """A hint for numbers that YAML read as text (PyYAML takes 1e-16 without a dot for a string)."""
    texts = value if isinstance(value, (list, tuple)) else [value]
    for v in texts:
        if isinstance(v, str):
            try:
                float(v)
            except ValueError:
                continue
            mant, _, exp = v.lower().partition("e")
            fixed = f"{float(mant):.1f}e{'' if exp.startswith(('-', '+')) else '+'}{exp}" if exp else v
            return f" (YAML reads {v} as text; write {fixed}, with a dot and a signed exponent)"
    return ""


def _matches(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a simple type hint (float accepts int; bool is not a number)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, typing.Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = typing.get_args(hint)
        return not args or all(_matches(v, args[0]) for v in value)
    return True


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", str(hint)).replace("NoneType", "null") if typing.get_origin(hint) is None \
        else str(hint).replace("typing.", "")
