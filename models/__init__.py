"""Models: YAML graph (`Model`, `parse_model`), building blocks, checkpoints; every model is built in
models/build.py (`load_model`, `model_from_cfg`, ...)."""
from __future__ import annotations

from models.build import (load_checkpoint_dict, load_model, model_from_cfg, model_from_checkpoint,
                          model_from_weights)

__all__ = ["load_checkpoint_dict", "load_model", "Model", "model_from_cfg", "model_from_checkpoint",
           "model_from_weights", "save_checkpoint"]


def __getattr__(name: str):
    # Lazy re-exports keep `import models` light and free of import cycles.
    if name == "Model":
        from models.yolo import Model
        return Model
    if name == "save_checkpoint":
        from models.checkpoint import save_checkpoint
        return save_checkpoint
    raise AttributeError(name)
