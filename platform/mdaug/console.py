"""Lines for the person watching the console."""

from __future__ import annotations

import os
import sys

VERBOSE = "MDAUG_VERBOSE"  # =1: Ray's own INFO logs on the console (Train reports and checkpoints, Data's plans)


def verbose() -> bool:
    """Whether the user asked for the libraries' own console output (MDAUG_VERBOSE=1)."""
    return os.environ.get(VERBOSE, "") == "1"


def say(line: str) -> None:
    """One line on standard output, written directly: inside a Ray Train worker `print` is patched to go through
    Ray Train's logger as well as to standard output, so a printed line would show twice on the driver."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
