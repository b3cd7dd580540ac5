"""Per-batch matching and statistics of a validation run, as YOLOv5 v7.0's val.py accumulates them.

Predictions and labels are compared in native (original image) space: both are mapped back through the
letterbox ratio and padding of each image before `process_batch` matches them at IoU 0.50:0.05:0.95.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from utils.boxes import scale_boxes, xywh2xyxy
from utils.metrics import ConfusionMatrix, ap_per_class, process_batch
from utils.yolo_txt import detection_lines

IOU_THRESHOLDS = torch.linspace(0.5, 0.95, 10)


@dataclass
class EvalResult:
    """Overall and per-class figures of a validation run."""
    mp: float
    mr: float
    map50: float
    map: float
    maps: np.ndarray  # (nc,) mAP50-95 per class, the overall mAP for classes without labels
    seen: int
    nt: np.ndarray  # (nc,) instances per class
    per_class: list[dict] = field(default_factory=list)

    def to_dict(self, names: list[str]) -> dict:
        """JSON-ready dict: overall figures and one entry per class with labels."""
        return {"images": self.seen, "instances": int(self.nt.sum()), "P": self.mp, "R": self.mr,
                "mAP50": self.map50, "mAP50_95": self.map, "per_class": self.per_class}


def native_labels(labels: torch.Tensor, im_hw: tuple[int, int], shape: tuple) -> torch.Tensor:
    """Labels [cls, cx, cy, w, h] in letterboxed pixels -> [cls, x1, y1, x2, y2] in original pixels."""
    box = xywh2xyxy(labels[:, 1:5])
    scale_boxes(im_hw, box, shape[0], shape[1])
    return torch.cat((labels[:, 0:1], box), 1)


class Evaluator:
    """Accumulates (correct, conf, pred_cls, target_cls) per image and turns them into P, R, mAP."""

    def __init__(self, nc: int, names: list[str], single_cls: bool = False, confusion: bool = False,
                 txt_dir: Path | None = None, save_conf: bool = False, json_ids=None, cat_ids=None) -> None:
        self.nc, self.names, self.single_cls = nc, list(names), single_cls
        self.iouv = IOU_THRESHOLDS.clone()
        self.stats: list[tuple[torch.Tensor, ...]] = []
        self.confusion = ConfusionMatrix(nc) if confusion else None
        self.txt_dir, self.save_conf = txt_dir, save_conf
        self.json_ids, self.cat_ids = json_ids, cat_ids  # json_ids: path -> image id; None = no json
        self.json_results: list[dict] = []
        self.json_image_ids: set = set()
        self.seen = 0

    def update(self, preds: list[torch.Tensor], targets: torch.Tensor, im_hw: tuple[int, int],
               paths: list[str], shapes: list) -> None:
        """One batch: NMS output per image, targets (n, 6) [img, cls, cx, cy, w, h] in letterboxed pixels."""
        targets = targets.cpu()
        for si, pred in enumerate(preds):
            self._update_one(pred.detach().float().cpu(), targets[targets[:, 0] == si, 1:], im_hw,
                             paths[si], shapes[si])

    def _update_one(self, pred: torch.Tensor, labels: torch.Tensor, im_hw, path, shape) -> None:
        self.seen += 1
        if self.json_ids is not None:
            self.json_image_ids.add(self.json_ids(path))
        correct = torch.zeros(len(pred), len(self.iouv), dtype=torch.bool)
        if not len(pred):
            if len(labels):
                self.stats.append((correct, torch.zeros(0), torch.zeros(0), labels[:, 0]))
                if self.confusion:
                    self.confusion.process_batch(None, labels[:, 0])
            return
        if self.single_cls:
            pred[:, 5] = 0
        predn = pred.clone()
        scale_boxes(im_hw, predn[:, :4], shape[0], shape[1])
        if len(labels):
            labelsn = native_labels(labels, im_hw, shape)
            correct = process_batch(predn, labelsn, self.iouv)
            if self.confusion:
                self.confusion.process_batch(predn, labelsn)
        self.stats.append((correct, pred[:, 4], pred[:, 5], labels[:, 0]))
        self._save(predn, path, shape[0])

    def _save(self, predn: torch.Tensor, path: str, shape_hw) -> None:
        if self.txt_dir is not None:
            lines = detection_lines(predn, shape_hw, self.save_conf)
            (self.txt_dir / f"{Path(path).stem}.txt").write_text("".join(f"{ln}\n" for ln in lines))
        if self.json_ids is not None:
            from utils.coco_eval import to_coco_results
            self.json_results += to_coco_results(predn, self.json_ids(path), self.cat_ids)

    def ap_inputs(self) -> tuple[np.ndarray, ...]:
        """(tp, conf, pred_cls, target_cls) over every image seen so far."""
        if not self.stats:
            return np.zeros((0, len(self.iouv)), bool), np.zeros(0), np.zeros(0), np.zeros(0)
        return tuple(torch.cat(x, 0).numpy() for x in zip(*self.stats))

    def result(self, plot: bool = False, save_dir: Path = Path(".")) -> EvalResult:
        """P, R, mAP50, mAP50-95 (means over classes with labels), per-class figures and instance counts."""
        tp, conf, pred_cls, target_cls = self.ap_inputs()
        nt = np.bincount(target_cls.astype(int), minlength=self.nc)
        mp = mr = map50 = map_ = 0.0
        per_class, maps = [], np.zeros(self.nc)
        if len(tp) and tp.any():
            _, _, p, r, _, ap, ap_class = ap_per_class(tp, conf, pred_cls, target_cls, plot=plot,
                                                       save_dir=save_dir, names=self.names)
            ap50, ap = ap[:, 0], ap.mean(1)
            mp, mr, map50, map_ = float(p.mean()), float(r.mean()), float(ap50.mean()), float(ap.mean())
            maps += map_
            for i, c in enumerate(ap_class):
                maps[c] = ap[i]
                per_class.append({"class": int(c), "name": self._name(c), "instances": int(nt[c]),
                                  "P": float(p[i]), "R": float(r[i]), "AP50": float(ap50[i]),
                                  "AP50_95": float(ap[i])})
        return EvalResult(mp, mr, map50, map_, maps, self.seen, nt, per_class)

    def _name(self, c: int) -> str:
        return self.names[c] if c < len(self.names) else str(c)
