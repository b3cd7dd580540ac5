"""Named points of a training run that loggers, plots, early stopping and checkpointing attach to."""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable

EVENTS = (
    "train_start",  # after setup, before the first epoch
    "epoch_start",  # before an epoch's first batch (close mosaic, image-weights draw)
    "step_end",  # after each batch: kw i (batch index), ni (global batch index), stepped (optimizer stepped)
    "val_end",  # after an epoch's validation on the main process: kw epoch, final
    "epoch_end",  # after validation and fitness: kw epoch, values, keys, final
    "checkpoint",  # after a checkpoint file is written: kw path, kind ("last", "best", "epoch", ...)
    "train_end",  # after the last epoch, on every rank
)


class Hooks:
    """An ordered list of callbacks per event; `fire` calls each with the trainer and the event's keywords."""

    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callable[..., Any]]] = defaultdict(list)

    def add(self, event: str, fn: Callable[..., Any]) -> None:
        if event not in EVENTS:
            raise KeyError(f"unknown training event {event!r}; known: {EVENTS}")
        self._callbacks[event].append(fn)

    def fire(self, event: str, trainer: Any, **kw: Any) -> None:
        if event not in EVENTS:
            raise KeyError(f"unknown training event {event!r}; known: {EVENTS}")
        for fn in self._callbacks[event]:
            fn(trainer, **kw)

    def names(self, event: str) -> list[str]:
        """The callbacks attached to an event (for logging and tests)."""
        return [getattr(fn, "__qualname__", repr(fn)) for fn in self._callbacks[event]]
