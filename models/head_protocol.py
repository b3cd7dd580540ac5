"""The contract every detection head of the YAML graph keeps (anchor-based YOLOv5 `Detect`, `DarknetDetect`,
anchor-free `DetectV8`). Training, validation, detection, export, autoanchor and the analysis tools use only
what is written here; none of them asks which head class it has.

- `forward(feats)`: in training, the raw per-level maps (a list, one tensor per level); in eval,
  `(decoded, raw)`, or `(decoded,)` when `export` is set. `decoded` is (B, N, 4 + has_objectness + nc):
  boxes [cx, cy, w, h] in input pixels, then the objectness (only when `has_objectness`), then sigmoid class
  scores.
- `has_objectness`: whether decoded rows carry an objectness column (NMS multiplies it into the class scores;
  FCOS / ATSS put their centerness there, YOLOX its objectness).
- `has_anchors`: whether the head has anchor boxes (`anchors`, (nl, na, 2) in grid units) that autoanchor may
  refit; anchor-free heads have none and refuse an `anchors:` key.
- `loss_name`: which loss trains it (`utils.loss_factory.make_loss`): "yolov5" (build_targets, objectness),
  "tal" (TaskAlignedAssigner, BCE + CIoU + DFL), or an mmdetection family ("retina", "fcos", "atss", "gfl",
  "yolox": utils/loss_dense.py, the terms and weights of the head's `head_cfg`).
- `postprocess(decoded, hw, conf_thres, iou_thres, max_det, classes=None, agnostic=False)` (optional; absent:
  utils/nms.non_max_suppression with the scripts' flags): the head's own post-processing of the decoded rows of
  an (h, w) input into per-image (n, 6) [x1, y1, x2, y2, conf, cls] rows, best first. val.py and detect.py reach
  it only through models/backend_export.detections (Backend.postprocess).
- `test_cfg` (optional, with `postprocess`): its settings as mmdetection's test_cfg states them, a JSON-plain
  dict {score_thr, iou_thres, nms_pre, max_per_img, min_bbox_size, multi_label, score_factor, strides,
  priors_per_cell}. val.py uses it in place of its --conf-thres / --iou-thres / --max-det, detect.py takes its
  IoU and max detections and the higher of --conf-thres and score_thr (utils/nms.head_nms_kwargs); exports
  store it in their metadata and their backends rebuild `postprocess` from it (utils/dense/decoded_postprocess).
- `stride` (nl,): pixels per cell of each level, set by the Model from a dummy forward.
- `output_convs(layers)` and `initialize_biases(class_freq, convs)`: where the output priors go.
"""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import torch
import torch.nn as nn


@runtime_checkable
class DetectionHead(Protocol):
    nc: int
    nl: int
    no: int
    stride: torch.Tensor
    export: bool
    has_objectness: bool
    has_anchors: bool
    loss_name: str

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor] | tuple: ...

    def output_convs(self, layers: nn.Sequential) -> list[nn.Module | None]: ...

    def initialize_biases(self, class_freq: torch.Tensor | None = None,
                          convs: Sequence[nn.Module | None] | None = None) -> None: ...


def find_head(model: nn.Module) -> DetectionHead | None:
    """The head of a YAML-graph model (its last row) or None for a headless graph."""
    layers = getattr(model, "model", None)
    if not isinstance(layers, nn.Sequential) or not len(layers):
        return None
    last = layers[-1]
    return last if isinstance(last, DetectionHead) else None
