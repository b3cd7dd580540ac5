"""YOLO model built from a YAML graph: `Model`, plus `parse_model` and `Detect` re-exported.

Usage: python models/yolo.py --cfg yolov5s.yaml [--nc 80] [--imgsz 640] [--fuse]
"""
from __future__ import annotations

import argparse
import copy
import logging
import math
import re
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

if __package__ in (None, ""):  # `python models/yolo.py`: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.common import Conv, make_act  # noqa: E402
from models.detect import Detect  # noqa: E402
from models.head_protocol import DetectionHead, find_head  # noqa: E402
from models.parse import ModelConfigError, parse_activation, parse_model  # noqa: E402
from models.rows import row_input  # noqa: E402
from models.scales import scale_from_name, split_scale_name  # noqa: E402
from utils.cli import UserFileNotFoundError  # noqa: E402
from utils.resolve import resolve_file  # noqa: E402
from utils.torch_utils import initialize_weights, model_info  # noqa: E402

__all__ = ["Model", "Detect", "parse_model", "load_model_yaml", "ModelConfigError"]

LOGGER = logging.getLogger("yolo")
MODELS_DIR = Path(__file__).resolve().parent


def resolve_cfg(cfg: str | Path) -> Path:
    """A model YAML path as given, or its name looked up in models/ (utils/resolve.py); a scaled name not on disk
    falls back to its `scales:` file ('yolov8n.yaml' -> 'yolov8.yaml', see models/scales.py)."""
    try:
        return resolve_file(cfg, "cfg")
    except FileNotFoundError as not_found:
        p = Path(cfg)
        unified = split_scale_name(p.stem if p.suffix in (".yaml", ".yml") else p.name)
        if not unified:
            raise
        try:
            return resolve_file(p.with_name(unified[0] + ".yaml"), "cfg")
        except FileNotFoundError:
            raise UserFileNotFoundError(f"{not_found}\nnor its scales file {unified[0]}.yaml "
                                        f"(scale '{unified[1]}')") from None


def load_model_yaml(cfg: str | Path | dict) -> tuple[dict, str]:
    """(model dict, source name for messages) from a path, a zoo name or a dict."""
    if isinstance(cfg, dict):
        return copy.deepcopy(cfg), cfg.get("yaml_file", "<model dict>")
    path = resolve_cfg(cfg)
    try:
        d = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ModelConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(d, dict):
        raise ModelConfigError(f"{path}: a model YAML must be a mapping with nc, anchors, backbone and head")
    if d.get("scales") and "scale" not in d:
        d["scale"] = scale_from_name(cfg)
        if d["scale"] is None:
            del d["scale"]
    return d, str(path)


class Model(nn.Module):
    """A detection model: YAML layers run in order, outputs of the layers in `save` kept for later rows."""

    def __init__(self, cfg: str | Path | dict = "yolov5s.yaml", ch: int = 3, nc: int | None = None,
                 anchors: Any = None, verbose: bool = False):
        super().__init__()
        self.yaml, self.yaml_file = load_model_yaml(cfg)
        self.yaml.pop("yaml_file", None)
        ch = self.yaml["ch"] = self.yaml.get("ch", ch)
        if nc is not None and nc != self.yaml.get("nc"):
            LOGGER.info(f"Overriding model.yaml nc={self.yaml.get('nc')} with nc={nc}")
            self.yaml["nc"] = nc
        if anchors is not None:
            LOGGER.info(f"Overriding model.yaml anchors with anchors={anchors}")
            self.yaml["anchors"] = anchors
        self.model, self.save = parse_model(self.yaml, ch=[ch], source=self.yaml_file, verbose=verbose)
        self.names = [str(i) for i in range(self.yaml.get("nc", 0) or 0)]
        initialize_weights(self)
        head = self.detect
        if head is not None:
            self._init_head(head, ch)
        if verbose:
            self.info()

    @property
    def detect(self) -> DetectionHead | None:
        """The detection head (last layer) or None for a headless graph (see models/head_protocol.py)."""
        return find_head(self)

    @property
    def stride(self) -> torch.Tensor:
        head = self.detect
        return head.stride if head is not None else torch.tensor([32.0])

    def _init_head(self, head: DetectionHead, ch: int) -> None:
        """Strides from a dummy forward, anchors (if any) to grid units in stride order, bias priors."""
        s = 256
        was_training = self.training
        self.eval()  # the probe must not move BatchNorm statistics (pretrained backbones keep theirs)
        with torch.no_grad():
            feats = self._forward_once(torch.zeros(1, ch, s, s), upto_head=True, annotate=True)
        self.train(was_training)
        feats = feats if isinstance(feats, list) else [feats]
        strides = [s / f.shape[-2] for f in feats]
        if not head.has_anchors and any(b <= a for a, b in zip(strides, strides[1:])):
            raise ModelConfigError(f"{self.yaml_file}: layer {self.model[-1].i} (Detect, from {self.model[-1].f}): "
                                   f"its inputs have strides {strides}; the anchor-free head takes levels from "
                                   f"fine to coarse (e.g. P3, P4, P5), each a different stride")
        head.stride.copy_(torch.tensor(strides))
        if head.has_anchors:
            head.anchors /= head.stride.view(-1, 1, 1)
            if head.check_anchor_order():
                LOGGER.info("Reversing anchor order to follow the stride order")
        head.initialize_biases(convs=head.output_convs(self.model))

    def forward(self, x: torch.Tensor, augment: bool = False):
        if augment:
            return self._forward_augment(x)
        return self._forward_once(x)

    def _forward_once(self, x: torch.Tensor, upto_head: bool = False, annotate: bool = False):
        y: list = []
        n = len(self.model)
        for m in self.model:
            x = row_input(m, x, y)
            if upto_head and m.i == n - 1:
                return x
            if annotate:
                x = self._annotated_call(m, x)
            else:
                x = m(x)
            y.append(x if m.i in self.save else None)
        return x

    def _annotated_call(self, m: nn.Module, x):
        try:
            return m(x)
        except RuntimeError as e:
            shapes = [tuple(t.shape) for t in x] if isinstance(x, list) else tuple(x.shape)
            raise ModelConfigError(f"{self.yaml_file}: layer {m.i} ({m.type} {m.args}, from {m.f}) "
                                   f"fails on input {shapes}: {e}") from None

    def _forward_augment(self, x: torch.Tensor):
        """Test-time augmentation: scales 1, 0.83, 0.67 with a left-right flip at 0.83."""
        img_size = x.shape[-2:]
        outs = []
        for scale, flip in ((1.0, None), (0.83, 3), (0.67, None)):
            xi = scale_img(x.flip(flip) if flip else x, scale, gs=int(self.stride.max()))
            yi = self._forward_once(xi)[0]
            yi[..., :4] /= scale
            if flip == 3:
                yi[..., 0] = img_size[1] - yi[..., 0]
            outs.append(yi)
        return torch.cat(self._clip_augmented(outs), 1), None

    def _clip_augmented(self, y: list[torch.Tensor]) -> list[torch.Tensor]:
        """Drop the large-object tail of the up-scaled run and the small-object head of the down-scaled one."""
        head = self.detect
        nl = head.nl
        g = sum(4 ** x for x in range(nl))
        e = 1
        i = (y[0].shape[1] // g) * sum(4 ** x for x in range(e))
        y[0] = y[0][:, :-i]
        i = (y[-1].shape[1] // g) * sum(4 ** (nl - 1 - x) for x in range(e))
        y[-1] = y[-1][:, i:]
        return y

    def fuse(self) -> "Model":
        """Fold every Conv's BatchNorm into its convolution (inference only)."""
        for m in self.modules():
            if isinstance(m, Conv):
                m.fuse()
        return self

    def thop_custom_ops(self) -> dict | None:
        """The head family's own FLOPs rules for thop (None: thop's defaults, as YOLOv5 counts)."""
        rules = getattr(self.detect, "thop_rules", None)
        return rules() if rules else None

    def layer_count(self) -> int:
        """The "N layers" of the original's summary, the Convs' default activation counted once as it shares it:
        YOLOv5 v7.0 counts every module, ultralytics 8 (heads with `summary_counts_leaves`) only leaf modules."""
        default = type(make_act(parse_activation(self.yaml.get("activation"), self.yaml_file)))
        shared = [m for m in self.modules() if isinstance(m, Conv) and m.shares_default_act and type(m.act) is default]
        head = self.detect
        counted = list(self.modules())
        if head is not None and getattr(head, "summary_counts_leaves", False):
            counted = [m for m in counted if not m._modules]
        return len(counted) - max(len(shared) - 1, 0)

    def info(self, verbose: bool = False, img_size: int = 640) -> dict:
        """The summary line in the original's format: YOLOv5's, or ultralytics 8's for heads that count as it does."""
        style = "ultralytics" if getattr(self.detect, "summary_counts_leaves", False) else "yolov5"
        return model_info(self, verbose=verbose, img_size=img_size, name=self.model_name, n_layers=self.layer_count(),
                          style=style)

    @property
    def model_name(self) -> str:
        if not self.yaml_file:
            return "Model"
        stem, scale = Path(self.yaml_file).stem, self.yaml.get("scale")
        if scale and self.yaml.get("scales") and split_scale_name(stem) is None:  # yolov8.yaml at n -> yolov8n
            stem = re.sub(r"(\d+)", lambda m: m[1] + scale, stem, count=1)
        return stem.replace("yolov5", "YOLOv5").replace("yolov8", "YOLOv8").replace("yolo11", "YOLO11")


def scale_img(img: torch.Tensor, ratio: float = 1.0, gs: int = 32) -> torch.Tensor:
    """Resize a batch by `ratio` and pad (value 0.447, YOLOv5's grey) up to a multiple of gs."""
    if ratio == 1.0:
        return img
    h, w = img.shape[2:]
    s = (int(h * ratio), int(w * ratio))
    img = F.interpolate(img, size=s, mode="bilinear", align_corners=False)
    h, w = (math.ceil(x * ratio / gs) * gs for x in (h, w))
    return F.pad(img, [0, w - s[1], 0, h - s[0]], value=0.447)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Build a model from its YAML and print its layers and summary.")
    ap.add_argument("--cfg", default="yolov5s.yaml", help="model YAML (path or name in models/)")
    ap.add_argument("--nc", type=int, default=None, help="override the number of classes")
    ap.add_argument("--imgsz", type=int, default=640, help="image size for the GFLOPs figure")
    ap.add_argument("--fuse", action="store_true", help="also print the fused summary")
    opt = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = Model(opt.cfg, nc=opt.nc, verbose=True)
    if opt.fuse:
        model.eval().fuse().info(img_size=opt.imgsz)


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
