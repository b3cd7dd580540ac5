"""Command-line entry points: a user's mistake is one `script.py: error: message` line and exit status 2
(as argparse reports a bad flag); anything else is a bug and keeps its traceback.

A mistake is an exception of type `UserError`. Library code raises one of the typed variants below, each also
the built-in type it stands for (`UserFileNotFoundError` is a `FileNotFoundError`, ...), so callers that catch
the built-in keep working. Set YOLO_TRACEBACK=1 to see the traceback of a user error too.
"""
from __future__ import annotations

import gc
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, NoReturn

TRACEBACK_ENV = "YOLO_TRACEBACK"
USER_ERROR_STATUS = 2  # argparse's status for a bad command line


class UserError(Exception):
    """A mistake in what the user gave (a path, a file's content, a flag value); the message says which."""

    def __str__(self) -> str:  # KeyError would quote its message
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class UserFileNotFoundError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class UserValueError(UserError, ValueError):
    """A file's content or a flag value that cannot be used."""


class UserKeyError(UserError, KeyError):
    """A missing or unknown key (in a YAML file or a registry of names)."""


class UserTypeError(UserError, TypeError):
    """A value of the wrong type in a user's file."""


def script_name() -> str:
    """The running script's file name, as argparse names it (`train.py`)."""
    return Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"


def show_tracebacks() -> bool:
    """True when the environment asks for tracebacks of user errors (YOLO_TRACEBACK=1)."""
    return os.environ.get(TRACEBACK_ENV, "").strip().lower() not in ("", "0", "false", "no")


def run_main(main: Callable[[], Any]) -> NoReturn:
    """Run a script's `main()` and exit: its int result is the status; a UserError prints one line, status 2."""
    try:
        result = main()
    except UserError as e:
        if show_tracebacks():
            traceback.print_exc()
        print(f"{script_name()}: error: {e}", file=sys.stderr)
        raise SystemExit(USER_ERROR_STATUS) from None
    finally:
        gc.freeze()  # shutdown then skips tracing torch's objects for cycles: about 0.3 s less per run
    raise SystemExit(result if isinstance(result, int) and not isinstance(result, bool) else 0)
