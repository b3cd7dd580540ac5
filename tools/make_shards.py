"""Write a YOLO dataset as WebDataset tar shards (streamed training for data larger than a disk).

    python tools/make_shards.py --data data/shapes.yaml --out shards/ --shard-size 100
    python tools/make_shards.py --data ../shared/datasets/coco128/coco128.yaml --out coco128-shards --shard-size 16
    python tools/make_shards.py --data coco.yaml --out /mnt/shards --base-url https://data.example/coco/

Each sample is `<key>.jpg` (the original image bytes) + `<key>.txt` (its labels, checked as training checks them;
images the checks refuse are left out and reported). Per split: `<split>-000000.tar ...` and `<split>-index.json`
(sample counts), plus OUT/data.yaml naming the train shards by brace pattern (`train: train-{000000..000003}.tar`,
or URLs under --base-url) and the other splits as they were. Train with `python train.py --data OUT/data.yaml`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from utils.cli import UserValueError  # noqa: E402
from utils.downloads import ensure_dataset  # noqa: E402
from utils.data.shards.write import write_shards  # noqa: E402


def make_shards(data: str, out: Path, shard_size: int, splits: list[str], base_url: str = "") -> Path:
    """Shards of `splits` of the data YAML in `out`, and out/data.yaml; returns that YAML's path."""
    cfg = ensure_dataset(data)
    out.mkdir(parents=True, exist_ok=True)
    raw: dict = {"path": ".", "names": list(cfg.names)}
    for split in ("train", "val", "test"):
        sources = getattr(cfg, split)
        if not sources:
            continue
        if split not in splits:
            raw[split] = [str(s) for s in sources]
            continue
        if any(isinstance(s, str) for s in sources):
            raise UserValueError(f"{cfg.yaml_file}: split '{split}' is already shards")
        res = write_shards([str(s) for s in sources], out, f"{split}-", shard_size, cfg.names, cfg.nc)
        print(f"{split}: {res.samples} samples in {len(res.shards)} shards ({res.skipped} images skipped), "
              f"index {res.index}")
        raw[split] = (base_url.rstrip("/") + "/" + res.pattern) if base_url else res.pattern
    f = out / "data.yaml"
    f.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    print(f"data YAML: {f}")
    return f


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="data YAML (or dataset folder) to shard")
    p.add_argument("--out", required=True, help="folder for the shards, their index and data.yaml")
    p.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    p.add_argument("--splits", nargs="+", default=["train"], choices=["train", "val", "test"],
                   help="splits to shard (the others stay folders: validation reads a folder)")
    p.add_argument("--base-url", default="", help="name the shards in data.yaml by URL under this prefix")
    a = p.parse_args(argv)
    make_shards(a.data, Path(a.out), a.shard_size, a.splits, a.base_url)
    return 0


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
