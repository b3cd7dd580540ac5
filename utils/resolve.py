"""Find a config file by name: as given (absolute, or relative to the working directory), else in the project.

`--data coco.yaml`, `--cfg yolov5s` and `--hyp hyp.scratch-low.yaml` work from any folder: a name not found
where the user stands is looked up in the project's folder for its kind (data/, models/, data/hyps/).
"""
from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from utils.cli import UserFileNotFoundError

ROOT = Path(__file__).resolve().parents[1]
SEARCH_DIRS = MappingProxyType({  # kind -> project folders searched, in order
    "data": ("data",),
    "cfg": ("models",),
    "hyp": ("data/hyps", "data"),
})
KIND_NAMES = MappingProxyType({"data": "data YAML", "cfg": "model YAML", "hyp": "hyperparameter file"})


def candidates(name: str | Path, kind: str) -> list[Path]:
    """Every path `name` may mean for `kind`, in the order they are tried."""
    if kind not in SEARCH_DIRS:
        raise ValueError(f"unknown config kind {kind!r}: expected one of {sorted(SEARCH_DIRS)}")
    p = Path(name).expanduser()
    names = [p.name] if p.suffix in (".yaml", ".yml") else [p.name, f"{p.name}.yaml"]
    out = [p if p.is_absolute() else Path.cwd() / p]
    if not p.is_absolute():
        out += [ROOT / d / n for d in SEARCH_DIRS[kind] for n in names]
    seen: list[Path] = []
    for c in out:
        if c not in seen:
            seen.append(c)
    return seen


def resolve_file(name: str | Path, kind: str) -> Path:
    """The first existing candidate of `name` (see `candidates`); an error listing every place looked."""
    tried = candidates(name, kind)
    for c in tried:
        if c.is_file():
            return c
    where = "\n".join(f"  {c}" for c in tried)
    raise UserFileNotFoundError(f"{KIND_NAMES[kind]} not found: {name}\nlooked in:\n{where}")
