"""Starting forked DataLoader workers without handing them the parent's garbage."""
from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def fork_without_garbage() -> Iterator[None]:
    """Collect the parent's cyclic garbage, and keep every object it holds out of the workers' collections.

    A forked worker that collects garbage it inherited runs the destructors of the parent's objects there: an ONNX
    Runtime session's thread pool then waits forever (pthread_cond_destroy) for threads that exist only in the parent.
    val.py on an export after other runs in one process hung so (a backend left in a reference cycle, collected by
    the worker's first import). gc.freeze() moves the parent's objects out of the collector's reach in the workers
    forked inside this block; the parent takes them back afterwards."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
