"""Theoretical receptive field (RF) and stride of every YAML row, traced from the model's own modules.

Every tensor is described, per spatial axis, by a `Span`: `size` (input pixels one output unit can see),
`jump` (input pixels between neighbouring output units, i.e. the stride) and `centre` (input-pixel index
of the centre of unit 0's field; unit n is centred at `centre + n * jump`). Rules per operation:

- convolution / pooling with kernel k, stride s, dilation d, padding p (k' = d(k - 1) + 1):
  size += (k' - 1) * jump, centre += ((k' - 1) / 2 - p) * jump, jump *= s
- nearest / bilinear upsampling by f: jump /= f (size and centre kept; exact for odd kernels after it)
- explicit padding (ZeroPad2d): centre -= left * jump; slicing `x[..., a::s]`: centre += a * jump, jump *= s
- concatenation, residual sums and other element-wise joins: the union of the inputs' fields (they must
  share the stride); 1x1 convolutions, norms, activations, permutes: unchanged.

- a module with `global_receptive_field = True` (self-attention over all positions, e.g. YOLO11's C2PSA
  attention): every output unit sees the whole input, an unbounded field ("global" in the table) from there on.

Composite blocks (Conv, C3, C2f, C3k2, SPPF, Focus, ConvNeXt, ...) are traced with torch.fx, so a new block
needs no rule as long as it is built from the operations above; an unknown spatial operation is an error naming
the layer. The detection head is found through the head contract (models/head_protocol.py), whatever its class.
"""
from __future__ import annotations

import copy
import math
import operator
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

from models.head_protocol import DetectionHead
from models.rows import row_input


@dataclass(frozen=True)
class Span:
    """Receptive field along one axis, in input pixels."""

    size: float = 1.0
    jump: float = 1.0
    centre: float = 0.0

    @property
    def lo(self) -> float:
        return self.centre - (self.size - 1) / 2

    @property
    def hi(self) -> float:
        return self.centre + (self.size - 1) / 2


RF = tuple[Span, Span]  # (height axis, width axis)


@dataclass(frozen=True)
class LayerRF:
    """One YAML row: its index, from, type and output field (None for the Detect row)."""

    i: int
    f: Any
    type: str
    rf: RF | None


@dataclass(frozen=True)
class RFReport:
    """Per-row fields and, per Detect level, (layer index, field) of the head's input."""

    layers: list[LayerRF]
    detect_inputs: list[tuple[int, RF]]

    def table(self) -> str:
        """Printable table: layer, from, type, RF (h x w), stride, then the Detect inputs."""
        lines = [f"{'layer':>5} {'from':>12} {'type':<28} {'RF (px)':>12} {'stride':>8}"]
        for row in self.layers:
            rf, st = (_fmt_pair(row.rf, "size"), _fmt_pair(row.rf, "jump")) if row.rf else ("-", "-")
            lines.append(f"{row.i:>5} {str(row.f):>12} {row.type.split('.')[-1]:<28} {rf:>12} {st:>8}")
        for level, (i, rf) in enumerate(self.detect_inputs):
            size = _fmt_pair(rf, "size")
            size = "global (self-attention upstream)" if "global" in size else f"{size} px"
            lines.append(f"Detect input P{level} (layer {i}): receptive field {size}, stride {_fmt_pair(rf, 'jump')}")
        return "\n".join(lines)


def _fmt_pair(rf: RF, attr: str) -> str:
    h, w = (("global" if math.isinf(v) else f"{v:g}") for v in (getattr(rf[0], attr), getattr(rf[1], attr)))
    return h if h == w else f"{h}x{w}"


class RFError(ValueError):
    """An operation whose effect on the receptive field is unknown."""


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, (int, float)) else (v[0], v[-1])


def _window(rf: RF, k: Any, s: Any, p: Any, d: Any = 1) -> RF:
    """A sliding window (conv or pool) applied to both axes."""
    out = []
    for span, kk, ss, pp, dd in zip(rf, _pair(k), _pair(s if s is not None else k), _pair(p), _pair(d)):
        ke = dd * (kk - 1) + 1
        out.append(Span(span.size + (ke - 1) * span.jump, span.jump * ss,
                        span.centre + ((ke - 1) / 2 - pp) * span.jump))
    return out[0], out[1]


def _conv_padding(m: nn.Conv2d) -> tuple[int, int]:
    if isinstance(m.padding, str):
        if m.padding == "valid":
            return 0, 0
        return tuple((d * (k - 1)) // 2 for k, d in zip(m.kernel_size, m.dilation))  # "same"
    return m.padding


def _upsample(rf: RF, factor: Any) -> RF:
    fh, fw = _pair(factor)
    return (Span(rf[0].size, rf[0].jump / fh, rf[0].centre), Span(rf[1].size, rf[1].jump / fw, rf[1].centre))


def _pad(rf: RF, padding: Any) -> RF:
    left, _, top, _ = (padding,) * 4 if isinstance(padding, int) else padding
    return (Span(rf[0].size, rf[0].jump, rf[0].centre - top * rf[0].jump),
            Span(rf[1].size, rf[1].jump, rf[1].centre - left * rf[1].jump))


def union(rfs: list[RF], where: str = "") -> RF:
    """The field seen by a unit that combines several inputs of the same stride."""
    if not rfs:
        raise RFError(f"{where}: nothing to combine")
    out = []
    for ax in range(2):
        spans = [rf[ax] for rf in rfs]
        if any(abs(s.jump - spans[0].jump) > 1e-9 for s in spans):
            raise RFError(f"{where}: inputs with different strides {[s.jump for s in spans]} are combined")
        if any(math.isinf(s.size) for s in spans):  # a global field: unbounded, units stay where they were
            out.append(Span(math.inf, spans[0].jump, spans[0].centre))
            continue
        lo, hi = min(s.lo for s in spans), max(s.hi for s in spans)
        out.append(Span(hi - lo + 1, spans[0].jump, (lo + hi) / 2))
    return out[0], out[1]


_POINTWISE_MODULES = (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, nn.Linear, nn.Identity, nn.Dropout,
                      nn.Dropout2d, nn.Flatten, nn.Softmax)
_WINDOW_MODULES = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
_PAD_MODULES = (nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d)
_POINTWISE_FUNCS = {operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, torch.add, torch.sub,
                    torch.mul, torch.div, torch.sigmoid, torch.tanh, torch.relu, F.relu, F.silu, F.gelu, F.sigmoid,
                    F.leaky_relu, F.hardswish, F.mish, F.layer_norm, F.batch_norm, F.dropout, torch.where}
_POINTWISE_METHODS = {"permute", "contiguous", "sigmoid", "relu", "mul", "add", "sub", "div", "clone", "float",
                      "half", "to", "type_as", "tanh", "exp", "__mul__", "__add__", "neg", "abs", "clamp"}


def _is_leaf_module(m: nn.Module) -> bool:
    return isinstance(m, _POINTWISE_MODULES + _WINDOW_MODULES + _PAD_MODULES + (nn.Upsample,)) or \
        m.__class__.__module__ == "torch.nn.modules.activation"


def _apply_leaf(m: nn.Module, rf: RF, where: str) -> RF:
    if isinstance(m, nn.Conv2d):
        return _window(rf, m.kernel_size, m.stride, _conv_padding(m), m.dilation)
    if isinstance(m, nn.MaxPool2d):
        return _window(rf, m.kernel_size, m.stride, m.padding, m.dilation)
    if isinstance(m, nn.AvgPool2d):
        return _window(rf, m.kernel_size, m.stride, m.padding)
    if isinstance(m, nn.Upsample):
        if m.scale_factor is None:
            raise RFError(f"{where}: Upsample with a fixed output size has no fixed stride; use scale_factor")
        return _upsample(rf, m.scale_factor)
    if isinstance(m, _PAD_MODULES):
        return _pad(rf, m.padding)
    return rf  # pointwise


class _Tracer(torch.fx.Tracer):
    """torch.fx's tracer, keeping modules with a global field as single calls (their insides need no rules)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return getattr(m, "global_receptive_field", False) or super().is_leaf_module(m, qualname)


def apply_module(m: nn.Module, x: Any, where: str = "") -> Any:
    """Field of `m`'s output given its input's (an RF, or a list of RFs for rows taking several inputs)."""
    if _is_leaf_module(m):
        return _apply_leaf(m, x, f"{where} {m.__class__.__name__}")
    if getattr(m, "global_receptive_field", False):
        return tuple(Span(math.inf, s.jump, s.centre) for s in x) if _is_rf(x) else x
    try:
        gm = torch.fx.GraphModule(m, _Tracer().trace(m))
    except Exception as e:  # data-dependent control flow and the like
        raise RFError(f"{where}: cannot trace {m.__class__.__name__} to find its receptive field: {e}") from None
    return _interpret(gm, x, where)


def _tensors(values: Any) -> list[RF]:
    """All RF values inside (possibly nested) args."""
    if _is_rf(values):
        return [values]
    if isinstance(values, (list, tuple)):
        return [r for v in values for r in _tensors(v)]
    if isinstance(values, dict):
        return [r for v in values.values() for r in _tensors(v)]
    return []


def _is_rf(v: Any) -> bool:
    return isinstance(v, tuple) and len(v) == 2 and all(isinstance(s, Span) for s in v)


def _interpret(gm: torch.fx.GraphModule, x: Any, where: str) -> Any:
    env: dict[str, Any] = {}
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        args = torch.fx.node.map_arg(node.args, lambda n: env[n.name])
        kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: env[n.name])
        label = f"{where} ({node.format_node()})"
        if node.op == "placeholder":
            env[node.name] = x
        elif node.op == "get_attr":
            env[node.name] = None  # a parameter: no spatial extent
        elif node.op == "call_module":
            env[node.name] = apply_module(modules[node.target], args[0], f"{where}.{node.target}")
        elif node.op == "call_function":
            env[node.name] = _apply_function(node.target, args, kwargs, label)
        elif node.op == "call_method":
            env[node.name] = _apply_method(node.target, args, label)
        elif node.op == "output":
            return args[0]
    raise RFError(f"{where}: traced graph has no output")


def _apply_function(fn: Callable, args: tuple, kwargs: dict, where: str) -> Any:
    if fn is operator.getitem:
        return _getitem(args[0], args[1], where)
    if fn in (torch.cat, torch.stack):
        return union(_tensors(args[0]), where)
    if fn is F.interpolate:
        factor = kwargs.get("scale_factor", args[2] if len(args) > 2 else None)
        if factor is None:
            raise RFError(f"{where}: interpolate to a fixed size has no fixed stride")
        return _upsample(args[0], factor)
    if fn in (F.max_pool2d, F.avg_pool2d):
        names = ("input", "kernel_size", "stride", "padding")
        a = dict(zip(names, args)) | kwargs
        return _window(a["input"], a["kernel_size"], a.get("stride") or a["kernel_size"], a.get("padding", 0))
    if fn in _POINTWISE_FUNCS or getattr(fn, "__name__", "") in {"drop_path"}:
        rfs = _tensors((args, kwargs))
        return union(rfs, where) if rfs else None
    if fn is getattr:
        return None  # e.g. `self.weight.shape`
    raise RFError(f"{where}: unknown operation {getattr(fn, '__name__', fn)}: its effect on the receptive "
                  "field is not known")


def _apply_method(name: str, args: tuple, where: str) -> Any:
    if name in ("chunk", "split", "unbind"):
        return _Repeat(args[0])
    if name in _POINTWISE_METHODS:
        rfs = _tensors(args)
        return union(rfs, where) if rfs else None
    if name in ("size", "dim"):
        return None
    raise RFError(f"{where}: unknown tensor method .{name}(): its effect on the receptive field is not known")


@dataclass(frozen=True)
class _Repeat:
    """The parts of a channel split: each has the field of the whole."""

    rf: RF

    def __getitem__(self, _: Any) -> RF:
        return self.rf


def _getitem(base: Any, index: Any, where: str) -> Any:
    if isinstance(base, (list, _Repeat)) or (isinstance(base, tuple) and not _is_rf(base)):
        return base[index]
    if not _is_rf(base):
        return None
    index = index if isinstance(index, tuple) else (index,)
    if Ellipsis in index:
        spatial = list(index[index.index(Ellipsis) + 1:])
    else:
        spatial = list(index[2:4])
    spatial = [slice(None)] * (2 - len(spatial)) + spatial[-2:]
    out = []
    for span, sl in zip(base, spatial):
        if not isinstance(sl, slice):
            raise RFError(f"{where}: indexing a spatial axis with {sl!r} is not supported")
        start, step = sl.start or 0, sl.step or 1
        if start < 0 or step < 1:
            raise RFError(f"{where}: slice {sl} of a spatial axis is not supported")
        out.append(Span(span.size, span.jump * step, span.centre + start * span.jump))
    return out[0], out[1]


def receptive_fields(model: nn.Module) -> RFReport:
    """The field of every row of a `Model` (or of the Sequential `parse_model` builds), from its YAML graph."""
    rows = copy.deepcopy(getattr(model, "model", model)).eval()
    x: Any = (Span(), Span())
    outs: list[Any] = []
    layers, detect_inputs = [], []
    for m in rows:
        where = f"layer {m.i} ({m.type})"
        x = row_input(m, x, outs)
        if isinstance(m, DetectionHead):
            froms = m.f if isinstance(m.f, list) else [m.f]
            detect_inputs = [(j % len(outs) if j != -1 else m.i - 1, rf) for j, rf in zip(froms, x)]
            x = None
        else:
            x = apply_module(m, x, where)
        outs.append(x)
        layers.append(LayerRF(m.i, m.f, m.type, x))
    return RFReport(layers, detect_inputs)
