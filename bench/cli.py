"""Command-line pieces every bench script shares, free of Django settings (the HTTP and delivery
benches run Django in child processes with settings of their own)."""

from __future__ import annotations

import argparse


def positive(text: str) -> int:
    """An argparse ``type`` for counts: a whole number of at least 1.

    Each script reads a missing count as its default, so 0 would silently mean the default and a
    negative count would run nothing and then fail on an empty sample."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} must be at least 1")
    return number
