"""Data YAML (YOLOv5 format): dataset root, splits, class names. Parsing only: finding the image and label files is
utils/data/files.py, installing or generating a dataset is utils.downloads.ensure_dataset.

Keys: `path` (root; relative to the YAML's folder), `train`/`val`/`test` (a folder of images, a .txt
list of image paths, or a list of either; relative to `path`), `names` (list or {id: name}), optional
`nc`, optional `download` (declarative, see utils/downloads/spec.py; `ensure_dataset` runs it). A YAML with
`generate: shapes` describes the embedded demo dataset, which ensure_dataset writes on first use when its folder is
absent (see utils/data/demo_data.py). A bare name (`coco.yaml`) not found in the working directory is looked up
in data/ (utils/resolve.py); a folder laid out by hand may stand for a YAML (see `folder_yaml`).
A split may name WebDataset tar shards by brace pattern, local or http(s) (`train: shards/train-{000000..000127}.tar`,
see utils/data/shards/spec.py); those entries stay strings.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from utils.cli import UserFileNotFoundError, UserKeyError, UserTypeError, UserValueError
from utils.resolve import resolve_file
from utils.data.shards.spec import is_shard_source, is_url

SPLITS = ("train", "val", "test")


@dataclass
class DataConfig:
    """A parsed data YAML with resolved split paths."""
    path: Path
    train: list[Path | str] | None  # str: a tar shard pattern (utils/shards)
    val: list[Path | str] | None
    test: list[Path | str] | None
    names: list[str]
    nc: int
    yaml_file: Path
    raw: dict = field(default_factory=dict)

    def __getitem__(self, key: str):
        """Dict-style access (`data['train']`) for code written against YOLOv5's data dict."""
        return getattr(self, key)

    def sources(self, split: str) -> list[str]:
        """The image sources of `split`, as the loaders take them; an error naming the YAML when it has none."""
        if split not in SPLITS:
            raise UserValueError(f"unknown split {split!r}: expected one of {SPLITS}")
        found = getattr(self, split)
        if not found:
            raise UserValueError(f"{self.yaml_file}: no `{split}:` split")
        return [str(p) for p in found]


def _parse_names(raw: dict, yaml_file: Path) -> list[str]:
    names = raw.get("names")
    if names is None:
        if "nc" in raw:
            return [f"class{i}" for i in range(int(raw["nc"]))]
        raise UserKeyError(f"{yaml_file}: key 'names' is missing")
    if isinstance(names, dict):
        keys = sorted(names)
        if keys != list(range(len(keys))):
            raise UserValueError(f"{yaml_file}: key 'names' must map ids 0..n-1, got ids {keys}")
        return [str(names[k]) for k in keys]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise UserTypeError(f"{yaml_file}: key 'names' must be a list or a dict, got {type(names).__name__}")


def _resolve_split(raw: dict, key: str, root: Path, yaml_file: Path,
                   must_exist: bool) -> list[Path | str] | None:
    value = raw.get(key)
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if is_shard_source(str(item)):  # tar shards stay strings (URLs are not paths); checked when read
            out.append(str(item) if is_url(str(item)) or Path(str(item)).is_absolute() else str(root / str(item)))
            continue
        p = Path(str(item))
        p = p if p.is_absolute() else root / p
        if must_exist and not p.exists():
            hint = (" (the YAML has a `download:` section: train.py and val.py install it, as does"
                    " utils.downloads.ensure_dataset)" if raw.get("download") else "")
            raise UserFileNotFoundError(f"{yaml_file}: key '{key}': path not found: {p}{hint}")
        out.append(p)
    return out


def folder_yaml(folder: Path) -> tuple[dict, Path]:
    """(raw YAML dict, file named in messages) of a dataset folder laid out by hand: its data.yaml (or its
    only *.yaml), else images/{train,val} (or {train,valid,val}/images) with names from classes.txt."""
    own = [folder / "data.yaml"] if (folder / "data.yaml").is_file() else sorted(folder.glob("*.yaml"))
    if len(own) == 1:
        return _read_yaml(own[0]), own[0]
    if len(own) > 1:
        raise UserValueError(f"{folder}: several YAML files {[p.name for p in own]}; pass one with --data")
    names_file = next((folder / n for n in ("classes.txt", "names.txt") if (folder / n).is_file()), None)
    if names_file is None:
        raise UserFileNotFoundError(f"{folder}: a dataset folder needs a data.yaml, or a classes.txt (one name a line)")
    raw: dict = {"path": str(folder), "names": [ln.strip() for ln in names_file.read_text().splitlines() if ln.strip()]}
    layouts = (("train", ("images/train", "train/images")), ("val", ("images/val", "valid/images", "val/images")),
               ("test", ("images/test", "test/images")))
    for key, choices in layouts:
        found = next((c for c in choices if (folder / c).is_dir()), None)
        if found:
            raw[key] = found
    return raw, names_file


def _read_yaml(yaml_file: Path) -> dict:
    with open(yaml_file, encoding="utf-8") as f:
        try:
            raw = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise UserValueError(f"{yaml_file}: invalid YAML ({e})") from e
    if not isinstance(raw, dict):
        raise UserValueError(f"{yaml_file}: expected a mapping at the top level")
    return raw


def load_data_yaml(path: str | Path, check: bool = True) -> DataConfig:
    """Parse a data YAML (a path, a name found in data/, or a dataset folder); with `check`, the train/val
    paths must exist (error names key and path)."""
    if Path(path).is_dir():
        raw, yaml_file = folder_yaml(Path(path).resolve())
    else:
        yaml_file = resolve_file(path, "data").resolve()
        raw = _read_yaml(yaml_file)
    root = Path(str(raw.get("path") or "."))
    root = (root if root.is_absolute() else yaml_file.parent / root).resolve()
    names = _parse_names(raw, yaml_file)
    nc = int(raw.get("nc", len(names)))
    if nc != len(names):
        raise UserValueError(f"{yaml_file}: key 'nc' is {nc} but 'names' has {len(names)} entries")
    for key in ("train", "val"):
        if check and raw.get(key) is None:
            raise UserKeyError(f"{yaml_file}: key '{key}' is missing")
    splits = {k: _resolve_split(raw, k, root, yaml_file, check and k != "test") for k in SPLITS}
    return DataConfig(path=root, names=names, nc=nc, yaml_file=yaml_file, raw=raw, **splits)
