"""Label converters by name, for a data YAML's `download: convert:` (and tools/convert.py).

A converter is `fn(root, names, **args)`: it turns a freshly unpacked dataset at `root` (the staging folder,
before it is renamed into place) into YOLO labels, `names` being the YAML's class names and `args` the YAML's
`convert: args:`. Registered here, by name; a YAML can name only these, and no code from a YAML is run.
"""
from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from types import MappingProxyType
from typing import Callable

from utils.cli import UserKeyError, UserTypeError
from utils.converters.argoverse import convert_argoverse
from utils.converters.coco import coco_to_yolo, convert_coco, yolo_to_coco
from utils.converters.sku110k import convert_sku110k
from utils.converters.visdrone import convert_visdrone
from utils.converters.voc import convert_voc, voc_to_yolo
from utils.converters.wheat import convert_wheat
from utils.converters.xview import convert_xview

__all__ = ["CONVERTERS", "get_converter", "check_converter_args", "run_converter",
           "coco_to_yolo", "yolo_to_coco", "voc_to_yolo"]

CONVERTERS: MappingProxyType[str, Callable[..., None]] = MappingProxyType({
    "voc": convert_voc,              # Pascal VOC XML (VOCdevkit)
    "coco": convert_coco,            # COCO-style json (Objects365)
    "argoverse": convert_argoverse,  # Argoverse-HD json
    "wheat": convert_wheat,          # Global Wheat csv
    "sku110k": convert_sku110k,      # SKU-110K csv
    "visdrone": convert_visdrone,    # VisDrone txt
    "xview": convert_xview,          # xView geojson
})


def get_converter(name: str) -> Callable[..., None]:
    """The converter registered as `name`; an error listing the close matches and all names."""
    if name not in CONVERTERS:
        close = difflib.get_close_matches(str(name), CONVERTERS, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserKeyError(f"unknown converter {name!r}{hint}; registered: {', '.join(CONVERTERS)}")
    return CONVERTERS[name]


def check_converter_args(name: str, args: dict) -> None:
    """Raise unless `args` fit the converter's parameters (unknown or missing ones named)."""
    fn = get_converter(name)
    try:
        inspect.signature(fn).bind(Path("."), [], **args)
    except TypeError as e:
        raise UserTypeError(f"converter {name!r}: {e}; parameters: {list(inspect.signature(fn).parameters)[2:]}") from None


def run_converter(name: str, root: Path, names: list[str], args: dict) -> None:
    """Run the converter `name` on the dataset at `root`."""
    check_converter_args(name, args)
    get_converter(name)(Path(root), list(names), **args)
