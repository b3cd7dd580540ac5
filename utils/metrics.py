"""Detection metrics as YOLOv5 v7.0 computes them: matching, per-class P/R/AP, confusion matrix, fitness.

All AP arithmetic is numpy float64 so that results agree with the official code to ~1e-12 on the same
inputs. Sorting calls (`np.argsort` with its default, non-stable algorithm) are the same as YOLOv5's, so
predictions with tied confidences or IoUs are ordered the same way.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from utils.boxes import box_iou
from utils.smooth import smooth

FITNESS_WEIGHTS = (0.0, 0.0, 0.1, 0.9)  # over [P, R, mAP@0.5, mAP@0.5:0.95]
N_CURVE = 1000  # confidence grid of the P/R/F1 curves
N_AP_POINTS = 101  # recall grid of the interpolated AP (COCO style)


def _to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def compute_ap(recall: np.ndarray, precision: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """AP of one recall/precision curve by 101-point interpolation -> (ap, envelope precision, recall)."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0]))
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))  # monotone non-increasing envelope
    x = np.linspace(0, 1, N_AP_POINTS)
    ap = np.trapezoid(np.interp(x, mrec, mpre), x)
    return float(ap), mpre, mrec


def _class_curves(tp: np.ndarray, conf: np.ndarray, n_labels: int, px: np.ndarray,
                  eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For one class (predictions sorted by confidence): AP per IoU column, P and R curves on px, PR curve."""
    tpc = tp.cumsum(0)
    fpc = (1 - tp).cumsum(0)
    recall = tpc / (n_labels + eps)
    precision = tpc / (tpc + fpc)
    r_curve = np.interp(-px, -conf, recall[:, 0], left=0)  # conf decreases along the predictions
    p_curve = np.interp(-px, -conf, precision[:, 0], left=1)
    ap = np.zeros(tp.shape[1])
    for j in range(tp.shape[1]):
        ap[j], mpre, mrec = compute_ap(recall[:, j], precision[:, j])
        if j == 0:
            pr_curve = np.interp(px, mrec, mpre)
    return ap, p_curve, r_curve, pr_curve


def ap_per_class(tp: np.ndarray | torch.Tensor, conf: np.ndarray | torch.Tensor,
                 pred_cls: np.ndarray | torch.Tensor, target_cls: np.ndarray | torch.Tensor,
                 plot: bool = False, save_dir: Path | str = Path("."), names: dict | list | tuple = (),
                 eps: float = 1e-16, prefix: str = "") -> tuple[np.ndarray, ...]:
    """Per-class TP, FP, P, R, F1 (at the confidence maximising the smoothed mean F1), AP (nc, n_iou), classes.

    `tp` (n, n_iou) bool: prediction correct at each IoU threshold; `conf`, `pred_cls` (n,); `target_cls`
    (m,) over all labels. Only classes present in `target_cls` are reported (sorted). With `plot`, writes
    PR/F1/P/R curves to `save_dir` (file names prefixed by `prefix`).
    """
    tp, conf, pred_cls, target_cls = map(_to_numpy, (tp, conf, pred_cls, target_cls))
    if tp.ndim != 2 or not len(tp) == len(conf) == len(pred_cls):
        raise ValueError(f"ap_per_class: tp {tp.shape}, conf {conf.shape} and pred_cls {pred_cls.shape} "
                         "must describe the same n predictions (tp is (n, n_iou))")
    order = np.argsort(-conf)
    tp, conf, pred_cls = tp[order], conf[order], pred_cls[order]
    classes, n_labels = np.unique(target_cls, return_counts=True)
    px = np.linspace(0, 1, N_CURVE)
    ap = np.zeros((len(classes), tp.shape[1]))
    p, r = np.zeros((len(classes), N_CURVE)), np.zeros((len(classes), N_CURVE))
    pr_curves = []
    for ci, c in enumerate(classes):
        mine = pred_cls == c
        if not mine.any():
            continue
        ap[ci], p[ci], r[ci], pr = _class_curves(tp[mine], conf[mine], n_labels[ci], px, eps)
        pr_curves.append(pr)
    f1 = 2 * p * r / (p + r + eps)
    if plot:
        _plot_all(px, pr_curves, ap, p, r, f1, classes, names, Path(save_dir), prefix)
    i = smooth(f1.mean(0), 0.1).argmax() if len(classes) else 0
    p, r, f1 = p[:, i], r[:, i], f1[:, i]
    tp_n = (r * n_labels).round()
    fp_n = (tp_n / (p + eps) - tp_n).round()
    return tp_n, fp_n, p, r, f1, ap, classes.astype(int)


def _plot_all(px: np.ndarray, pr_curves: list, ap: np.ndarray, p: np.ndarray, r: np.ndarray, f1: np.ndarray,
              classes: np.ndarray, names: dict | list | tuple, save_dir: Path, prefix: str) -> None:
    from utils.plot_curves import plot_mc_curve, plot_pr_curve  # matplotlib only when plotting

    all_names = dict(enumerate(names)) if isinstance(names, (list, tuple)) else dict(names)
    shown = [all_names.get(int(c), str(int(c))) for c in classes]
    plot_pr_curve(px, np.stack(pr_curves, 1) if pr_curves else np.zeros((len(px), 0)), ap,
                  save_dir / f"{prefix}PR_curve.png", shown)
    for curve, name, ylabel in ((f1, "F1", "F1"), (p, "P", "Precision"), (r, "R", "Recall")):
        plot_mc_curve(px, curve, save_dir / f"{prefix}{name}_curve.png", shown, ylabel=ylabel)


def match_predictions(pred_classes: torch.Tensor, true_classes: torch.Tensor, iou: torch.Tensor,
                      iouv: torch.Tensor) -> torch.Tensor:
    """Greedy one-to-one matching at each IoU threshold -> correct (n_pred, n_iou) bool.

    `iou` is (n_true, n_pred). At each threshold, same-class pairs with IoU >= t are taken by descending
    IoU; each prediction and each label is used at most once (YOLOv5 v7.0's rule).
    """
    correct = np.zeros((len(pred_classes), len(iouv)), dtype=bool)
    same = true_classes[:, None] == pred_classes[None, :]
    iou_np = iou.detach().cpu().numpy()
    for k in range(len(iouv)):
        li, di = (v.cpu().numpy() for v in torch.nonzero((iou >= iouv[k]) & same, as_tuple=True))
        if not len(li):
            continue
        pairs = np.stack((li, di, iou_np[li, di]), 1).astype(np.float32)
        if len(pairs) > 1:
            pairs = pairs[pairs[:, 2].argsort()[::-1]]  # best IoU first
            pairs = pairs[np.unique(pairs[:, 1], return_index=True)[1]]  # one label per prediction
            pairs = pairs[np.unique(pairs[:, 0], return_index=True)[1]]  # one prediction per label
        correct[pairs[:, 1].astype(int), k] = True
    return torch.from_numpy(correct).to(iouv.device)


def process_batch(detections: torch.Tensor, labels: torch.Tensor, iouv: torch.Tensor) -> torch.Tensor:
    """Which detections (n, 6) [x1, y1, x2, y2, conf, cls] are correct against labels (m, 5) [cls, x1, y1, x2, y2]."""
    if detections.ndim != 2 or detections.shape[1] < 6:
        raise ValueError(f"process_batch: detections must be (n, 6), got {tuple(detections.shape)}")
    if labels.ndim != 2 or labels.shape[1] != 5:
        raise ValueError(f"process_batch: labels must be (m, 5) [cls, x1, y1, x2, y2], got {tuple(labels.shape)}")
    detections, labels = detections.cpu(), labels.cpu()
    iou = box_iou(labels[:, 1:], detections[:, :4])
    return match_predictions(detections[:, 5], labels[:, 0], iou, iouv.cpu()).to(iouv.device)


def fitness(x: np.ndarray) -> np.ndarray:
    """Model fitness per row of [P, R, mAP@0.5, mAP@0.5:0.95, ...] = 0.1 * mAP@0.5 + 0.9 * mAP@0.5:0.95."""
    x = np.asarray(x, dtype=float)
    return (x[..., :4] * np.array(FITNESS_WEIGHTS)).sum(-1)


class ConfusionMatrix:
    """Detection confusion matrix, (nc + 1) x (nc + 1), rows = predicted class, columns = true class.

    Index `nc` is background: row `nc` counts labels no prediction matched (missed), column `nc` counts
    predictions that matched no label (false positives). Detections below `conf` are ignored; a label and
    a detection match when IoU > `iou_thres` (one-to-one, best IoU first). Unlike YOLOv5 v7.0, unmatched
    detections are counted as background even when no pair in the image matched at all.
    """

    def __init__(self, nc: int, conf: float = 0.25, iou_thres: float = 0.45) -> None:
        self.nc, self.conf, self.iou_thres = nc, conf, iou_thres
        self.matrix = np.zeros((nc + 1, nc + 1))

    def process_batch(self, detections: torch.Tensor | None, labels: torch.Tensor) -> None:
        """Add one image: detections (n, 6) [x1, y1, x2, y2, conf, cls] or None, labels (m, 5) [cls, x1, y1, x2, y2]."""
        labels = labels.detach().cpu()
        true_cls = labels[:, 0].long().numpy() if labels.ndim == 2 else labels.long().view(-1).numpy()
        if detections is None or not len(detections):
            np.add.at(self.matrix, (self.nc, true_cls), 1)
            return
        detections = detections.detach().cpu()
        detections = detections[detections[:, 4] > self.conf]
        pred_cls = detections[:, 5].long().numpy()
        pairs = self._match(box_iou(labels[:, 1:], detections[:, :4]))
        matched_true = np.full(len(true_cls), -1)
        matched_true[pairs[:, 0]] = pairs[:, 1]
        for t, d in zip(true_cls, matched_true):
            self.matrix[pred_cls[d] if d >= 0 else self.nc, t] += 1
        unmatched = np.ones(len(pred_cls), dtype=bool)
        unmatched[pairs[:, 1]] = False
        np.add.at(self.matrix, (pred_cls[unmatched], self.nc), 1)

    def _match(self, iou: torch.Tensor) -> np.ndarray:
        """(k, 2) int [label, detection] pairs with IoU > iou_thres, one-to-one by descending IoU."""
        li, di = torch.nonzero(iou > self.iou_thres, as_tuple=True)
        pairs = np.stack((li.numpy(), di.numpy(), iou[li, di].numpy()), 1).astype(np.float32)
        if len(pairs) > 1:
            pairs = pairs[pairs[:, 2].argsort()[::-1]]
            pairs = pairs[np.unique(pairs[:, 1], return_index=True)[1]]
            pairs = pairs[pairs[:, 2].argsort()[::-1]]
            pairs = pairs[np.unique(pairs[:, 0], return_index=True)[1]]
        return pairs[:, :2].astype(int)

    def tp_fp(self) -> tuple[np.ndarray, np.ndarray]:
        """True and false positives per class (background excluded)."""
        tp = self.matrix.diagonal()
        fp = self.matrix.sum(1) - tp
        return tp[:-1], fp[:-1]

    def plot(self, save_dir: Path | str = Path("."), names: dict | list | tuple = (), normalize: bool = True) -> Path:
        """Write confusion_matrix.png to save_dir; returns its path."""
        from utils.plot_curves import plot_confusion_matrix

        path = Path(save_dir) / "confusion_matrix.png"
        plot_confusion_matrix(self.matrix, path, names, normalize=normalize)
        return path
