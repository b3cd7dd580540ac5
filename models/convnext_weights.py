"""Official ConvNeXt ImageNet checkpoints -> the `ConvNeXt_Block` rows of a YAML model.

The ConvNeXt release stores `{'model': {...}}` with keys `downsample_layers.i.k.*` (the stem or the
LayerNorm + strided conv in front of stage i), `stages.i.j.*` (block j of stage i), `norm.*` (the final
LayerNorm) and `head.*` (the ImageNet classifier). `load_convnext_backbone` places every stage tensor in
the row whose `ConvNeXt_Block` builds stage i (`model.R.downsample.k.*`, `model.R.stage.j.*`), skips the
final norm and the classifier, and refuses a tensor whose shape does not fit.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Union

import torch
import torch.nn as nn

from models.convnext import ConvNeXt_Block

LOGGER = logging.getLogger("yolo")
STATE_KEYS = ("model", "state_dict")  # wrappers a checkpoint file may put around its state dict
BACKBONE_KEY = re.compile(r"^(downsample_layers|stages)\.(\d+)\.(.+)$")
SUBMODULE = {"downsample_layers": "downsample", "stages": "stage"}


class BackboneWeightsError(ValueError):
    """Backbone weights that do not fit the model; the message names the file and the key."""


@dataclass
class LoadReport:
    """What a backbone loader did with each checkpoint key."""

    loaded: list[str] = field(default_factory=list)  # checkpoint keys copied into the model
    skipped: dict[str, str] = field(default_factory=dict)  # checkpoint key -> why it was not used
    missing: list[str] = field(default_factory=list)  # backbone tensors of the model no key filled

    def summary(self) -> str:
        return f"{len(self.loaded)} tensors loaded, {len(self.skipped)} skipped, {len(self.missing)} missing"


def read_state_dict(src: Union[str, Path, Mapping], source: str | None = None) -> dict[str, torch.Tensor]:
    """A flat {name: tensor} from a file (weights_only) or a dict, unwrapping {'model': ...} and 'module.'."""
    source = source or (str(src) if not isinstance(src, Mapping) else "<state dict>")
    if not isinstance(src, Mapping):
        path = Path(src)
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights file not found: {path}")
        try:
            src = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a pickle with code in it, or not a torch file at all
            raise BackboneWeightsError(f"{source}: cannot be read as a weights-only torch file: {e}") from None
    for key in STATE_KEYS:
        if isinstance(src, Mapping) and isinstance(src.get(key), Mapping):
            src = src[key]
            break
    if not isinstance(src, Mapping):
        raise BackboneWeightsError(f"{source}: expected a state dict (or {{'model': state dict}}), "
                                   f"got {type(src).__name__}")
    sd = {k.removeprefix("module."): v for k, v in src.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise BackboneWeightsError(f"{source}: holds no tensors")
    return sd


def convnext_rows(model: nn.Module) -> dict[int, str]:
    """Stage index -> qualified name of the ConvNeXt_Block module that builds it."""
    rows: dict[int, str] = {}
    for name, m in model.named_modules():
        if not isinstance(m, ConvNeXt_Block):
            continue
        args = getattr(m, "args", None)
        if not args:
            raise BackboneWeightsError(f"ConvNeXt_Block '{name}' was not built from a YAML row "
                                       "(no args to read its stage from)")
        stage = int(args[1])
        if stage in rows:
            raise BackboneWeightsError(f"stage {stage} is built by two rows ('{rows[stage]}' and '{name}')")
        rows[stage] = name
    return rows


def _target(key: str, rows: dict[int, str]) -> tuple[str | None, str]:
    """(model key, '') for a backbone key, or (None, why it is skipped)."""
    if key.startswith("head."):
        return None, "classifier head"
    if key.startswith("norm."):
        return None, "final norm of the classifier"
    m = BACKBONE_KEY.match(key)
    if not m:
        return None, "not a ConvNeXt backbone key"
    part, stage, rest = m.group(1), int(m.group(2)), m.group(3)
    if stage not in rows:
        return None, f"no ConvNeXt_Block row builds stage {stage}"
    return f"{rows[stage]}.{SUBMODULE[part]}.{rest}", ""


def load_convnext_backbone(model: nn.Module, weights: Union[str, Path, Mapping], strict: bool = False) -> LoadReport:
    """Copy an official ConvNeXt checkpoint into the model's ConvNeXt_Block rows; returns what was done.

    A shape that does not fit raises `BackboneWeightsError` naming the key and both shapes; with
    `strict`, so do backbone tensors left unfilled and stage keys with no place in the model.
    """
    source = str(weights) if not isinstance(weights, Mapping) else "<state dict>"
    sd = read_state_dict(weights, source)
    rows = convnext_rows(model)
    if not rows:
        raise BackboneWeightsError(f"{source}: the model has no ConvNeXt_Block rows to load into")
    own = model.state_dict()
    report = LoadReport()
    with torch.no_grad():
        for key, value in sd.items():
            target, why = _target(key, rows)
            if target is not None and target not in own:
                target, why = None, f"the model has no {target} (fewer blocks than the checkpoint?)"
            if target is None:
                report.skipped[key] = why
                continue
            if own[target].shape != value.shape:
                raise BackboneWeightsError(f"{source}: '{key}' has shape {tuple(value.shape)} but the model's "
                                           f"'{target}' has shape {tuple(own[target].shape)}")
            own[target].copy_(value)
            report.loaded.append(target)
    done = set(report.loaded)
    prefixes = tuple(f"{name}." for name in rows.values())
    report.missing = [k for k in own if k.startswith(prefixes) and k not in done]
    _check(report, source, strict)
    LOGGER.info(f"{source}: ConvNeXt backbone {report.summary()}")
    return report


def _check(report: LoadReport, source: str, strict: bool) -> None:
    if not report.loaded:
        raise BackboneWeightsError(f"{source}: no key of the official ConvNeXt layout (downsample_layers.i.*, "
                                   f"stages.i.j.*) fits the model; skipped e.g. {list(report.skipped)[:3]}")
    unplaced = [k for k, why in report.skipped.items() if BACKBONE_KEY.match(k)]
    if strict and (report.missing or unplaced):
        raise BackboneWeightsError(f"{source}: strict load: missing {report.missing[:5]}, "
                                   f"not placed {unplaced[:5]}")
