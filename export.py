"""Export a detector to TorchScript and/or ONNX, each verified by running it against PyTorch.

    python export.py --weights yolov5n.pt --include torchscript onnx --imgsz 640 [--dynamic] [--project DIR --name NAME]

Files are written next to the weights (`yolov5n.torchscript`, `yolov5n.onnx`), as YOLOv5 does, or into
project/name (incremented like the other scripts' runs) when --project or --name is given. A file appears
only once its check has passed. The exported graph outputs only the decoded (B, N, 5 + nc) tensor
(Detect.export); class names, stride, input size and whether the shape is dynamic are stored in the file
(see models/backends.py), so detect.py and val.py can load it. Every format is exported from the same model
state (`export_state`), whatever ran before it.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from models.backends import TORCHSCRIPT_META, export_metadata, load_backend
from models.head_protocol import DetectionHead, find_head
from utils.cli import UserValueError, run_main
from utils.paths import increment_path

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
    rtol: float = 1e-4
    project: str | None = None  # None (and no name): next to the weights
    name: str | None = None
    exist_ok: bool = False
    cfg: str | None = None  # Darknet .cfg for .weights


class DecodedOnly(torch.nn.Module):
    """The model's forward reduced to its decoded output tensor (what exported files return).

    Its own training flag follows the wrapped model's: torch.onnx.export restores the mode it found on the
    module it is given with a recursive `train(flag)`, so a wrapper left in training mode would switch the
    whole model back to training (per-level maps) after the export."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)

    def forward(self, im: torch.Tensor) -> torch.Tensor:
        return self.model(im)[0]


@contextmanager
def export_state(model: torch.nn.Module) -> Iterator[DecodedOnly]:
    """`model` in the state every export starts from (eval mode, heads returning only the decoded tensor; any head
    of the contract, models/head_protocol.py),
    wrapped in DecodedOnly; every module's training flag and every head's `export` are restored on exit."""
    training = {m: m.training for m in model.modules()}
    head = find_head(model)
    heads = {m: m.export for m in model.modules() if isinstance(m, DetectionHead) or m is head}
    model.eval()
    for head in heads:
        head.export = True
    try:
        yield DecodedOnly(model)
    finally:
        for m, flag in training.items():
            m.training = flag
        for head, flag in heads.items():
            head.export = flag


@contextmanager
def staged(path: Path) -> Iterator[Path]:
    """A temporary file beside `path` (same suffix) that becomes `path` only if the block succeeds."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def output_dir(weights: str | Path, project: str | None, name: str | None, exist_ok: bool) -> Path:
    """The weights' folder (YOLOv5's default) unless --project or --name is given: then project/name, incremented."""
    if project is None and name is None:
        return Path(weights).parent
    return increment_path(Path(project or "runs/export") / (name or "exp"), exist_ok=exist_ok, mkdir=True)


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


def _max(t: torch.Tensor) -> float:
    return float(t.max()) if t.numel() else 0.0


def output_gap(got: torch.Tensor, expected: torch.Tensor, atol: float = 1e-3, rtol: float = 1e-4
               ) -> tuple[float, str | None]:
    """(max |got - expected|, why it is too large or None) for decoded outputs (B, N, 4 + k).

    Columns 0:4 are boxes in input pixels, the rest scores in [0, 1]. Float32 rounding of a box grows with its
    size: the anchor-free head's box side is a DFL expectation (up to reg_max - 1 = 15 bins) times the stride
    (up to 32), so a ~1e-5..1e-4 rounding difference of the raw logits becomes ~1e-2 px on a 640 px input (two
    correct PyTorch runs of yolov8n, fused channels_last against unfused: 2.7e-2 px with boxes up to 790 px;
    tests/test_export.py), well over a fixed 1e-3, while scores differ by ~7e-5. So boxes may differ by
    atol + rtol * S, S the largest |box value| of the output (0.08 px at S = 800 with the defaults), scores by
    atol. A wrong export (other weights, stride, decode or a missing sigmoid) is off by pixels or by whole
    score units, far outside either bound."""
    if got.shape != expected.shape:
        return float("inf"), f"output shape {tuple(got.shape)} != PyTorch {tuple(expected.shape)}"
    d = (got.float() - expected.float()).abs()
    if not torch.isfinite(d).all():
        return float("inf"), "output has non-finite values where PyTorch's has none"
    box_d, score_d = _max(d[..., :4]), _max(d[..., 4:])
    box_tol = atol + rtol * _max(expected[..., :4].abs())
    if box_d > box_tol:
        return box_d, f"boxes differ from PyTorch by {box_d:.3g} px (> {box_tol:.3g} = {atol} + {rtol} x image scale)"
    if score_d > atol:
        return score_d, f"scores differ from PyTorch by {score_d:.3g} (> {atol})"
    return max(box_d, score_d), None


def verify(path: Path, expected: torch.Tensor, im: torch.Tensor, atol: float, name: Path | None = None,
           rtol: float = 1e-4) -> float:
    """Run the exported file on `im` and compare with the PyTorch output (`output_gap`); returns the max
    |difference|. `name` is the file the messages name (default `path`)."""
    got = load_backend(path, "cpu")(im)
    diff, why = output_gap(got, expected, atol, rtol)
    if why:
        raise AssertionError(f"{name or path}: {why}")
    return diff


def _verify_input(batch: int, imgsz: tuple[int, int]) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, *imgsz, generator=g)


def export_format(fmt: str, model: torch.nn.Module, im: torch.Tensor, path: Path, meta: dict, opset: int = 17,
                  dynamic: bool = False, simplify: bool = False) -> Path:
    """Write `model` as `fmt` to `path`, from export_state and leaving the model as it was."""
    with export_state(model) as wrapped:
        if fmt == "torchscript":
            return export_torchscript(wrapped, im, path, meta)
        return export_onnx(wrapped, im, path, meta, opset, dynamic, simplify)


def run(weights="yolov5s.pt", include=("torchscript", "onnx"), imgsz=(640, 640), batch_size=1, dynamic=False,
        opset=17, simplify=False, device="cpu", atol=1e-3, rtol=1e-4, project=None, name=None, exist_ok=False,
        cfg=None) -> dict[str, Path]:
    """Export `weights` to each format in `include`; returns {format: path}. Raises if a check fails."""
    from models import load_model

    unknown = set(include) - set(FORMATS)
    if unknown:
        raise UserValueError(f"--include {sorted(unknown)}: unknown format(s); choose from {FORMATS}")
    imgsz = tuple(imgsz) * 2 if len(imgsz) == 1 else tuple(imgsz)
    model = load_model(weights, device=device, fuse=True, cfg=cfg)
    stride = int(model.stride.max())
    if any(s % stride for s in imgsz):
        raise UserValueError(f"--imgsz {imgsz} must be multiples of the model stride {stride}")
    im = torch.zeros(batch_size, 3, *imgsz, device=device)
    meta = export_metadata(model.names, stride, imgsz, batch_size, dynamic,
                           has_objectness=model.detect.has_objectness,
                           test_cfg=getattr(model.detect, "test_cfg", None))
    x = _verify_input(batch_size, imgsz)
    x2 = _verify_input(batch_size + 1, (imgsz[0] // 2, imgsz[1]))  # a second shape for dynamic exports
    with export_state(model) as wrapped, torch.inference_mode():
        expected, expected2 = wrapped(x), wrapped(x2)
    folder = output_dir(weights, project, name, exist_ok)
    out = {}
    for fmt in include:
        path = folder / Path(weights).with_suffix(f".{fmt}").name
        with staged(path) as tmp:
            export_format(fmt, model, im, tmp, meta, opset, dynamic, simplify)
            diff = verify(tmp, expected, x, atol, path, rtol)
            if dynamic and fmt == "onnx":  # also another batch size and image shape
                diff = max(diff, verify(tmp, expected2, x2, atol, path, rtol))
        LOGGER.info(f"{fmt}: saved {path} ({path.stat().st_size / 1e6:.1f} MB), max |diff| vs PyTorch {diff:.2e}")
        out[fmt] = path
    return out


def parse_opt(argv: list[str] | None = None) -> ExportOptions:
    d = ExportOptions()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=d.weights, help="checkpoint (.pt), or Darknet .weights with --cfg")
    p.add_argument("--cfg", default=d.cfg, help="Darknet .cfg for .weights files")
    p.add_argument("--include", nargs="+", default=d.include, choices=FORMATS)
    p.add_argument("--imgsz", "--img", "--img-size", nargs="+", type=int, default=d.imgsz, help="h [w]")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--dynamic", action="store_true", help="ONNX: dynamic batch and image size")
    p.add_argument("--opset", type=int, default=d.opset)
    p.add_argument("--simplify", action="store_true", help="ONNX: simplify with onnxsim (optional package)")
    p.add_argument("--device", default=d.device)
    p.add_argument("--atol", type=float, default=d.atol, help="verification: max |diff| of scores (and boxes, + rtol)")
    p.add_argument("--rtol", type=float, default=d.rtol,
                   help="verification: boxes may also differ by rtol x the largest box value (pixels)")
    p.add_argument("--project", default=d.project, help="save to project/name (default: next to the weights)")
    p.add_argument("--name", default=d.name, help="save to project/name (project default: runs/export)")
    p.add_argument("--exist-ok", action="store_true", help="existing project/name ok, do not increment")
    return ExportOptions(**vars(p.parse_args(argv)))


def main(argv: list[str] | None = None) -> dict[str, Path]:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run(**asdict(parse_opt(argv)))


if __name__ == "__main__":
    run_main(main)
