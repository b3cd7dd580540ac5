"""`ensure_dataset`: the one call train.py and val.py make to get a dataset that is on disk (downloaded from its
`download:` section, or the demo dataset generated for `generate: shapes`)."""
from __future__ import annotations

from pathlib import Path

from utils.data.data_yaml import DataConfig, load_data_yaml
from utils.downloads.install import install
from utils.downloads.spec import parse_download


def missing_split_paths(cfg: DataConfig) -> list[Path]:
    """The train/val paths of `cfg` that do not exist."""
    return [p for key in ("train", "val") for p in (getattr(cfg, key) or [])
            if isinstance(p, Path) and not p.exists()]  # str entries are shard patterns, read when used


def ensure_dataset(data: str | Path | DataConfig | dict, progress: bool = True) -> DataConfig | dict:
    """The checked DataConfig of `data`; as YOLOv5, when its train/val paths do not exist and the YAML has a
    `download:` section, the dataset is installed first (see utils/downloads/install.py); the demo dataset
    (`generate: shapes`) is written on first use. A DataConfig or dict is returned as given."""
    if not isinstance(data, (str, Path)):
        return data
    cfg = load_data_yaml(data, check=False)
    if cfg.raw.get("generate") == "shapes":
        from utils.data.demo_data import ensure_shapes_dataset

        ensure_shapes_dataset(cfg.path)
    if not missing_split_paths(cfg):
        return load_data_yaml(data)  # present: the download section is not even read (YOLOv5 scripts welcome)
    spec = parse_download(cfg.raw.get("download"), str(cfg.yaml_file))
    if spec is not None:
        splits = [p for key in ("train", "val") for p in (getattr(cfg, key) or [])]
        install(spec, cfg.path, cfg.names, splits, cfg.yaml_file, progress=progress)
    return load_data_yaml(data)
