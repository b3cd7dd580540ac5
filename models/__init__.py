"""Models: YAML graph (`Model`, `parse_model`), building blocks, checkpoints; every model is built in
models/build.py (`load_model`, `model_from_cfg`, ...)."""
from __future__ import annotations

__all__ = ["load_checkpoint_dict", "load_model", "Model", "model_from_cfg", "model_from_checkpoint",
           "model_from_weights", "save_checkpoint"]

_HOMES = {"Model": "models.yolo", "save_checkpoint": "models.checkpoint"}  # the rest live in models.build


def __getattr__(name: str):
    # Lazy re-exports keep `import models` light (no torch: an export's modules run without it) and free of
    # import cycles.
    if name not in __all__:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(_HOMES.get(name, "models.build")), name)
