"""`scales:` in a model YAML: one file for every size, the size picked by a letter (ultralytics 8 style).

    scales:            # [depth_multiple, width_multiple, max_channels]
      n: [0.33, 0.25, 1024]
      s: [0.33, 0.50, 1024]

The letter comes from a `scale:` key, else from the file name as the original guesses it
(`yolov8n.yaml` -> scale `n`; `yolov8n.yaml` not on disk -> `yolov8.yaml` at scale `n`, `yolov8n-p2.yaml`
-> `yolov8-p2.yaml`), else the first scale listed (with a log line). A letter the YAML does not list is
an error naming the file. `max_channels` caps a row's channels before the width multiple is applied.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

LOGGER = logging.getLogger("yolo")

# yolov8n, yolo11s, yolov8x-p6, yolov5n6u: a version number, then the scale letter, then an optional suffix
_NAME = re.compile(r"^(?P<base>.*?\d+)(?P<scale>[a-z])(?P<rest>(?:[-_.].*)?)$")


def split_scale_name(stem: str) -> tuple[str, str] | None:
    """'yolov8n-p2' -> ('yolov8-p2', 'n'); None when the name carries no scale letter."""
    m = _NAME.match(stem)
    if not m or not re.search(r"\d", m["base"]):
        return None
    return m["base"] + m["rest"], m["scale"]


def scale_from_name(path: str | Path) -> str | None:
    """The scale letter in a model file name (yolov8n.yaml -> 'n'), or None."""
    found = split_scale_name(Path(path).stem)
    return found[1] if found else None


def resolve_scale(d: dict, source: str) -> tuple[float, float, int, str | None]:
    """(depth_multiple, width_multiple, max_channels, scale letter) of a model dict; scales: wins when present."""
    scales = d.get("scales")
    if not scales:
        return d.get("depth_multiple", 1.0), d.get("width_multiple", 1.0), d.get("max_channels", 1 << 30), None
    if not isinstance(scales, dict) or not all(isinstance(v, list) and len(v) == 3 for v in scales.values()):
        raise ValueError(f"{source}: `scales:` must map a letter to [depth_multiple, width_multiple, max_channels]")
    scale = d.get("scale")
    if scale is None:
        scale = next(iter(scales))
        LOGGER.warning(f"{source}: no scale given in `scale:` or the file name; using the first, '{scale}'")
    if scale not in scales:
        raise ValueError(f"{source}: scale '{scale}' is not one of the file's scales ({', '.join(map(str, scales))})")
    depth, width, max_channels = scales[scale]
    return depth, width, max_channels, scale
