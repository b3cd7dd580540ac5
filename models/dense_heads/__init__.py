"""The one-stage mmdetection families as YAML head rows: RetinaHead, FCOSHead, ATSSHead, GFLHead, YOLOXHead."""
from models.dense_heads.anchor_heads import ATSSHead, GFLHead, RetinaHead  # noqa: F401  (registers the rows)
from models.dense_heads.point_heads import FCOSHead, YOLOXHead  # noqa: F401
