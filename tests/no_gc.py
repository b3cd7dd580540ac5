"""A block with the automatic garbage collector off: garbage stays until collected on purpose, so a test sees what
reference counting alone frees (and what a later collection, here or in a forked worker, would)."""
from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_disabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
