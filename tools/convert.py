"""Label format converters: COCO json -> YOLO, YOLO -> COCO json, VOC XML -> YOLO.

  python tools/convert.py coco2yolo --json instances.json --out labels/ [--names-out names.txt]
  python tools/convert.py yolo2coco --images images/ --labels labels/ --names a b c --out out.json
  python tools/convert.py voc2yolo --xml Annotations/ --out labels/ --names a b c
YOLO rows are `class cx cy w h` normalised, written with %g (6 significant digits, as coco128).
The conversions live in utils/converters/ (shared with the dataset downloads of data/*.yaml).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.converters import coco_to_yolo, voc_to_yolo, yolo_to_coco  # noqa: E402

__all__ = ["coco_to_yolo", "voc_to_yolo", "yolo_to_coco", "main"]


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
    if args.cmd == "coco2yolo":
        names = coco_to_yolo(args.json, args.out, skip_crowd=not args.keep_crowd)
        print(f"wrote labels for {len(names)} classes to {args.out}")
    elif args.cmd == "yolo2coco":
        Path(args.out).write_text(json.dumps(yolo_to_coco(args.images, args.labels, args.names)))
        print(f"wrote {args.out}")
    else:
        print(f"wrote {voc_to_yolo(args.xml, args.out, args.names)} label files to {args.out}")


if __name__ == "__main__":
    main()
