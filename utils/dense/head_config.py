"""Reading an mmdetection-style head config: family defaults merged with the YAML's, keys checked, parts built.

Merge rule (mmengine's config inheritance without `_delete_`): a mapping given for a key is merged into the
default mapping when both name the same `type` (or neither names one); a different `type` replaces it.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

from utils.cli import UserKeyError, UserValueError
from utils.dense.registry import PartKeyError, PartValueError, build_part

# keys of an mmdetection head config that shape the nn.Module (convs, norms), not the math here; accepted and left
# for the module that builds the layers
MODULE_KEYS = ("type", "in_channels", "feat_channels", "stacked_convs", "conv_cfg", "norm_cfg", "act_cfg", "init_cfg",
               "conv_bias", "dcn_on_last_conv", "use_depthwise", "centerness_on_reg")
TRAIN_CFG_KEYS = ("assigner", "sampler", "allowed_border", "pos_weight", "debug")


def merge_cfg(default: Any, given: Any) -> Any:
    """`given` merged onto a deep copy of `default` (see the module docstring)."""
    if isinstance(default, Mapping) and isinstance(given, Mapping):
        if "type" in given and given.get("type") != default.get("type"):
            return copy.deepcopy(dict(given))
        out = copy.deepcopy(dict(default))
        for k, v in given.items():
            out[k] = merge_cfg(out[k], v) if k in out else copy.deepcopy(v)
        return out
    return copy.deepcopy(given)


def head_defaults(defaults: Mapping[str, Any], given: Mapping[str, Any], head_type: str, known: Sequence[str],
                  where: str) -> dict:
    """The family's defaults merged with the given head config, whose keys and `type` are checked."""
    if given.get("type", head_type) != head_type:
        raise UserValueError(f"{where}.type: this is the {head_type} config, got type {given['type']!r}")
    check_keys(given, known, where, f"{head_type} config")
    return merge_cfg({**defaults, "type": head_type}, given)


def check_keys(cfg: Mapping[str, Any], known: Sequence[str], where: str, what: str) -> None:
    for key in cfg:
        if key not in known:
            raise UserKeyError(f"{where}.{key}: unknown {what} key; known: {', '.join(known)}")


def check_train_cfg(cfg: Mapping[str, Any] | None, where: str) -> dict:
    """A checked copy of a train_cfg mapping (assigner, sampler, allowed_border, pos_weight, debug)."""
    cfg = dict(cfg or {})
    check_keys(cfg, TRAIN_CFG_KEYS, where, "train_cfg")
    for key in ("allowed_border", "pos_weight"):
        if key in cfg and (isinstance(cfg[key], bool) or not isinstance(cfg[key], (int, float))):
            raise UserValueError(f"{where}.{key}: must be a number, got {cfg[key]!r}")
    return cfg


def build_assigner(train_cfg: Mapping[str, Any], inputs: Sequence[str], where: str) -> Any:
    """The train_cfg's assigner, refused when the head cannot feed it (see each assigner's `inputs`)."""
    if "assigner" not in train_cfg:
        raise UserKeyError(f"{where}: train_cfg has no assigner")
    assigner = build_part("assigner", train_cfg["assigner"], f"{where}.assigner")
    if getattr(assigner, "inputs", None) not in inputs:
        raise PartValueError(f"{where}.assigner.type: this head cannot use {type(assigner).__name__} "
                             f"(it needs {getattr(assigner, 'inputs', '?')}; the head gives {', '.join(inputs)})")
    if "sampler" in train_cfg:
        build_part("sampler", train_cfg["sampler"], f"{where}.sampler")
    return assigner


def number(cfg: Mapping[str, Any], key: str, where: str, integer: bool = False, minimum: float | None = None) -> Any:
    value = cfg[key]
    ok = not isinstance(value, bool) and isinstance(value, int if integer else (int, float))
    if not ok or (minimum is not None and value < minimum):
        need = "an integer" if integer else "a number"
        bound = f" >= {minimum}" if minimum is not None else ""
        raise UserValueError(f"{where}.{key}: must be {need}{bound}, got {value!r}")
    return value


def flag(cfg: Mapping[str, Any], key: str, where: str) -> bool:
    if not isinstance(cfg[key], bool):
        raise UserValueError(f"{where}.{key}: must be true or false, got {cfg[key]!r}")
    return cfg[key]


def part_error(where: str, message: object) -> PartValueError:
    """The error for a bad part or value at `where` (file and key path)."""
    return PartValueError(f"{where}: {message}")


def img_hw(img_size: int | Sequence[int]) -> tuple[int, int]:
    """(h, w) from an int (square) or an (h, w) pair."""
    if isinstance(img_size, int):
        return img_size, img_size
    h, w = img_size
    return int(h), int(w)


__all__ = ["MODULE_KEYS", "PartKeyError", "PartValueError", "build_assigner", "check_keys", "check_train_cfg",
           "flag", "head_defaults", "img_hw", "merge_cfg", "number", "part_error"]
