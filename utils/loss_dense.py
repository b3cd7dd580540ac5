"""The training loss of the mmdetection-family heads (models/dense_heads): the head's raw maps and YOLO targets
turned into mmdetection's `loss_by_feat` call (utils/dense, mmdetection 3.3 semantics, see its reference tests).

- The raw per-level maps are split into mmdet's named outputs (`head.split`), the YOLO targets (n, 6)
  [image, class, cx, cy, w, h] (normalised) into per-image gt boxes (x1y1x2y2 pixels) and labels.
- The loss terms are mmdetection's own, with their `loss_weight`s from the model YAML's head_cfg (the hyp
  file's box / cls / obj gains are not read). Per-level lists are summed.
- Returned as this trainer expects: (total x batch size (1,), detached items (3,)) with `item_names`:
  RetinaNet (box, cls, sum), FCOS / ATSS (box, cls, ctr), GFL (box, cls, dfl), YOLOX (box, obj, cls; its L1
  term, with use_l1, is counted in box).
- `positives(preds, targets)`: per image the priors the assigner made positive (centres in input pixels, the
  target index, the level, and the assigned IoU where the assigner states one), for the positive-sample tools.
"""
from __future__ import annotations

from typing import Any

import torch

# mmdet loss key -> item, per family (items not listed are summed into no item)
ITEMS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "retina": (("box", ("loss_bbox",)), ("cls", ("loss_cls",)), ("sum", ("loss_cls", "loss_bbox"))),
    "fcos": (("box", ("loss_bbox",)), ("cls", ("loss_cls",)), ("ctr", ("loss_centerness",))),
    "atss": (("box", ("loss_bbox",)), ("cls", ("loss_cls",)), ("ctr", ("loss_centerness",))),
    "gfl": (("box", ("loss_bbox",)), ("cls", ("loss_cls",)), ("dfl", ("loss_dfl",))),
    "yolox": (("box", ("loss_bbox", "loss_l1")), ("obj", ("loss_obj",)), ("cls", ("loss_cls",))),
}


def math_for(head: Any) -> Any:
    """utils/dense's family object for `head`, built from the head's full mmdet-style config."""
    from utils.dense.families import build_family

    return build_family(head.cfg, "head_cfg")


# the centre each family's assigner sees for a prior: YOLOX's SimOTA takes its points shifted by half a stride
CENTRE_OFFSET = {"yolox": 0.5}


def yolo_to_gt(targets: torch.Tensor, batch: int, img_hw: tuple[int, int]) -> tuple[list, list]:
    """(n, 6) [image, class, cx, cy, w, h] normalised -> per image (k, 4) x1y1x2y2 pixels and (k,) labels."""
    from utils.dense.yolo_targets import yolo_to_gt as convert

    return convert(targets, batch, img_hw)


def loss_total(losses: dict[str, Any]) -> torch.Tensor:
    """The sum of every entry (per-level lists summed): mmdetection's parse_losses total."""
    return sum(sum(v) if isinstance(v, (list, tuple)) else v for v in losses.values())


class DenseFamilyLoss:
    """Callable (raw preds, targets) -> (total (1,) x batch size, detached items (3,))."""

    def __init__(self, head: Any, hyp: dict[str, Any] | None = None) -> None:
        self.head, self.hyp = head, hyp
        self.family = head.loss_name
        self.math = math_for(head)
        self.item_names = tuple(name for name, _ in ITEMS[self.family])

    def _inputs(self, preds: list[torch.Tensor], targets: torch.Tensor):
        outs = self.head.split(preds)
        hw = self.head.image_hw(preds)
        gt_bboxes, gt_labels = yolo_to_gt(targets.to(preds[0].dtype), preds[0].shape[0], hw)
        return outs, gt_bboxes, gt_labels, hw

    def losses(self, preds: list[torch.Tensor], targets: torch.Tensor) -> dict[str, Any]:
        """mmdetection's loss dict (per-level lists where mmdet has them)."""
        outs, gt_bboxes, gt_labels, hw = self._inputs(preds, targets)
        return self.math.loss_by_feat(outs, gt_bboxes, gt_labels, hw)

    def __call__(self, preds: list[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        losses = self.losses(preds, targets)
        flat = {k: (sum(v) if isinstance(v, (list, tuple)) else v) for k, v in losses.items()}
        zero = preds[0].new_zeros(())
        items = torch.stack([sum((flat[k] for k in keys if k in flat), zero) for _, keys in ITEMS[self.family]])
        total = loss_total(losses)
        return total.reshape(1) * preds[0].shape[0], items.detach()

    def positives(self, preds: list[torch.Tensor], targets: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Per image {"centers" (K, 2) px, "gt_index" (K,), "level" (K,), "score" (K,) assigned IoU when known}."""
        outs, gt_bboxes, gt_labels, hw = self._inputs([p.detach() for p in preds], targets)
        results = self.math.assign(outs, gt_bboxes, gt_labels, hw)
        centres, levels = self._prior_centres(preds)
        out = []
        for res in results:
            gt_inds = res.gt_inds if hasattr(res, "gt_inds") else res["gt_inds"]
            pos = (gt_inds > 0).nonzero().view(-1)
            item = {"centers": centres[pos], "gt_index": gt_inds[pos] - 1, "level": levels[pos]}
            overlaps = getattr(res, "max_overlaps", None)
            if overlaps is not None:
                item["score"] = overlaps[pos]
            out.append(item)
        return out

    def _prior_centres(self, preds: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, 2) centres of one image's priors in input pixels (the assigner's view) and their levels (P,)."""
        sizes = [p.shape[2:] for p in preds]
        priors = self.math.priors(sizes, preds[0].device)
        shift = CENTRE_OFFSET.get(self.family, 0.0)
        centres = [(p[:, :2] + p[:, 2:]) / 2 if p.shape[1] == 4 else p[:, :2] + shift * s
                   for p, s in zip(priors, self.head.stride.tolist())]
        levels = [torch.full((len(c),), i, dtype=torch.long, device=c.device) for i, c in enumerate(centres)]
        return torch.cat(centres), torch.cat(levels)
