"""Import official ultralytics YOLOv5 `.pt` files without the ultralytics code and without running anything.

Those files pickle whole modules (`models.yolo.Model`, `models.common.Conv`, torch.nn layers). We list
the classes the pickle names by reading its opcodes (nothing is executed), refuse the file if it names
anything outside the model classes, torch.nn layers and tensor storage, and then load it with torch's
own restricted loader (`weights_only=True`) with every model class mapped to an inert stand-in that
only receives its attribute dict. From the stand-ins we keep the tensors, the YAML and the names.
"""
from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path
from typing import Any

import torch

from models.checkpoint import CheckpointError

# Classes that may be stood in for (module prefixes). Anything else in the pickle is refused, except the
# plain-data globals torch's weights_only loader accepts by itself (storages, tensor rebuilders, OrderedDict, set).
STUB_PREFIXES = ("models.yolo.", "models.common.", "models.experimental.", "torch.nn.modules.", "utils.activations.",
                 "argparse.Namespace")
TORCH_SAFE = {"collections.OrderedDict", "__builtin__.set", "builtins.set", "torch._utils._rebuild_tensor_v2",
              "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state", "torch.Size",
              "torch.device", "torch.float16", "torch.float32", "torch.float64", "torch.int64"}


def _numpy_safe() -> list:
    """numpy scalars and dtypes (training checkpoints store best_fitness as one): plain data, allowed as is."""
    import numpy as np
    from numpy.core.multiarray import scalar  # noqa: PLC0415 (numpy 2 keeps this alias)
    allowed = [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), (np.dtype, "numpy.dtype")]
    allowed += [(getattr(np.dtypes, n), f"numpy.dtypes.{n}") for n in dir(np.dtypes) if n.endswith("DType")]
    return allowed


class _Standin:
    """An inert object for a pickled class: it only stores the state it is given."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = {**state[0], **(state[1] or {})}
        self.__dict__.update(state if isinstance(state, dict) else {"_state": state})


def pickle_globals(path: str | Path) -> set[str]:
    """'module.name' of every global a torch zip checkpoint's pickle refers to, read from its opcodes."""
    try:
        with zipfile.ZipFile(path) as z:
            pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
            data = z.read(pkl)
    except (zipfile.BadZipFile, StopIteration) as e:
        raise CheckpointError(f"{path}: not a torch zip checkpoint ({e.__class__.__name__})") from None
    found, strings, memo = set(), [], {}
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            found.add(arg.replace(" ", "."))
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(arg)
        elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
            memo[arg] = strings[-1]
        elif op.name == "MEMOIZE" and strings:
            memo[len(memo)] = strings[-1]
        elif op.name in ("BINGET", "LONG_BINGET", "GET") and arg in memo:
            strings.append(memo[arg])
        elif op.name == "STACK_GLOBAL":
            found.add(".".join(strings[-2:]) if len(strings) >= 2 else "<unknown STACK_GLOBAL>")
    return found


def _standins(globals_: set[str], path: Path, prefixes: tuple[str, ...] = STUB_PREFIXES) -> list[tuple[type, str]]:
    """Inert stand-ins for the classes under `prefixes`; a file naming anything else (but tensor data) is refused."""
    refused = sorted(g for g in globals_ if not g.startswith(prefixes) and g not in TORCH_SAFE
                     and not _is_storage(g) and not g.startswith(("numpy.core.multiarray.scalar",
                                                                   "numpy._core.multiarray.scalar", "numpy.dtype")))
    if refused:
        raise CheckpointError(f"{path}: refusing to load: the pickle references {', '.join(refused)}, which is not a "
                              f"model class, a torch.nn layer or tensor data")
    return [(type(g.rsplit(".", 1)[1], (_Standin,), {"_origin": g}), g) for g in sorted(globals_)
            if g.startswith(prefixes)]


def _is_storage(g: str) -> bool:
    return g.startswith("torch.") and g.endswith("Storage") and g.count(".") == 1


def _state_dict(obj: _Standin, prefix: str = "") -> dict[str, torch.Tensor]:
    """Rebuild a state_dict from a stood-in nn.Module tree (persistent parameters and buffers)."""
    d = obj.__dict__
    out = {}
    skip = d.get("_non_persistent_buffers_set", set())
    for name, t in list(d.get("_parameters", {}).items()) + [(k, v) for k, v in d.get("_buffers", {}).items()
                                                               if k not in skip]:
        if t is not None:
            out[prefix + name] = t.detach() if isinstance(t, torch.Tensor) else t
    for name, child in d.get("_modules", {}).items():
        if child is not None:
            out.update(_state_dict(child, f"{prefix}{name}."))
    return out


def read_official(path: str | Path) -> dict:
    """{'yaml', 'state_dict', 'names', 'stride', 'meta'} from an official ultralytics YOLOv5 .pt file."""
    path = Path(path)
    standins = _standins(pickle_globals(path), path)
    with torch.serialization.safe_globals(standins + _numpy_safe()):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else None
    if not isinstance(model, _Standin) or "yaml" not in model.__dict__:
        raise CheckpointError(f"{path}: no YOLOv5 model with a YAML found under 'ema' or 'model'")
    attrs = model.__dict__
    names = attrs.get("names", [])
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    stride = attrs.get("stride")
    meta = {k: ckpt[k] for k in ("epoch", "date", "updates") if isinstance(ckpt.get(k), (int, float, str))}
    yaml = {k: v for k, v in attrs["yaml"].items() if k != "yaml_file"}
    return {"yaml": yaml, "state_dict": _state_dict(model), "names": names,
            "stride": stride.tolist() if isinstance(stride, torch.Tensor) else stride, "meta": meta}


def is_official(path: str | Path) -> bool:
    """True for a torch zip file whose pickle names ultralytics model classes."""
    try:
        return any(g.startswith(("models.yolo.", "models.common.")) for g in pickle_globals(path))
    except CheckpointError:
        return False
