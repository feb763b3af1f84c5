"""Lines for the person watching the console."""

from __future__ import annotations

import sys


def say(line: str) -> None:
    """One line on standard output, written directly: inside a Ray Train worker `print` is patched to go through
    Ray Train's logger as well as to standard output, so a printed line would show twice on the driver."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
