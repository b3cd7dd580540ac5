"""Non-maximum suppression of raw detector output, YOLOv5 v7.0 semantics, vectorised over the batch.

Input rows are `[cx, cy, w, h, obj, cls_0 .. cls_{nc-1}]` in input pixels. A row is a candidate when
`obj > conf_thres`; its class scores become `obj * cls`. Heads without objectness (the anchor-free YOLOv8 /
YOLO11 head, `has_objectness=False`) give `[cx, cy, w, h, cls_0 ..]` rows, candidates when their best class
score passes `conf_thres` (as ultralytics 8 does). Candidate selection, scoring and the class filter
run once for the whole batch; only the sort and torchvision's NMS run per image (with the class-offset
trick: boxes shifted by `cls * MAX_WH` so that boxes of different classes never overlap).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import torch

from utils.boxes import xywh2xyxy
from utils.nms_kernel import nms
from utils.nms_numpy import MAX_WH

LOGGER = logging.getLogger(__name__)


def _check_args(prediction: torch.Tensor, conf_thres: float, iou_thres: float, n_extra: int = 5) -> None:
    if not 0 <= conf_thres <= 1:
        raise ValueError(f"conf_thres={conf_thres} must be in [0, 1]")
    if not 0 <= iou_thres <= 1:
        raise ValueError(f"iou_thres={iou_thres} must be in [0, 1]")
    if prediction.ndim != 3 or prediction.shape[2] < n_extra + 1:
        raise ValueError(f"prediction must be (batch, n, {n_extra} + nc) with nc >= 1, got {tuple(prediction.shape)}")


def _label_rows(labels: Sequence[torch.Tensor], nc: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A-priori labels ([cls, cx, cy, w, h] per image) as prediction rows with obj = cls = 1."""
    rows, images = [], []
    for b, lb in enumerate(labels):
        if lb is None or not len(lb):
            continue
        lb = torch.as_tensor(lb, dtype=like.dtype, device=like.device)
        v = torch.zeros((len(lb), nc + 5), dtype=like.dtype, device=like.device)
        v[:, :4] = lb[:, 1:5]
        v[:, 4] = 1.0
        v[torch.arange(len(lb), device=like.device), lb[:, 0].long() + 5] = 1.0
        rows.append(v)
        images.append(torch.full((len(lb),), b, dtype=torch.long, device=like.device))
    if not rows:
        return like.new_zeros((0, nc + 5)), torch.zeros(0, dtype=torch.long, device=like.device)
    return torch.cat(rows), torch.cat(images)


def _candidates(prediction: torch.Tensor, conf_thres: float, multi_label: bool,
                labels: Sequence[torch.Tensor], has_objectness: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """All (image, box, class) candidates of the batch as (K, 6) [x1, y1, x2, y2, conf, cls] + image index (K,)."""
    if not has_objectness:  # [box, cls...] rows: the best class score plays objectness's role in the pre-filter
        prediction = torch.cat((prediction[..., :4], prediction[..., 4:].amax(-1, keepdim=True), prediction[..., 4:]), -1)
    nc = prediction.shape[2] - 5
    img, row = (prediction[..., 4] > conf_thres).nonzero(as_tuple=True)  # row-major: image by image
    x = prediction[img, row]
    if len(labels):
        lx, limg = _label_rows(labels, nc, prediction)
        x, img = torch.cat((x, lx)), torch.cat((img, limg))
        img, order = img.sort(stable=True)  # labels go after the image's own rows, as YOLOv5 appends them
        x = x[order]
    scores = x[:, 5:] * x[:, 4:5] if has_objectness else x[:, 5:]
    box = xywh2xyxy(x[:, :4])
    if multi_label:
        i, j = (scores > conf_thres).nonzero(as_tuple=True)
        det = torch.cat((box[i], scores[i, j, None], j[:, None].to(box.dtype)), 1)
        return det, img[i]
    conf, j = scores.max(1, keepdim=True)
    keep = conf.view(-1) > conf_thres
    det = torch.cat((box, conf, j.to(box.dtype)), 1)[keep]
    return det, img[keep]


def _nms_one(det: torch.Tensor, iou_thres: float, agnostic: bool, max_det: int, max_nms: int) -> torch.Tensor:
    """Sort one image's candidates by confidence (top max_nms), suppress overlaps per class, keep max_det."""
    det = det[det[:, 4].argsort(descending=True)[:max_nms]]
    offset = det[:, 5:6] * (0 if agnostic else MAX_WH)
    keep = nms(det[:, :4] + offset, det[:, 4], iou_thres)
    return det[keep[:max_det]]


def non_max_suppression(prediction: torch.Tensor | Sequence[torch.Tensor], conf_thres: float = 0.25,
                        iou_thres: float = 0.45, classes: Sequence[int] | None = None, agnostic: bool = False,
                        multi_label: bool = False, labels: Sequence[torch.Tensor] = (), max_det: int = 300,
                        max_nms: int = 30000, time_limit: float | None = None,
                        has_objectness: bool = True) -> list[torch.Tensor]:
    """NMS of (B, N, 5 + nc) predictions -> per image an (n, 6) tensor [x1, y1, x2, y2, conf, cls].

    `classes` keeps only those class indices; `agnostic` suppresses across classes; `multi_label` keeps
    every class whose score passes `conf_thres` (forced off when nc == 1); `labels` are optional a-priori
    boxes per image ([cls, cx, cy, w, h], pixels) added with confidence 1. When the per-image work exceeds
    `time_limit` seconds (default 0.5 + 0.05 * B) a warning is logged and the remaining images stay empty.
    """
    if isinstance(prediction, (list, tuple)):  # eval-mode models return (inference_out, raw_levels)
        prediction = prediction[0]
    n_extra = 5 if has_objectness else 4  # box + objectness, or box alone (the head's `has_objectness`)
    _check_args(prediction, conf_thres, iou_thres, n_extra)
    bs, nc = prediction.shape[0], prediction.shape[2] - n_extra
    time_limit = 0.5 + 0.05 * bs if time_limit is None else time_limit
    start = time.time()
    output = [prediction.new_zeros((0, 6)) for _ in range(bs)]

    det, img = _candidates(prediction, conf_thres, multi_label and nc > 1, labels, has_objectness)
    if classes is not None:
        wanted = torch.as_tensor(classes, dtype=det.dtype, device=det.device)
        keep = (det[:, 5:6] == wanted).any(1)
        det, img = det[keep], img[keep]
    counts = torch.bincount(img, minlength=bs).tolist()
    for b, d in enumerate(det.split(counts)):
        if len(d):
            output[b] = _nms_one(d, iou_thres, agnostic, max_det, max_nms)
        if time.time() - start > time_limit:
            LOGGER.warning("NMS time limit %.3fs exceeded after image %d of %d", time_limit, b + 1, bs)
            break
    return output


def head_nms_kwargs(test_cfg: dict | None, kw: dict, val: bool = False) -> dict:
    """`kw` (non_max_suppression keywords) with a head's own test settings (the head contract's `test_cfg`,
    mmdetection's score_thr / nms iou / nms_pre / max_per_img) in place of the script's defaults.

    val.py takes them all (the family's figures are measured as mmdetection measures them); detect.py keeps
    its --conf-thres when it is higher than score_thr (a display threshold); `max_per_img` <= 0 keeps the
    script's --max-det. `nms_pre` (pairs kept per level) is the head's own post-processing's
    (utils/dense/decoded_postprocess.py), which takes these keywords; `multi_label` follows the head (YOLOX: one
    label per box)."""
    if not test_cfg:
        return kw
    out = dict(kw, iou_thres=test_cfg["iou_thres"], multi_label=test_cfg["multi_label"])
    out["conf_thres"] = test_cfg["score_thr"] if val else max(kw["conf_thres"], test_cfg["score_thr"])
    if test_cfg["max_per_img"] > 0:
        out["max_det"] = test_cfg["max_per_img"]
    return out
