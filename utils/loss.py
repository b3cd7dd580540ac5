"""YOLOv5 (v6+) training loss: target assignment (`build_targets`) and the box/objectness/class loss.

The head the loss reads is any object with `nc`, `nl`, `na`, `anchors` ((nl, na, 2) in grid units,
i.e. pixels / stride) and `stride` ((nl,)), and optionally `box_from_raw(pxy, pwh, anchors, level)` giving its
own box parametrisation (Darknet heads; YOLOv5's is the default), and `score_logits(p, level)` turning a level's
scores into logits where its convs already end in a logistic (Darknet's new_coords). Predictions are the raw
per-level head outputs (B, na, H, W, 5 + nc); targets are (nt, 6) rows `[image, class, cx, cy, w, h]` normalised
to the network input.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from utils.boxes import bbox_iou

# Per-level objectness weights: high-resolution levels have many more (mostly empty) cells, so their
# mean BCE is smaller and is weighted up. 3 levels (P3-P5) or up to 5 (P3-P7, "P6" models).
BALANCE_P5 = (4.0, 1.0, 0.4)
BALANCE_P6 = (4.0, 1.0, 0.25, 0.06, 0.02)

# Candidate cells for a target, in units of half a cell: its own cell, then right/down/left/up neighbours.
_OFFSETS = ((0, 0), (1, 0), (0, 1), (-1, 0), (0, -1))
_CELL_HALF = 0.5


def smooth_bce(eps: float = 0.0) -> tuple[float, float]:
    """Label-smoothed BCE targets (positive, negative) = (1 - eps/2, eps/2)."""
    return 1.0 - 0.5 * eps, 0.5 * eps


def scale_loss_hyp(hyp: dict[str, Any], nl: int, nc: int, imgsz: int,
                   label_smoothing: float | None = None) -> dict[str, Any]:
    """Return a copy of `hyp` with the loss gains rescaled as YOLOv5's train.py does before training.

    The gains were tuned for 3 detection levels, 80 classes and 640 px: the box and class gains scale
    with 3/nl, the class gain also with nc/80, and the objectness gain with the number of grid cells
    ((imgsz/640)**2) and 3/nl.
    """
    for key in ("box", "cls", "obj"):
        if key not in hyp:
            raise KeyError(f"hyp is missing the loss gain '{key}'")
    out = dict(hyp)
    out["box"] = hyp["box"] * 3 / nl
    out["cls"] = hyp["cls"] * nc / 80 * 3 / nl
    out["obj"] = hyp["obj"] * (imgsz / 640) ** 2 * 3 / nl
    if label_smoothing is not None:
        out["label_smoothing"] = float(label_smoothing)
    return out


def yolov5_box_from_raw(pxy: torch.Tensor, pwh: torch.Tensor, anchors: torch.Tensor, level: int = 0) -> torch.Tensor:
    """Decode as YOLOv5's Detect does (for heads without `box_from_raw`): xy in (-0.5, 1.5) of the cell, wh in (0, 4) x anchor."""
    return torch.cat((pxy.sigmoid() * 2 - 0.5, (pwh.sigmoid() * 2) ** 2 * anchors), 1)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017) wrapped around a BCEWithLogitsLoss: weight (1 - p_t)**gamma * alpha_t."""

    def __init__(self, loss_fcn: nn.BCEWithLogitsLoss, gamma: float = 1.5, alpha: float = 0.25) -> None:
        super().__init__()
        self.loss_fcn = loss_fcn
        self.gamma = gamma
        self.alpha = alpha
        self.reduction = loss_fcn.reduction
        self.loss_fcn.reduction = "none"  # the focal weight is applied per element

    def forward(self, pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
        loss = self.loss_fcn(pred, true)
        prob = pred.sigmoid()
        p_t = true * prob + (1 - true) * (1 - prob)
        alpha_t = true * self.alpha + (1 - true) * (1 - self.alpha)
        loss = loss * alpha_t * (1.0 - p_t) ** self.gamma
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss


class ComputeLoss:
    """YOLOv5 loss: 1 - CIoU box loss, BCE objectness against the (clamped) IoU, BCE class loss."""

    item_names = ("box", "obj", "cls")  # the three detached items, as results.csv names them
    sort_obj_iou = False  # YOLOv5 default: cells hit twice keep the last write, not the highest IoU

    def __init__(self, head: Any, hyp: dict[str, Any], autobalance: bool = False) -> None:
        for key in ("box", "obj", "cls", "anchor_t"):
            if key not in hyp:
                raise KeyError(f"hyp is missing '{key}' needed by the loss")
        self.head = head
        self.hyp = hyp
        self.nc, self.nl, self.na = int(head.nc), int(head.nl), int(head.na)
        device = head.anchors.device
        self.bce_cls = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([hyp.get("cls_pw", 1.0)], device=device))
        self.bce_obj = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([hyp.get("obj_pw", 1.0)], device=device))
        self.cp, self.cn = smooth_bce(hyp.get("label_smoothing", 0.0))
        gamma = hyp.get("fl_gamma", 0.0)
        if gamma > 0:
            self.bce_cls, self.bce_obj = FocalLoss(self.bce_cls, gamma), FocalLoss(self.bce_obj, gamma)
        self.balance = list(BALANCE_P5 if self.nl == 3 else BALANCE_P6[:self.nl])
        if len(self.balance) != self.nl:
            raise ValueError(f"no objectness balance for {self.nl} detection levels (supported: 1-5)")
        strides = [float(s) for s in head.stride]
        self.ssi = strides.index(16.0) if autobalance and 16.0 in strides else 0  # stride-16 weight stays 1
        self.autobalance = autobalance
        self.gr = 1.0  # objectness target = (1 - gr) + gr * IoU
        self.box_from_raw = getattr(head, "box_from_raw", yolov5_box_from_raw)
        self.score_logits = getattr(head, "score_logits", None)

    @property
    def anchors(self) -> torch.Tensor:
        """Anchors (nl, na, 2) in grid units, read from the head so autoanchor updates are seen."""
        return self.head.anchors

    def __call__(self, preds: list[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (total loss (1,) scaled by batch size, detached items [box, obj, cls] (3,))."""
        if len(preds) != self.nl:
            raise ValueError(f"expected {self.nl} prediction levels, got {len(preds)}")
        device = targets.device
        lcls = torch.zeros(1, device=device)
        lbox = torch.zeros(1, device=device)
        lobj = torch.zeros(1, device=device)
        tcls, tbox, indices, anch = self.build_targets(preds, targets)

        for i, pi in enumerate(preds):
            if self.score_logits is not None:
                pi = self.score_logits(pi, i)  # the BCEs below take logits
            b, a, gj, gi = indices[i]
            tobj = torch.zeros(pi.shape[:4], dtype=pi.dtype, device=device)
            n = b.shape[0]
            if n:
                pxy, pwh, _, pcls = pi[b, a, gj, gi].split((2, 2, 1, self.nc), 1)
                pbox = self.box_from_raw(pxy, pwh, anch[i], level=i)  # the head's own box parametrisation
                iou = bbox_iou(pbox, tbox[i], CIoU=True).squeeze(-1)
                lbox = lbox + (1.0 - iou).mean()

                iou = iou.detach().clamp(0).type(tobj.dtype)
                if self.sort_obj_iou:
                    j = iou.argsort()
                    b, a, gj, gi, iou = b[j], a[j], gj[j], gi[j], iou[j]
                if self.gr < 1:
                    iou = (1.0 - self.gr) + self.gr * iou
                tobj[b, a, gj, gi] = iou  # duplicate cells: the last write wins

                if self.nc > 1:  # a single class is learnt by objectness alone
                    t = torch.full_like(pcls, self.cn)
                    t[torch.arange(n, device=device), tcls[i]] = self.cp
                    lcls = lcls + self.bce_cls(pcls, t)

            obji = self.bce_obj(pi[..., 4], tobj)
            lobj = lobj + obji * self.balance[i]
            if self.autobalance:
                self.balance[i] = self.balance[i] * 0.9999 + 0.0001 / obji.detach().item()

        if self.autobalance:
            self.balance = [x / self.balance[self.ssi] for x in self.balance]
        lbox = lbox * self.hyp["box"]
        lobj = lobj * self.hyp["obj"]
        lcls = lcls * self.hyp["cls"]
        bs = preds[0].shape[0]
        # Why "* bs": each term above is a mean (over matched targets, or over all cells), i.e. roughly a
        # per-image average. Multiplying by the batch size turns it into a sum over the images of the
        # batch. The trainer steps the optimizer once every `accumulate` = round(64 / bs) batches, so the
        # gradient of one step is a sum over ~64 images (the nominal batch) whatever --batch-size is.
        # YOLOv5's lr0 and loss gains were tuned for exactly that summed gradient, so keeping the factor
        # keeps the step size independent of the batch size (weight decay is scaled by bs*accumulate/64
        # in the trainer for the same reason).
        return (lbox + lobj + lcls) * bs, torch.cat((lbox, lobj, lcls)).detach()

    def build_targets(self, preds: list[torch.Tensor], targets: torch.Tensor
                      ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[tuple[torch.Tensor, ...]],
                                 list[torch.Tensor]]:
        """Assign targets to (anchor, cell) pairs on every level (the rule: `assign_targets`).

        Returns per level: classes (n,), boxes (n, 4) `[x - gi, y - gj, w, h]` in grid units, indices
        `(image, anchor, gj, gi)` and the anchor sizes (n, 2) in grid units."""
        return self.assign_targets(preds, targets)[:4]

    def positives(self, preds: list[torch.Tensor], targets: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """The (prior, ground truth) pairs this loss trains on, per image (the contract of utils/loss_protocol.py):
        "centers" (K, 2) cell centres in input pixels, "gt_index" (K,) the box's index among that image's rows
        of `targets`, "level" (K,), and "anchor" (K,) the anchor of the pair on its level. A cell may appear
        more than once (several anchors, or several boxes)."""
        _, _, indices, _, rows = self.assign_targets(preds, targets)
        return positives_per_image(targets, preds[0].shape[0], [float(s) for s in self.head.stride], indices, rows)

    def assign_targets(self, preds: list[torch.Tensor], targets: torch.Tensor
                       ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[tuple[torch.Tensor, ...]],
                                  list[torch.Tensor], list[torch.Tensor]]:
        """Assign targets to (anchor, cell) pairs on every level.

        Returns per level: classes (n,), boxes (n, 4) `[x - gi, y - gj, w, h]` in grid units, indices
        `(image, anchor, gj, gi)`, the anchor sizes (n, 2) in grid units and the row of `targets` (n,).

        Assignment rule, per level (grid units = pixels / stride):
          1. Shape match: a target goes to every anchor whose width AND height ratios to it are within
             `anchor_t` (max(r, 1/r) < anchor_t, r = target_wh / anchor_wh). Predicted wh is
             (2*sigmoid)**2 * anchor, at most 4x the anchor, so anchor_t = 4 keeps reachable targets.
          2. Cells: its own cell (gi, gj) = floor(x, y), plus the two neighbours nearest the centre: the
             left one if x%1 < 0.5, else the right one, and the upper one if y%1 < 0.5, else the lower
             one (a neighbour is skipped when it would fall off the grid's outer border: x > 1 and
             grid - x > 1). Predicted xy is 2*sigmoid - 0.5 in (-0.5, 1.5) of the cell, so those
             neighbours can still reach the centre. Three cells per matched anchor, typically.

                  +-----+-----+         centre * in the upper-left quarter of its cell:
                  |     |     |         own cell X, left neighbour L, upper neighbour U
                  |     |  U  |
                  +-----+-----+
                  |  L  |*  X |
                  +-----+-----+

          3. Cell indices are clamped into the grid, and the box offsets are measured from the clamped
             cell (as YOLOv5 does, whose in-place clamp acts on a view of its index tensor): a centre
             exactly on the right/bottom border gets offset 1.0 in the last cell.
        Order (kept for reproducibility of duplicate-cell writes): anchor-major, then offset-major.
        """
        na, nt = self.na, targets.shape[0]
        device = targets.device
        tcls, tbox, indices, anch, rows = [], [], [], [], []
        gain = torch.ones(8, device=device)
        ai = torch.arange(na, device=device).float().view(na, 1).repeat(1, nt)
        ri = torch.arange(nt, device=device).float().view(1, nt).repeat(na, 1)
        targets = torch.cat((targets.repeat(na, 1, 1), ai[..., None], ri[..., None]), 2)  # (na, nt, 8): + anchor, row
        off = torch.tensor(_OFFSETS, device=device).float() * _CELL_HALF
        anchors_all = self.anchors.to(device)

        for i in range(self.nl):
            anchors, shape = anchors_all[i], preds[i].shape
            gain[2:6] = torch.tensor(shape, device=device)[[3, 2, 3, 2]].float()  # xyxy gain
            t = targets * gain  # to grid units
            if nt:
                r = t[..., 4:6] / anchors[:, None]  # wh ratio to each anchor
                t = t[torch.max(r, 1 / r).max(2)[0] < self.hyp["anchor_t"]]  # rule 1
                gxy = t[:, 2:4]  # from the top-left corner
                gxi = gain[[2, 3]] - gxy  # from the bottom-right corner
                left, up = ((gxy % 1 < _CELL_HALF) & (gxy > 1)).T
                right, down = ((gxi % 1 < _CELL_HALF) & (gxi > 1)).T
                keep = torch.stack((torch.ones_like(left), left, up, right, down))  # rule 2
                t = t.repeat((len(_OFFSETS), 1, 1))[keep]
                offsets = (torch.zeros_like(gxy)[None] + off[:, None])[keep]
            else:
                t = targets[0]
                offsets = torch.zeros(1, 2, device=device)

            bc, gxy, gwh, a, r = t.split((2, 2, 2, 1, 1), 1)
            a, (b, c) = a.long().view(-1), bc.long().T
            gij = (gxy - offsets).long()  # truncation toward zero; gxy - offsets > 0 except at x = 0
            gi = gij[:, 0].clamp(0, shape[3] - 1)  # rule 3
            gj = gij[:, 1].clamp(0, shape[2] - 1)
            gij = torch.stack((gi, gj), 1)
            indices.append((b, a, gj, gi))
            tbox.append(torch.cat((gxy - gij, gwh), 1))
            anch.append(anchors[a])
            tcls.append(c)
            rows.append(r.long().view(-1))
        return tcls, tbox, indices, anch, rows


def positives_per_image(targets: torch.Tensor, bs: int, strides: list[float], indices: list[tuple[torch.Tensor, ...]],
                        rows: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """build_targets' per-level (image, anchor, gj, gi) and target rows -> utils/loss_protocol.py's per-image dicts."""
    img = targets[:, 0].long()
    local = torch.zeros(len(targets), dtype=torch.long, device=targets.device)  # index among its image's rows
    for j in range(bs):
        sel = img == j
        local[sel] = torch.arange(int(sel.sum()), device=targets.device)
    out = []
    for j in range(bs):
        parts: dict[str, list[torch.Tensor]] = {"centers": [], "gt_index": [], "level": [], "anchor": []}
        for i, ((b, a, gj, gi), r) in enumerate(zip(indices, rows)):
            m = b == j
            parts["centers"].append(torch.stack((gi[m], gj[m]), 1).float().add(0.5).mul(strides[i]))
            parts["gt_index"].append(local[r[m]])
            parts["level"].append(torch.full_like(a[m], i))
            parts["anchor"].append(a[m])
        out.append({k: torch.cat(v) for k, v in parts.items()})
    return out
