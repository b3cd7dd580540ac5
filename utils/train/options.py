"""TrainOptions: every train.py flag as one typed, plain-data object (saved as opt.yaml and in checkpoints)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from utils.cli import UserKeyError, UserValueError


@dataclass
class TrainOptions:
    """Options of one training run (YOLOv5 flag names, '-' written as '_')."""
    weights: str = ""
    cfg: str = ""
    data: str = "data/shapes.yaml"
    hyp: str = "data/hyps/hyp.scratch-low.yaml"
    epochs: int = 100
    batch_size: int = 16
    imgsz: int = 640
    rect: bool = False
    resume: str | bool = False
    nosave: bool = False
    noval: bool = False
    noautoanchor: bool = False
    noplots: bool = False
    cache: str | None = None
    device: str = ""
    multi_scale: bool = False
    single_cls: bool = False
    optimizer: str = "SGD"
    sync_bn: bool = False
    workers: int = 8
    project: str = "runs/train"
    name: str = "exp"
    exist_ok: bool = False
    cos_lr: bool = False
    label_smoothing: float = 0.0
    patience: int = 100
    freeze: list[str] = field(default_factory=lambda: ["0"])
    backbone_weights: str = ""
    save_period: int = -1
    seed: int = 0
    close_mosaic: int = 0
    accumulate: int | None = None
    bf16: bool = False
    threads: int = 0
    evolve: int | None = None
    resume_evolve: str = ""
    image_weights: bool = False
    quad: bool = False
    save_period_steps: int = 0
    deterministic: bool = False
    dist_timeout: float = 1800.0
    save_dir: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (only str/int/float/bool/None/list), safe for YAML and weights_only checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<options>") -> "TrainOptions":
        """Rebuild from `to_dict` output; unknown keys are an error naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserKeyError(f"{source}: unknown training option(s) {unknown}")
        return cls(**d)

    def validate(self) -> "TrainOptions":
        """Raise ValueError naming the first bad field."""
        checks = [
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("imgsz", self.imgsz >= 32, "must be >= 32"),
            ("optimizer", self.optimizer in ("SGD", "Adam", "AdamW"), "must be SGD, Adam or AdamW"),
            ("accumulate", self.accumulate is None or self.accumulate >= 1, "must be >= 1"),
            ("cache", self.cache in (None, "ram", "disk"), "must be ram or disk"),
            ("label_smoothing", 0.0 <= self.label_smoothing < 1.0, "must be in [0, 1)"),
            ("close_mosaic", self.close_mosaic >= 0, "must be >= 0"),
            ("workers", self.workers >= 0, "must be >= 0"),
            ("threads", self.threads >= 0, "must be >= 0"),
            ("evolve", self.evolve is None or self.evolve >= 1, "must be >= 1 generations"),
            ("image_weights", not (self.image_weights and self.rect), "cannot be combined with --rect"),
            ("quad", not self.quad or self.batch_size >= 4, "merges 4 images: needs --batch-size >= 4"),
            ("save_period_steps", self.save_period_steps >= 0, "must be >= 0 (0: off)"),
            ("save_period_steps", not (self.save_period_steps and self.image_weights),
             "cannot be combined with --image-weights (its draw is not resumable mid-epoch)"),
            ("dist_timeout", self.dist_timeout > 0, "must be > 0 seconds"),
            ("evolve", not (self.evolve and self.resume), "cannot be combined with --resume (use --resume-evolve)"),
        ]
        for name, ok, why in checks:
            if not ok:
                raise UserValueError(f"option --{name.replace('_', '-')} {why}, got {getattr(self, name)!r}")
        return self
