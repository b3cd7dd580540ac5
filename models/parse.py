"""parse_model: YAML rows `[from, number, module, args]` -> nn.Sequential plus the save list.

No string from a YAML is ever evaluated: module names are looked up in the registry, names in args
(`nc`, `anchors`, any other top-level key) are taken from the YAML's own keys, other strings go
through `ast.literal_eval` (`None`, `True`, numbers) or stay strings (`'nearest'`). One name is derived:
`yolo_filters` = anchors per level x (nc + 5), the channels of a detection level's output conv (Darknet
layouts use it, so a new `nc` resizes those convs).
"""
from __future__ import annotations

import ast
import functools
import inspect
import logging
from typing import Any

import torch.nn as nn

import models.backbones  # noqa: F401
import models.common  # noqa: F401  (registers the building blocks)
import models.convnext  # noqa: F401
import models.darknet_layers  # noqa: F401
import models.blocks_v8  # noqa: F401
import models.detect  # noqa: F401
import models.dense_heads  # noqa: F401  (the mmdetection-family heads)
import models.fpn  # noqa: F401
from models.registry import MODULES, Row
from models.scales import resolve_scale
from utils.cli import UserValueError

LOGGER = logging.getLogger("yolo")

ACTIVATIONS = {name: getattr(nn, name) for name in (
    "SiLU", "ReLU", "ReLU6", "LeakyReLU", "Hardswish", "Mish", "GELU", "ELU", "SELU", "CELU", "Sigmoid", "Tanh",
    "Identity", "PReLU", "Hardtanh", "Softplus")}


class ModelConfigError(UserValueError):
    """A model YAML that cannot be built; the message names the file, the row and what is wrong."""


def parse_activation(spec: Any, source: str = "<yaml>"):
    """`nn.LeakyReLU(0.1)` (or `LeakyReLU`, `{'name': ..., 'args': [...]}`) -> a factory of fresh modules."""
    if spec is None:
        return True
    if isinstance(spec, dict):
        name, args, kwargs = spec.get("name"), spec.get("args", []), spec.get("kwargs", {})
    elif isinstance(spec, str):
        try:
            node = ast.parse(spec.strip(), mode="eval").body
        except SyntaxError as e:
            raise ModelConfigError(f"{source}: activation {spec!r} is not a call like nn.LeakyReLU(0.1)") from e
        if not isinstance(node, ast.Call):
            node = ast.Call(func=node, args=[], keywords=[])
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        except ValueError as e:
            raise ModelConfigError(f"{source}: activation {spec!r}: arguments must be literals") from e
    else:
        raise ModelConfigError(f"{source}: activation must be a string like 'nn.SiLU()', got {spec!r}")
    if name not in ACTIVATIONS:
        raise ModelConfigError(f"{source}: unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    factory = functools.partial(ACTIVATIONS[name], *args, **kwargs)
    factory()  # fail now, with the file named, if the arguments do not fit
    return factory


def resolve_arg(a: Any, names: dict) -> Any:
    """A YAML arg: a top-level YAML key (nc, anchors, ...) -> its value; a literal string -> the literal."""
    if not isinstance(a, str):
        return a
    if a in names:
        return names[a]
    try:
        return ast.literal_eval(a)
    except (ValueError, SyntaxError):
        return a


def _resolve_from(f: Any, i: int, where: str) -> int | list[int]:
    """Check a `from` field: -1, an earlier absolute index, or a list of those."""
    items = f if isinstance(f, list) else [f]
    if not items or not all(isinstance(x, int) and not isinstance(x, bool) for x in items):
        raise ModelConfigError(f"{where}: `from` must be an int or a list of ints, got {f!r}")
    for x in items:
        if not (x == -1 or -i <= x < i):
            allowed = "-1 (the input)" if i == 0 else f"-1..-{i} or 0..{i - 1}"
            raise ModelConfigError(f"{where}: `from` index {x} does not name an earlier layer "
                                   f"(layer {i} can take {allowed})")
    return f


def _rows(d: dict, source: str) -> list[tuple[str, int, list]]:
    rows = []
    for section in ("backbone", "head"):
        if section not in d or not isinstance(d[section], list):
            raise ModelConfigError(f"{source}: missing or invalid `{section}:` list of [from, number, module, args] rows")
        rows += [(section, j, row) for j, row in enumerate(d[section])]
    return rows


def parse_model(d: dict, ch: list[int] | int = 3, source: str | None = None, verbose: bool = False):
    """Build the layers of a model dict; returns (nn.Sequential, sorted list of layer indices to keep)."""
    source = source or d.get("yaml_file", "<model dict>")
    ch = [ch] if isinstance(ch, int) else list(ch)
    try:
        gd, gw, max_channels, scale = resolve_scale(d, source)
    except ValueError as e:
        raise ModelConfigError(str(e)) from None
    act = parse_activation(d.get("activation"), source)
    anchors, nc = d.get("anchors"), d.get("nc")
    na = (len(anchors[0]) // 2) if isinstance(anchors, list) else (anchors or 0)
    no = na * (nc + 5) if isinstance(nc, int) else -1
    names = {"yolo_filters": no, **{k: v for k, v in d.items() if k not in ("backbone", "head")}}
    if verbose:
        LOGGER.info(f"\n{'':>3}{'from':>18}{'n':>3}{'params':>10}  {'module':<40}{'arguments':<30}")
    layers, save = [], []
    ctx = {"max_channels": max_channels, "model_scale": scale, "no": no}
    rows = _rows(d, source)
    for i, (section, j, row) in enumerate(rows):
        where = f"{source}: layer {i} ({section} row {j}) {row!r}"
        earlier = tuple(r[2] for _, _, r in rows[:i] if isinstance(r, list) and len(r) == 4)
        m, n_params = _build_row(row, i, where, ch, gd, gw, act, names, dict(ctx, earlier=earlier))
        if getattr(m, "has_anchors", None) is False and "anchors" in d:
            raise ModelConfigError(f"{where}: this head is anchor-free ([nc] alone) but the YAML has an `anchors:` key; "
                                   f"remove `anchors:` or write [nc, anchors] for the anchor-based head")
        save.extend(x % i for x in ([m.f] if isinstance(m.f, int) else m.f) if x != -1)
        layers.append(m)
        if i == 0:
            ch = []
        ch.append(m.c_out)
        if verbose:
            LOGGER.info(f"{i:>3}{str(m.f):>18}{m.n:>3}{n_params:10.0f}  {m.type:<40}{str(m.args):<30}")
    return nn.Sequential(*layers), sorted(set(save))


def _build_row(row, i, where, ch, gd, gw, act, names, ctx):
    if not isinstance(row, list) or len(row) != 4:
        raise ModelConfigError(f"{where}: a row must be [from, number, module, args]")
    f, n, name, args = row
    f = _resolve_from(f, i, where)
    if not isinstance(name, str):
        raise ModelConfigError(f"{where}: module must be a name, got {name!r}")
    try:
        entry = MODULES.get(name)
    except KeyError as e:
        raise ModelConfigError(f"{where}: {e.args[0]}") from None
    if not isinstance(n, int) or n < 1:
        raise ModelConfigError(f"{where}: number must be a positive int, got {n!r}")
    if not isinstance(args, list):
        raise ModelConfigError(f"{where}: args must be a list, got {args!r}")
    n = max(round(n * gd), 1) if n > 1 else n
    c_in = [ch[x] for x in (f if isinstance(f, list) else [f])]
    listed = [x % i for x, c in zip(f if isinstance(f, list) else [f], c_in) if isinstance(c, list)]
    if listed and not entry.takes_list:
        raise ModelConfigError(f"{where}: layer {listed[0]} outputs a list of feature maps; "
                               f"take one of them with a [{listed[0]}, 1, Select, [index]] row first")
    try:
        layout = entry.layout(Row(c_in, [resolve_arg(a, names) for a in args], n, gw, act, **ctx))
    except (ValueError, IndexError, TypeError) as e:
        raise ModelConfigError(f"{where}: {e}") from None
    kwargs = dict(layout.kwargs)
    cls = layout.cls or entry.cls
    if cls is not entry.cls:
        entry = type(entry)(entry.name, cls, entry.layout, "act" in inspect.signature(cls.__init__).parameters,
                            entry.takes_list)
    if entry.takes_act:
        kwargs.setdefault("act", act)
    try:
        inspect.signature(entry.cls).bind(*layout.args, **kwargs)
    except TypeError as e:
        params = list(inspect.signature(entry.cls).parameters)
        raise ModelConfigError(f"{where}: {name}{tuple(params)} cannot take args {layout.args}: {e}") from None
    try:
        blocks = [entry.cls(*layout.args, **kwargs) for _ in range(layout.copies)]
    except Exception as e:  # a constructor's own check, e.g. a channel mismatch
        raise ModelConfigError(f"{where}: {name}{tuple(layout.args)} failed: {e}") from e
    m = blocks[0] if len(blocks) == 1 else nn.Sequential(*blocks)
    n_params = sum(p.numel() for p in m.parameters())
    m.i, m.f, m.type, m.n, m.args, m.c_out, m.np = i, f, _type_name(entry.cls), n, layout.args, layout.c_out, n_params
    return m, n_params


def _type_name(cls: type) -> str:
    mod = cls.__module__
    return f"{mod}.{cls.__name__}" if not mod.startswith("torch.nn") else f"nn.{cls.__name__}"

