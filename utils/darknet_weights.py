"""Darknet .weights files: read into a model built from its cfg, and write back byte for byte.

Layout: a header of int32 major, minor, revision, then `seen` (uint64 when major*10+minor >= 2 and both
are below 1000, else uint32); then, per [convolutional] in cfg order, float32 biases, and when batch-
normalized the BN scales, rolling means and rolling variances, then the kernel (out, in/groups, k, k).
Every float is accounted for: a file that is short or has floats left over is refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from models.darknet_layers import DarknetConv
from utils.cli import UserFileNotFoundError, UserValueError


class DarknetWeightsError(UserValueError):
    """A .weights file that does not fit its model; the message names the file, layer and counts."""


@dataclass
class Header:
    """The .weights header; `seen` is 64-bit from version 0.2 on."""

    major: int = 0
    minor: int = 2
    revision: int = 0
    seen: int = 0

    @property
    def seen_is_64bit(self) -> bool:
        return self.major * 10 + self.minor >= 2 and self.major < 1000 and self.minor < 1000

    @property
    def nbytes(self) -> int:
        return 12 + (8 if self.seen_is_64bit else 4)

    def to_bytes(self) -> bytes:
        seen = np.array([self.seen], dtype=np.uint64 if self.seen_is_64bit else np.uint32)
        return np.array([self.major, self.minor, self.revision], dtype="<i4").tobytes() + seen.astype(
            seen.dtype.newbyteorder("<")).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> "Header":
        if len(data) < 16:
            raise DarknetWeightsError(f"{source}: {len(data)} bytes is too short for a .weights header")
        major, minor, revision = (int(v) for v in np.frombuffer(data[:12], dtype="<i4"))
        h = cls(major, minor, revision)
        if len(data) < h.nbytes:
            raise DarknetWeightsError(f"{source}: {len(data)} bytes is too short for a .weights header")
        h.seen = int(np.frombuffer(data[12:h.nbytes], dtype="<u8" if h.seen_is_64bit else "<u4")[0])
        return h


@dataclass
class LoadReport:
    """What `load_weights` did: header, floats read, conv layers filled, layers skipped (all parameter-free)."""

    header: Header
    floats: int
    convs: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)


def conv_tensors(m: DarknetConv) -> list[torch.Tensor]:
    """The tensors of one conv in .weights order: biases, [BN scales, means, variances], kernel."""
    if isinstance(m.bn, nn.BatchNorm2d):
        return [m.bn.bias, m.bn.weight, m.bn.running_mean, m.bn.running_var, m.conv.weight]
    if m.conv.bias is None:
        raise DarknetWeightsError(f"layer {getattr(m, 'i', '?')}: a conv without batch norm needs a bias "
                                  "(was the model fused? .weights hold unfused convolutions)")
    return [m.conv.bias, m.conv.weight]


def darknet_layers(model: nn.Module) -> list[tuple[int, nn.Module]]:
    """(index, layer) of the model's top-level layers (a `Model`'s `.model` Sequential, else the module's children)."""
    seq = getattr(model, "model", model)
    return list(enumerate(seq.children()))


def weights_float_count(model: nn.Module) -> int:
    """How many floats the model's .weights file holds (parameters plus BN running statistics)."""
    return sum(t.numel() for _, m in darknet_layers(model) if isinstance(m, DarknetConv) for t in conv_tensors(m))


def load_weights(model: nn.Module, path: str | Path) -> LoadReport:
    """Fill a model built from the cfg with a .weights file, in place; the file must be consumed exactly."""
    path = Path(path)
    if not path.is_file():
        raise UserFileNotFoundError(f"Darknet weights not found: {path}")
    data = path.read_bytes()
    header = Header.from_bytes(data, str(path))
    body = data[header.nbytes:]
    if len(body) % 4:
        raise DarknetWeightsError(f"{path}: {len(body)} bytes after the header is not a whole number of float32s")
    floats = np.frombuffer(body, dtype="<f4")
    need = weights_float_count(model)
    if floats.size != need:
        kind = "truncated" if floats.size < need else "over-long"
        raise DarknetWeightsError(f"{path}: {kind}: holds {floats.size:,} floats after the header but the cfg's "
                                  f"convolutions need exactly {need:,} ({floats.size - need:+,})")
    report = LoadReport(header, int(floats.size))
    pos = 0
    with torch.no_grad():
        for i, m in darknet_layers(model):
            if not isinstance(m, DarknetConv):
                _check_parameter_free(m, i, path)
                report.skipped.append((i, type(m).__name__))
                continue
            for t in conv_tensors(m):
                t.copy_(torch.from_numpy(floats[pos:pos + t.numel()].copy()).view_as(t))
                pos += t.numel()
            report.convs.append(i)
    model.darknet_header = header
    return report


def _check_parameter_free(m: nn.Module, i: int, path: Path) -> None:
    n = sum(p.numel() for p in m.parameters())
    if n:
        raise DarknetWeightsError(f"{path}: layer {i} ({type(m).__name__}) has {n} parameters that a .weights "
                                  "file cannot hold")


def weights_bytes(model: nn.Module, header: Header | None = None) -> bytes:
    """The .weights file of a model (header from the model's loaded file unless given)."""
    header = header or getattr(model, "darknet_header", None) or Header()
    parts = [header.to_bytes()]
    for i, m in darknet_layers(model):
        if isinstance(m, DarknetConv):
            parts += [t.detach().cpu().float().numpy().astype("<f4").tobytes() for t in conv_tensors(m)]
        else:
            _check_parameter_free(m, i, Path("<model>"))
    return b"".join(parts)


def save_weights(model: nn.Module, path: str | Path, header: Header | None = None) -> Path:
    """Write the model's .weights file (atomically: a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(weights_bytes(model, header))
    tmp.replace(path)
    return path
