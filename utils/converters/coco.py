"""COCO json <-> YOLO labels; `convert_coco` converts COCO-style sets (Objects365) as YOLOv5's script does."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from tqdm import tqdm

from utils.cli import UserValueError
from utils.converters.common import label_path, under, write_labels, xyxy_to_xywhn, yolo_row
from utils.data.files import IMG_FORMATS


def _load(json_file: Path) -> dict:
    try:
        data = json.loads(Path(json_file).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserValueError(f"{json_file}: not a readable COCO json ({e})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise UserValueError(f"{json_file}: key '{key}' is missing or not a list")
    return data


def coco_rows(data: dict, json_file: Path, cls_of: dict[int, int], skip_crowd: bool, clip: bool,
              fmt: str) -> dict[int, list[str]]:
    """YOLO rows per image id; boxes with no area are left out."""
    images = {im["id"]: im for im in data["images"]}
    rows: dict[int, list[str]] = {i: [] for i in images}
    for k, a in enumerate(data["annotations"]):
        if skip_crowd and a.get("iscrowd", 0):
            continue
        im = images.get(a["image_id"])
        if im is None:
            raise UserValueError(f"{json_file}: annotation {k} refers to unknown image_id {a['image_id']}")
        if a["category_id"] not in cls_of:
            raise UserValueError(f"{json_file}: annotation {k} has unknown category_id {a['category_id']}")
        x, y, w, h = a["bbox"]
        if w <= 0 or h <= 0:
            continue
        box = xyxy_to_xywhn(x, y, x + w, y + h, im["width"], im["height"], clip=clip)
        rows[a["image_id"]].append(yolo_row(cls_of[a["category_id"]], box, fmt))
    return rows


def coco_to_yolo(json_file: str | Path, out_dir: str | Path, skip_crowd: bool = True) -> list[str]:
    """Write one YOLO .txt per image (category ids mapped to 0..n-1 by sorted id); returns the names."""
    data = _load(Path(json_file))
    cats = sorted(data["categories"], key=lambda c: c["id"])
    rows = coco_rows(data, Path(json_file), {c["id"]: i for i, c in enumerate(cats)}, skip_crowd, False, "g")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {im["id"]: im["file_name"] for im in data["images"]}
    write_labels({out / f"{Path(files[i]).stem}.txt": lines for i, lines in rows.items() if lines})
    return [c["name"] for c in cats]


def yolo_to_coco(images_dir: str | Path, labels_dir: str | Path, names: list[str]) -> dict:
    """COCO dict (bbox in pixels, category ids 1..n) from YOLO labels; image sizes read from the files."""
    import cv2
    files = sorted(p for p in Path(images_dir).iterdir() if p.suffix[1:].lower() in IMG_FORMATS)
    out = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)]}
    for img_id, f in enumerate(files, 1):
        im = cv2.imread(str(f))
        if im is None:
            raise UserValueError(f"{f}: not a readable image")
        H, W = im.shape[:2]
        out["images"].append({"id": img_id, "file_name": f.name, "width": W, "height": H})
        lab = Path(labels_dir) / f"{f.stem}.txt"
        for r, line in enumerate(lab.read_text().splitlines() if lab.exists() else [], 1):
            v = line.split()
            if len(v) != 5:
                raise UserValueError(f"{lab}: row {r} has {len(v)} columns, expected 5")
            c, cx, cy, w, h = int(v[0]), *map(float, v[1:])
            box = [(cx - w / 2) * W, (cy - h / 2) * H, w * W, h * H]
            out["annotations"].append({"id": len(out["annotations"]) + 1, "image_id": img_id, "category_id": c + 1,
                                       "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    return out


def _flatten(images: Path) -> None:
    """Move every image below `images` to its top level (archives of patches nest them in sub-folders)."""
    for f in sorted(images.rglob("*")):
        if f.parent != images and f.suffix[1:].lower() in IMG_FORMATS:
            shutil.move(f, images / f.name)


def convert_coco(root: Path, names: list[str], sets: list[dict], flatten: bool = True, fmt: str = ".5f") -> None:
    """COCO-json sets, YOLOv5's Objects365 way: each {json, images} -> labels beside `images`; class = the
    category's position in the json, boxes clipped to the image, crowd boxes kept; `flatten` first moves
    nested images to the top of `images`."""
    for i, s in enumerate(sets):
        if not isinstance(s, dict) or set(s) != {"json", "images"}:
            raise UserValueError(f"coco converter: sets[{i}] must be {{json: file, images: folder}}, got {s!r}")
        json_file, images = under(root, s["json"], "coco converter"), under(root, s["images"], "coco converter")
        if flatten:
            _flatten(images)
        data = _load(json_file)
        cls_of = {c["id"]: k for k, c in enumerate(data["categories"])}
        if len(cls_of) != len(names):
            raise UserValueError(f"{json_file}: {len(cls_of)} categories, the data YAML names {len(names)}")
        rows = coco_rows(data, json_file, cls_of, skip_crowd=False, clip=True, fmt=fmt)
        files = {im["id"]: im["file_name"] for im in data["images"]}
        write_labels({label_path(images / Path(files[k]).name): v
                      for k, v in tqdm(rows.items(), desc=f"labels {s['images']}") if v})
