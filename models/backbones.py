"""Feature backbones from timm or torchvision as YAML rows, and `Select` to take one of their outputs.

    [-1, 1, TimmBackbone, [resnet18, [2, 3, 4]]]                          # 0: a list of 3 maps
    [-1, 1, TorchvisionBackbone, [resnet18, [layer2, layer3, layer4]]]    # or torchvision node names
    [0, 1, Select, [0]]                                                   # P3 of row 0, and so on

Args of a backbone row: [name, outputs, (weights file)]. Its output channels are a list read from the
backbone itself (timm `feature_info`, or a forward of torchvision's extractor on the meta device, which
costs no memory or compute); `Select` hands the neck the channels of the map it picks, so
`width_multiple` scales the neck as usual while the backbone keeps its own widths. Random
initialisation unless a local weights file is named: nothing is downloaded. timm is optional: a YAML that
needs it says so when it is missing. Weights: timm's own key layout (what timm saves) for TimmBackbone,
torchvision's for TorchvisionBackbone; a classifier in the file is ignored.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from models.convnext_weights import BackboneWeightsError, read_state_dict
from models.registry import Layout, Row, register

PROBE_SIZE = 256  # input side of the meta-device forward that measures torchvision feature channels


class OptionalDependencyError(ImportError, ValueError):
    """A YAML row needs a package that is not installed (a ValueError too, so parse_model names the row)."""


def import_optional(package: str, needed_by: str) -> Any:
    try:
        return importlib.import_module(package)
    except ImportError:
        raise OptionalDependencyError(f"{needed_by} needs the optional package '{package}', which is not installed "
                                      f"(pip install {package})") from None


def _backbone_args(row: Row, kind: str) -> tuple[str, list, str | None]:
    if not 2 <= len(row.args) <= 3:
        raise ValueError(f"{kind} takes [name, outputs, (weights file)], got {row.args}")
    name, outputs = row.args[0], row.args[1]
    weights = row.args[2] if len(row.args) == 3 else None
    if not isinstance(name, str) or not isinstance(outputs, list) or not outputs:
        raise ValueError(f"{kind} takes [name, outputs, (weights file)] with a model name and a non-empty list, "
                         f"got {row.args}")
    if row.n != 1:
        raise ValueError(f"{kind} rows take number 1, got {row.n}")
    if len(row.c_in) != 1 or isinstance(row.c_in[0], list):
        raise ValueError(f"{kind} takes one image tensor as input")
    return name, outputs, weights


def _unknown(kind: str, name: str, known: Sequence[str]) -> ValueError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return ValueError(f"{kind}: unknown model '{name}'" + (f"; did you mean {', '.join(close)}?" if close else ""))


# ---------------------------------------------------------------------------------------------- timm
def _create_timm(name: str, out_indices: list, c1: int) -> nn.Module:
    timm = import_optional("timm", "TimmBackbone")
    if not timm.is_model(name):
        raise _unknown("TimmBackbone", name, timm.list_models())
    try:
        return timm.create_model(name, pretrained=False, features_only=True, out_indices=tuple(out_indices),
                                 in_chans=c1)
    except (IndexError, AssertionError, RuntimeError) as e:
        raise ValueError(f"TimmBackbone {name} cannot return features {out_indices}: {e!r}") from None


def timm_layout(row: Row) -> Layout:
    name, out_indices, weights = _backbone_args(row, "TimmBackbone")
    with torch.device("meta"):
        probe = _create_timm(name, out_indices, row.c_in[0])
    return Layout([row.c_in[0], name, list(out_indices), weights], list(probe.feature_info.channels()))


def _check_keys(source: str, sd: dict, expected: dict[str, torch.Size], optional: Callable[[str], bool]) -> dict:
    """Drop `optional` keys (a classifier); error on other missing, unexpected or misshapen tensors."""
    sd = {k: v for k, v in sd.items() if not optional(k)}
    missing = [k for k in expected if k not in sd and not optional(k)]
    extra = [k for k in sd if k not in expected]
    if missing or extra:
        raise BackboneWeightsError(f"{source}: does not fit the backbone: missing {missing[:5]} "
                                   f"({len(missing)} in all), unexpected {extra[:5]} ({len(extra)} in all)")
    for k, v in sd.items():
        if v.shape != expected[k]:
            raise BackboneWeightsError(f"{source}: '{k}' has shape {tuple(v.shape)} but the backbone's has "
                                       f"shape {tuple(expected[k])}")
    return sd


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    names = getattr(model, "pretrained_cfg", {}).get("classifier") or ()
    return tuple(f"{n}." for n in ([names] if isinstance(names, str) else names))


@register(layout=timm_layout)
class TimmBackbone(nn.Module):
    """Any timm model built with `features_only`; forward returns the list of maps at `out_indices`."""

    keep_own_init = True  # initialize_weights leaves its BatchNorm settings alone

    def __init__(self, c1: int, name: str, out_indices: Sequence[int], weights: str | None = None):
        super().__init__()
        self.body = _create_timm(name, list(out_indices), c1)
        if weights:
            self._load(name, c1, weights)
        self.channels = list(self.body.feature_info.channels())
        self.reductions = list(self.body.feature_info.reduction())

    def _load(self, name: str, c1: int, weights: str) -> None:
        """Check a timm-layout file against the full model (on meta), then let timm load it into the body."""
        timm = import_optional("timm", "TimmBackbone")
        with torch.device("meta"):
            full = timm.create_model(name, pretrained=False, in_chans=c1)
        expected = {k: v.shape for k, v in full.state_dict().items()}
        head = _classifier_prefixes(full)
        sd = _check_keys(weights, read_state_dict(weights), expected, lambda k: bool(head) and k.startswith(head))
        self.body = timm.create_model(name, pretrained=True, features_only=True, in_chans=c1,
                                      out_indices=tuple(self.body.feature_info.out_indices),
                                      pretrained_cfg_overlay={"state_dict": sd})

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(x))


# ------------------------------------------------------------------------------------------ torchvision
def _create_torchvision(name: str, nodes: list[str], weights: str | None = None) -> nn.Module:
    tv = import_optional("torchvision", "TorchvisionBackbone")
    from torchvision.models.feature_extraction import create_feature_extractor

    if name not in tv.models.list_models():
        raise _unknown("TorchvisionBackbone", name, tv.models.list_models())
    model = tv.models.get_model(name, weights=None)
    try:
        body = create_feature_extractor(model, return_nodes={str(n): str(n) for n in nodes})
    except ValueError as e:
        raise ValueError(f"TorchvisionBackbone {name}: {e}") from None
    if weights:
        expected = {k: v.shape for k, v in model.state_dict().items()}
        own = set(body.state_dict())  # what the extractor keeps; the rest (the classifier) is optional
        sd = _check_keys(weights, read_state_dict(weights), expected, lambda k: k not in own)
        model.load_state_dict(sd, strict=False)
        body = create_feature_extractor(model, return_nodes={str(n): str(n) for n in nodes})
    return body


def torchvision_layout(row: Row) -> Layout:
    name, nodes, weights = _backbone_args(row, "TorchvisionBackbone")
    with torch.device("meta"):
        probe = _create_torchvision(name, nodes)
        try:
            outs = probe(torch.empty(1, row.c_in[0], PROBE_SIZE, PROBE_SIZE))
        except RuntimeError as e:
            raise ValueError(f"TorchvisionBackbone {name} fails on a {row.c_in[0]}-channel input: {e}") from None
    return Layout([row.c_in[0], name, [str(n) for n in nodes], weights], [int(o.shape[1]) for o in outs.values()])


@register(layout=torchvision_layout)
class TorchvisionBackbone(nn.Module):
    """A torchvision model cut at the named graph nodes (feature_extraction); forward returns their maps."""

    keep_own_init = True  # initialize_weights leaves its BatchNorm settings alone

    def __init__(self, c1: int, name: str, nodes: Sequence[str], weights: str | None = None):
        super().__init__()
        self.nodes = [str(n) for n in nodes]
        self.body = _create_torchvision(name, self.nodes, weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(x).values())


# ------------------------------------------------------------------------------------------------ Select
def select_layout(row: Row) -> Layout:
    """[index] -> Select(index); output channels are those of the picked map."""
    if len(row.args) != 1 or not isinstance(row.args[0], int):
        raise ValueError(f"Select takes [index], got {row.args}")
    if len(row.c_in) != 1 or not isinstance(row.c_in[0], list):
        raise ValueError("Select takes one row that outputs a list of feature maps (TimmBackbone, "
                         f"TorchvisionBackbone); its input is a single map with {row.c_in} channels")
    k, maps = row.args[0], row.c_in[0]
    if not -len(maps) <= k < len(maps):
        raise ValueError(f"Select index {k} out of range for {len(maps)} feature maps (channels {maps})")
    return Layout([k], maps[k])


@register(layout=select_layout, takes_list=True)
class Select(nn.Module):
    """Pick one tensor out of a list of feature maps."""

    def __init__(self, index: int):
        super().__init__()
        self.index = index

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        return x[self.index]
