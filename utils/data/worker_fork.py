"""Starting forked DataLoader workers without handing them the parent's objects to collect."""
from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def fork_without_garbage() -> Iterator[None]:
    """Keep every object the parent holds (garbage included) out of the collections of workers forked in the block.

    A forked worker that collects garbage it inherited runs the destructors of the parent's objects there: an ONNX
    Runtime session's thread pool then waits forever (pthread_cond_destroy) for threads that exist only in the parent.
    val.py on an export after other runs in one process hung so (a backend left in a reference cycle, collected by
    the worker's first import). gc.freeze() moves the parent's objects to the permanent generation, which the
    workers inherit and never collect; the parent takes them back afterwards and collects its garbage itself. Both
    calls are O(1) (a gc.collect() here took 70-250 ms in a process holding torch)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
