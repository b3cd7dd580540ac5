"""Label format converters: COCO json -> YOLO, YOLO -> COCO json, VOC XML -> YOLO.

  python tools/convert.py coco2yolo --json instances.json --out labels/ [--names-out names.txt]
  python tools/convert.py yolo2coco --images images/ --labels labels/ --names a b c --out out.json
  python tools/convert.py voc2yolo --xml Annotations/ --out labels/ --names a b c
YOLO rows are `class cx cy w h` normalised, written with %g (6 significant digits, as coco128).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.data_yaml import IMG_FORMATS  # noqa: E402

LOGGER = logging.getLogger("yolo.data")


def _row(cls: int, cx: float, cy: float, w: float, h: float) -> str:
    return f"{cls} {cx:g} {cy:g} {w:g} {h:g}"


def coco_to_yolo(json_file: str | Path, out_dir: str | Path, skip_crowd: bool = True) -> list[str]:
    """Write one YOLO .txt per image (category ids mapped to 0..n-1 by sorted id); returns the names."""
    data = json.loads(Path(json_file).read_text())
    cats = sorted(data["categories"], key=lambda c: c["id"])
    cls_of = {c["id"]: i for i, c in enumerate(cats)}
    images = {im["id"]: im for im in data["images"]}
    rows: dict[int, list[str]] = {i: [] for i in images}
    for k, a in enumerate(data["annotations"]):
        if skip_crowd and a.get("iscrowd", 0):
            continue
        im = images.get(a["image_id"])
        if im is None:
            raise ValueError(f"{json_file}: annotation {k} refers to unknown image_id {a['image_id']}")
        x, y, w, h = a["bbox"]
        if w <= 0 or h <= 0:
            continue
        W, H = im["width"], im["height"]
        rows[a["image_id"]].append(_row(cls_of[a["category_id"]], (x + w / 2) / W, (y + h / 2) / H, w / W, h / H))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for i, lines in rows.items():
        if lines:
            (out / f"{Path(images[i]['file_name']).stem}.txt").write_text("\n".join(lines) + "\n")
    return [c["name"] for c in cats]


def yolo_to_coco(images_dir: str | Path, labels_dir: str | Path, names: list[str]) -> dict:
    """COCO dict (bbox in pixels, category ids 1..n) from YOLO labels; image sizes read from the files."""
    import cv2
    files = sorted(p for p in Path(images_dir).iterdir() if p.suffix[1:].lower() in IMG_FORMATS)
    out = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)]}
    for img_id, f in enumerate(files, 1):
        im = cv2.imread(str(f))
        if im is None:
            raise ValueError(f"{f}: not a readable image")
        H, W = im.shape[:2]
        out["images"].append({"id": img_id, "file_name": f.name, "width": W, "height": H})
        lab = Path(labels_dir) / f"{f.stem}.txt"
        for r, line in enumerate(lab.read_text().splitlines() if lab.exists() else [], 1):
            v = line.split()
            if len(v) != 5:
                raise ValueError(f"{lab}: row {r} has {len(v)} columns, expected 5")
            c, cx, cy, w, h = int(v[0]), *map(float, v[1:])
            box = [(cx - w / 2) * W, (cy - h / 2) * H, w * W, h * H]
            out["annotations"].append({"id": len(out["annotations"]) + 1, "image_id": img_id, "category_id": c + 1,
                                       "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    return out


def voc_to_yolo(xml_dir: str | Path, out_dir: str | Path, names: list[str], skip_difficult: bool = False) -> int:
    """Convert Pascal VOC XML files to YOLO labels; returns the number of files written.

    A box with no area (xmax <= xmin or ymax <= ymin, e.g. drawn with a single click) is not written; a warning
    names the file, the object (1-based), its class and its coordinates."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for xf in sorted(Path(xml_dir).glob("*.xml")):
        root = ET.parse(xf).getroot()
        W, H = (float(root.find(f"size/{k}").text) for k in ("width", "height"))
        lines = []
        for k, obj in enumerate(root.iter("object"), 1):
            name = obj.find("name").text.strip()
            if name not in names:
                raise ValueError(f"{xf}: class '{name}' not in names {names}")
            if skip_difficult and int(obj.findtext("difficult", "0")):
                continue
            b = [float(obj.find(f"bndbox/{c}").text) for c in ("xmin", "ymin", "xmax", "ymax")]
            if b[2] <= b[0] or b[3] <= b[1]:
                LOGGER.warning(f"{xf}: object {k} (class '{name}') has no area, xmin {b[0]:g} ymin {b[1]:g} "
                               f"xmax {b[2]:g} ymax {b[3]:g}: not written")
                continue
            lines.append(_row(names.index(name), (b[0] + b[2]) / 2 / W, (b[1] + b[3]) / 2 / H,
                              (b[2] - b[0]) / W, (b[3] - b[1]) / H))
        (out / f"{xf.stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
        n += 1
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("coco2yolo", help="COCO json -> YOLO .txt labels")
    a.add_argument("--json", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--keep-crowd", action="store_true")
    b = sub.add_parser("yolo2coco", help="YOLO labels -> COCO json")
    b.add_argument("--images", required=True)
    b.add_argument("--labels", required=True)
    b.add_argument("--names", nargs="+", required=True)
    b.add_argument("--out", required=True)
    c = sub.add_parser("voc2yolo", help="Pascal VOC XML -> YOLO .txt labels")
    c.add_argument("--xml", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--names", nargs="+", required=True)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.cmd == "coco2yolo":
        names = coco_to_yolo(args.json, args.out, skip_crowd=not args.keep_crowd)
        print(f"wrote labels for {len(names)} classes to {args.out}")
    elif args.cmd == "yolo2coco":
        Path(args.out).write_text(json.dumps(yolo_to_coco(args.images, args.labels, args.names)))
        print(f"wrote {args.out}")
    else:
        print(f"wrote {voc_to_yolo(args.xml, args.out, args.names)} label files to {args.out}")


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
