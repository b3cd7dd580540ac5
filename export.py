"""Export a detector to TorchScript and/or ONNX, each verified by running it against PyTorch.

    python export.py --weights yolov5n.pt --include torchscript onnx --imgsz 640 [--dynamic]

Files are written next to the weights (`yolov5n.torchscript`, `yolov5n.onnx`). The exported graph outputs
only the decoded (B, N, 5 + nc) tensor (Detect.export); class names, stride, input size and whether the
shape is dynamic are stored in the file (see models/backends.py), so detect.py and val.py can load it.
"""
from __future__ import annotations

import argparse
import json
import logging
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.backends import TORCHSCRIPT_META, export_metadata, load_backend

LOGGER = logging.getLogger("yolo.export")
FORMATS = ("torchscript", "onnx")


@dataclass
class ExportOptions:
    """Command-line options of export.py."""
    weights: str = "yolov5s.pt"
    include: list[str] = field(default_factory=lambda: ["torchscript", "onnx"])
    imgsz: list[int] = field(default_factory=lambda: [640, 640])
    batch_size: int = 1
    dynamic: bool = False
    opset: int = 17
    simplify: bool = False
    device: str = "cpu"
    atol: float = 1e-3


class DecodedOnly(torch.nn.Module):
    """The model's forward reduced to its decoded output tensor (what exported files return)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, im: torch.Tensor) -> torch.Tensor:
        return self.model(im)[0]


def export_torchscript(model: torch.nn.Module, im: torch.Tensor, path: Path, meta: dict) -> Path:
    """Trace the model and save it with its metadata in `_extra_files`."""
    traced = torch.jit.trace(model, im, strict=False)
    traced.save(str(path), _extra_files={TORCHSCRIPT_META: json.dumps(meta)})
    return path


def export_onnx(model: torch.nn.Module, im: torch.Tensor, path: Path, meta: dict, opset: int, dynamic: bool,
                simplify: bool) -> Path:
    """torch.onnx (TorchScript-based exporter) plus metadata_props; optional onnxsim simplification."""
    import onnx

    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 1: "anchors"}}
    with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated but needs no onnxscript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (im,), str(path), opset_version=opset, input_names=["images"],
                          output_names=["output0"], dynamic_axes=axes if dynamic else None, dynamo=False)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    if simplify:
        proto = _simplify(proto)
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=json.dumps(v))
    onnx.save(proto, str(path))
    return path


def _simplify(proto):
    try:
        import onnxsim
    except ImportError as e:
        raise RuntimeError("--simplify needs the onnxsim package (pip install onnxsim)") from e
    proto, ok = onnxsim.simplify(proto)
    if not ok:
        raise RuntimeError("onnxsim could not verify the simplified model")
    return proto


def verify(path: Path, expected: torch.Tensor, im: torch.Tensor, atol: float) -> float:
    """Run the exported file on `im` and compare with the PyTorch output; returns the max |difference|."""
    backend = load_backend(path, "cpu")
    got = backend(im)
    if got.shape != expected.shape:
        raise AssertionError(f"{path}: output shape {tuple(got.shape)} != PyTorch {tuple(expected.shape)}")
    diff = float((got - expected).abs().max())
    if not np.isfinite(diff) or diff > atol:
        raise AssertionError(f"{path}: output differs from PyTorch by {diff:.3g} (> {atol})")
    return diff


def _verify_input(batch: int, imgsz: tuple[int, int]) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, *imgsz, generator=g)


def run(weights="yolov5s.pt", include=("torchscript", "onnx"), imgsz=(640, 640), batch_size=1, dynamic=False,
        opset=17, simplify=False, device="cpu", atol=1e-3) -> dict[str, Path]:
    """Export `weights` to each format in `include`; returns {format: path}. Raises if a check fails."""
    from models import load_model

    unknown = set(include) - set(FORMATS)
    if unknown:
        raise ValueError(f"--include {sorted(unknown)}: unknown format(s); choose from {FORMATS}")
    imgsz = tuple(imgsz) * 2 if len(imgsz) == 1 else tuple(imgsz)
    model = load_model(weights, device=device, fuse=True).eval()
    stride = int(model.stride.max())
    if any(s % stride for s in imgsz):
        raise ValueError(f"--imgsz {imgsz} must be multiples of the model stride {stride}")
    model.detect.export = True
    model = DecodedOnly(model)
    im = torch.zeros(batch_size, 3, *imgsz, device=device)
    meta = export_metadata(model.model.names, stride, imgsz, batch_size, dynamic,
                           has_objectness=model.model.detect.has_objectness)
    x = _verify_input(batch_size, imgsz)
    x2 = _verify_input(batch_size + 1, (imgsz[0] // 2, imgsz[1]))  # a second shape for dynamic exports
    with torch.inference_mode():
        expected, expected2 = model(x), model(x2)
    out = {}
    for fmt in include:
        path = Path(weights).with_suffix(f".{fmt}")
        if fmt == "torchscript":
            export_torchscript(model, im, path, meta)
        else:
            export_onnx(model, im, path, meta, opset, dynamic, simplify)
        diff = verify(path, expected, x, atol)
        if dynamic and fmt == "onnx":  # also another batch size and image shape
            diff = max(diff, verify(path, expected2, x2, atol))
        LOGGER.info(f"{fmt}: saved {path} ({path.stat().st_size / 1e6:.1f} MB), max |diff| vs PyTorch {diff:.2e}")
        out[fmt] = path
    return out


def parse_opt(argv: list[str] | None = None) -> ExportOptions:
    d = ExportOptions()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=d.weights)
    p.add_argument("--include", nargs="+", default=d.include, choices=FORMATS)
    p.add_argument("--imgsz", "--img", "--img-size", nargs="+", type=int, default=d.imgsz, help="h [w]")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--dynamic", action="store_true", help="ONNX: dynamic batch and image size")
    p.add_argument("--opset", type=int, default=d.opset)
    p.add_argument("--simplify", action="store_true", help="ONNX: simplify with onnxsim (optional package)")
    p.add_argument("--device", default=d.device)
    p.add_argument("--atol", type=float, default=d.atol, help="max |diff| allowed in the verification run")
    return ExportOptions(**vars(p.parse_args(argv)))


def main(argv: list[str] | None = None) -> dict[str, Path]:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run(**asdict(parse_opt(argv)))


if __name__ == "__main__":
    main()
