"""Lines for the person watching the console."""

from __future__ import annotations

import argparse
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


class _Verbose(argparse.Action):
    """--verbose: sets MDAUG_VERBOSE=1 for this process and every Ray process it starts."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        os.environ[VERBOSE] = "1"
        setattr(namespace, self.dest, True)


def add_verbose_argument(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--verbose", action=_Verbose, nargs=0, default=False,
                    help="the libraries' own console output too: Ray's INFO logs (Train reports, checkpoints, Ray "
                         "Data's plans), Tune's tables, MLflow's notices, their deprecation warnings (the same as "
                         f"{VERBOSE}=1)")
