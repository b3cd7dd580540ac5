"""Pascal VOC XML -> YOLO labels: one file at a time, a folder of XML, or a VOCdevkit laid out as YOLOv5 does."""
from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from tqdm import tqdm

from utils.cli import UserValueError
from utils.converters.common import LOGGER, under, write_labels, yolo_row

YOLOV5_SETS = (("2012", "train"), ("2012", "val"), ("2007", "train"), ("2007", "val"), ("2007", "test"))


def voc_rows(xml_file: Path, names: list[str], skip_difficult: bool = False, one_based: bool = False,
             unknown: str = "error", fmt: str = "g") -> list[str]:
    """YOLO rows of one VOC XML. `one_based`: VOC's 1-based pixel centres (YOLOv5 subtracts 1);
    `unknown`: 'error' or 'skip' for a class not in `names`. A box with no area (xmax <= xmin or ymax <= ymin, as a
    single click draws) is not written; a warning names the file, the object (1-based), its class and coordinates."""
    try:
        root = ET.parse(xml_file).getroot()
        W, H = (float(root.find(f"size/{k}").text) for k in ("width", "height"))
    except (ET.ParseError, AttributeError, TypeError, ValueError) as e:
        raise UserValueError(f"{xml_file}: not a VOC annotation with size/width and size/height ({e})") from None
    lines = []
    for k, obj in enumerate(root.iter("object"), 1):
        name = (obj.findtext("name") or "").strip()
        if name not in names:
            if unknown == "skip":
                continue
            raise UserValueError(f"{xml_file}: object {k}: class '{name}' not in names {names}")
        if skip_difficult and int(obj.findtext("difficult", "0") or 0) == 1:
            continue
        try:
            x1, y1, x2, y2 = (float(obj.find(f"bndbox/{c}").text) for c in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            raise UserValueError(f"{xml_file}: object {k}: bndbox needs numeric xmin, ymin, xmax, ymax") from None
        if x2 <= x1 or y2 <= y1:
            LOGGER.warning(f"{xml_file}: object {k} (class '{name}') has no area, xmin {x1:g} ymin {y1:g} "
                           f"xmax {x2:g} ymax {y2:g}: not written")
            continue
        off = 1.0 if one_based else 0.0
        box = ((x1 + x2) / 2 - off) / W, ((y1 + y2) / 2 - off) / H, (x2 - x1) / W, (y2 - y1) / H
        lines.append(yolo_row(names.index(name), box, fmt))
    return lines


def voc_to_yolo(xml_dir: str | Path, out_dir: str | Path, names: list[str], skip_difficult: bool = False) -> int:
    """Convert a folder of Pascal VOC XML files to YOLO labels (%g rows); returns the number of files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(Path(xml_dir).glob("*.xml"))
    return write_labels({out / f"{xf.stem}.txt": voc_rows(xf, names, skip_difficult) for xf in files})


def convert_voc(root: Path, names: list[str], devkit: str = "images/VOCdevkit",
                sets: list[list[str]] | None = None) -> None:
    """YOLOv5's VOC layout: each (year, image set) of the devkit -> images/{set}{year}, labels/{set}{year};
    difficult objects and unknown classes skipped, 1-based pixel centres, rows as YOLOv5 writes them."""
    kit = under(root, devkit, "voc converter, devkit")
    for year, image_set in sets or YOLOV5_SETS:
        year = str(year)
        ids = under(kit, f"VOC{year}/ImageSets/Main/{image_set}.txt", "voc converter").read_text().split()
        images, labels = root / "images" / f"{image_set}{year}", root / "labels" / f"{image_set}{year}"
        images.mkdir(parents=True, exist_ok=True)
        rows = {}
        for i in tqdm(ids, desc=f"{image_set}{year}"):
            rows[labels / f"{i}.txt"] = voc_rows(kit / f"VOC{year}/Annotations/{i}.xml", names,
                                                 skip_difficult=True, one_based=True, unknown="skip", fmt="str")
            shutil.move(kit / f"VOC{year}/JPEGImages/{i}.jpg", images / f"{i}.jpg")
        write_labels(rows)
