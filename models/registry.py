"""The module registry: how a YAML row's module name becomes a class, and its args a constructor call.

A registered module states its YAML contract: a *layout* function that receives a `Row` (the input
channels, the row's resolved args, the repeat count, the width multiple, the model's activation)
and returns a `Layout` (constructor args and kwargs, output channels, copies to chain).
Presets cover the usual cases:

- ``"conv"``: args[0] is the output channels (scaled by width_multiple), input channels are prepended:
  ``[c2, *rest] -> Cls(c1, c2, *rest)``; repeats chain ``n`` copies.
- ``"csp"``: like "conv", and the repeat count goes inside the block (``Cls(c1, c2, n, *rest)``).
- ``"same"``: args passed as they are; output channels equal the input's (pools, upsampling, padding).
- ``"concat"``: output channels are the sum of the inputs'.
- ``"norm"``: ``Cls(c1)`` (BatchNorm2d and the like).

A block whose ``__init__`` takes an ``act`` argument receives the model's activation.

Register your own block with one decorator::

    @register(layout="conv")
    class MyBlock(nn.Module):
        def __init__(self, c1, c2, k=3, act=True): ...

and use it in a YAML row: ``[-1, 1, MyBlock, [128, 3]]``.
"""
from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Union

import torch.nn as nn

from utils.cli import UserKeyError


def make_divisible(x: float, divisor: int = 8) -> int:
    """Smallest multiple of divisor >= x (YOLOv5 rounds scaled channel counts up to multiples of 8)."""
    return int(-(-x // divisor) * divisor)


@dataclass(frozen=True)
class Row:
    """What a layout function knows about the row it builds."""

    c_in: list  # channels of each input named in `from` (a list of ints for a row that outputs several maps)
    args: list  # the row's args, names and literals already resolved
    n: int  # repeats after depth_multiple
    width: float  # width_multiple
    act: Any  # the model's activation (see models.common.make_act)
    max_channels: int = 1 << 30
    no: int = -1  # outputs per anchor of the model's Detect (a conv producing exactly that is not scaled)
    model_scale: str | None = None  # the scale letter picked from a `scales:` YAML (see models/scales.py)
    earlier: tuple = ()  # module names of the rows before this one (YOLOv8's Detect picks its class branch by them)

    def scale(self, c: int) -> int:
        """Scale a channel count by width_multiple the YOLOv5 way."""
        return c if c == self.no else make_divisible(min(c, self.max_channels) * self.width, 8)


@dataclass
class Layout:
    """How to build a row: constructor args/kwargs, output channels, copies chained in a Sequential."""

    args: list
    c_out: Union[int, list[int]]  # a list for a row that outputs a list of feature maps (see models/backbones.py)
    kwargs: dict = field(default_factory=dict)
    copies: int = 1
    cls: type | None = None  # the class to build when the layout picks one (Detect: anchor-based or anchor-free)


LayoutFn = Callable[[Row], Layout]


def conv_layout(row: Row) -> Layout:
    c2 = row.scale(row.args[0])
    return Layout([row.c_in[0], c2, *row.args[1:]], c2, copies=row.n)


def csp_layout(row: Row) -> Layout:
    c2 = row.scale(row.args[0])
    return Layout([row.c_in[0], c2, row.n, *row.args[1:]], c2)


def same_layout(row: Row) -> Layout:
    return Layout(list(row.args), row.c_in[0], copies=row.n)


def concat_layout(row: Row) -> Layout:
    return Layout(list(row.args), sum(row.c_in))


def norm_layout(row: Row) -> Layout:
    return Layout([row.c_in[0]], row.c_in[0])


PRESETS: dict[str, LayoutFn] = {"conv": conv_layout, "csp": csp_layout, "same": same_layout,
                                "concat": concat_layout, "norm": norm_layout}


@dataclass(frozen=True)
class Entry:
    name: str
    cls: type
    layout: LayoutFn
    takes_act: bool
    takes_list: bool = False  # may take a list of feature maps as its input (e.g. Select)


class Registry:
    """Name -> module class with its YAML layout. Duplicate names are refused."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, cls: type, layout: Union[str, LayoutFn] = "conv", takes_list: bool = False) -> None:
        if name in self._entries:
            raise KeyError(f"{self.kind} '{name}' is already registered (by {self._entries[name].cls!r})")
        if isinstance(layout, str):
            if layout not in PRESETS:
                raise ValueError(f"unknown layout preset '{layout}'; choose one of {sorted(PRESETS)} or pass a function")
            layout = PRESETS[layout]
        takes_act = "act" in inspect.signature(cls.__init__).parameters
        self._entries[name] = Entry(name, cls, layout, takes_act, takes_list)

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UserKeyError(f"unknown {self.kind} '{name}'{hint} (register it with @register)")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries


MODULES = Registry("module")


def register(name: str | None = None, *, layout: Union[str, LayoutFn] = "conv",
             takes_list: bool = False) -> Callable[[type], type]:
    """Class decorator: make a module usable in YAML rows under `name` (default: the class name).

    `takes_list=True` lets the row take the output of a row that returns a list of feature maps.
    """

    def wrap(cls: type) -> type:
        MODULES.add(name or cls.__name__, cls, layout, takes_list)
        return cls

    return wrap


def register_torch_modules() -> None:
    """The torch.nn modules that YOLOv5 YAML files name as `nn.X`."""
    for name, cls, layout in (("nn.Upsample", nn.Upsample, "same"), ("nn.MaxPool2d", nn.MaxPool2d, "same"),
                              ("nn.AvgPool2d", nn.AvgPool2d, "same"), ("nn.ZeroPad2d", nn.ZeroPad2d, "same"),
                              ("nn.Identity", nn.Identity, "same"), ("nn.Dropout", nn.Dropout, "same"),
                              ("nn.BatchNorm2d", nn.BatchNorm2d, "norm")):
        if name not in MODULES:
            MODULES.add(name, cls, layout)
