"""Shared test-time path of the anchor and point heads (mmdetection's BaseDenseHead._predict_by_feat_single)."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch

from utils.dense.predict import Detections, bbox_post_process, filter_scores_and_topk


def predict_single(cls_scores: Sequence[torch.Tensor], bbox_preds: Sequence[torch.Tensor],
                   priors: Sequence[torch.Tensor], num_classes: int, cfg: Mapping[str, Any],
                   decode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                   score_factors: Sequence[torch.Tensor] | None = None, with_nms: bool = True) -> Detections:
    """One image: per-level maps (A*C, H, W), (A*4, H, W) [, (A, H, W)] and priors -> (boxes, scores, labels)."""
    nms_pre = cfg.get("nms_pre", -1)
    score_thr = cfg.get("score_thr", 0)
    boxes, scores, labels, factors, kept_priors = [], [], [], [], []
    for lvl, (cls, reg, pri) in enumerate(zip(cls_scores, bbox_preds, priors)):
        reg = reg.permute(1, 2, 0).reshape(-1, 4)
        prob = cls.permute(1, 2, 0).reshape(-1, num_classes).sigmoid()
        s, lab, keep, kept = filter_scores_and_topk(prob, score_thr, nms_pre, {"bbox_pred": reg, "priors": pri})
        boxes.append(kept["bbox_pred"])
        kept_priors.append(kept["priors"])
        scores.append(s)
        labels.append(lab)
        if score_factors is not None:
            factors.append(score_factors[lvl].permute(1, 2, 0).reshape(-1).sigmoid()[keep])
    decoded = decode(torch.cat(kept_priors), torch.cat(boxes))
    return bbox_post_process(decoded, torch.cat(scores), torch.cat(labels), cfg,
                             torch.cat(factors) if score_factors is not None else None, with_nms)


def per_image(maps: Sequence[torch.Tensor], i: int) -> list[torch.Tensor]:
    """Image i of each level's (N, C, H, W) map, detached."""
    return [m[i].detach() for m in maps]
