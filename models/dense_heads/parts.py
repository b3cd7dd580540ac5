"""Checks of a head config's parts (prior generator, coder, losses, assigner) when the row is built."""
from __future__ import annotations


def check_parts(cfg: dict, where: str) -> None:
    """Build every named part once so unknown names and bad parameters fail with the key path."""
