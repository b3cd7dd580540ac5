"""The building parts of mmdetection's one-stage dense heads (RetinaNet, FCOS, ATSS, GFL, YOLOX) as pure,
tested functions and small classes with mmdetection 3.3's semantics. Nothing here holds learnable
parameters; the nn.Module heads live in models/. See docs/dense_parts.md.

- priors.py: AnchorGenerator, MlvlPointGenerator; coders.py: DeltaXYWHBBoxCoder, DistancePointBBoxCoder
- max_iou_assigner.py, atss_assigner.py, simota_assigner.py, fcos_targets.py -> assign_result.AssignResult
- losses/: focal (Focal, QFL, DFL), box (IoU, GIoU, L1, SmoothL1), cross_entropy; overlaps.py: bbox_overlaps
- predict.py (top-k, class-aware NMS, post-processing), registry.py (build_part from YAML mappings)
- retina.py, fcos.py, atss.py, gfl.py, yolox.py: per family loss_by_feat / assign / predict_by_feat from an
  mmdetection-style head config; families.build_family picks one by head type
- yolo_targets.py: YOLO (n, 6) targets -> per-image gt boxes and labels
"""
