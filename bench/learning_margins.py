"""Rerun every learning test over seeds and torch thread counts and tabulate the quantity each asserts on (the
lines tests print through conftest.margin), so a bound can be set with a margin that holds on every machine.

    python bench/learning_margins.py --seeds 0 1 2 3 4 --threads 1 2

Each (seed, threads) pair is one pytest process (MDAUG_TEST_SEED, OMP_NUM_THREADS); a failing test is shown as
such. Minutes: the learning tests take ~3 CPU-minutes per pair on a 2-core machine."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LEARNING_TESTS = [
    "tests/test_vavae.py::test_vae_overfits_a_batch",
    "tests/test_dit.py::test_dit_overfits_a_batch",
    "tests/test_lightning_modules.py",
    "tests/test_flow.py",
    "tests/test_sim_physics.py::test_persons_are_distinguishable_but_not_trivially",
    "tests/test_evaluation.py::test_harness_detects_oracle_gain_and_no_aa_gain",
    "tests/test_statistics.py::test_the_primary_test_keeps_its_false_positive_rate_and_finds_a_real_gain",
]


def run(seed: int, threads: int, tests: list[str]) -> tuple[dict[tuple[str, str], tuple[float, str]], list[str]]:
    env = {**os.environ, "MDAUG_TEST_SEED": str(seed), "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           "-m", "slow or not slow", *tests],  # both tiers: some learning tests are slow-tier
                          cwd=REPO, env=env, capture_output=True, text=True)
    found = {}
    for line in proc.stdout.splitlines():
        if line.startswith("MARGIN "):
            test, quantity, value, bound = (x.strip() for x in line[len("MARGIN "):].split("|"))
            found[(test, quantity)] = (float(value), bound)
    failed = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
    return found, failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--threads", type=int, nargs="+", default=[2])
    ap.add_argument("--tests", nargs="+", default=LEARNING_TESTS, help="pytest node ids (default: every learning test)")
    a = ap.parse_args()
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    bounds: dict[tuple[str, str], str] = {}
    failures = []
    for threads in a.threads:
        for seed in a.seeds:
            found, failed = run(seed, threads, a.tests)
            print(f"seed {seed}, {threads} thread(s): {len(found)} quantities, {len(failed)} failed", flush=True)
            failures += [f"seed {seed}, {threads} thread(s): {f}" for f in failed]
            for key, (value, bound) in found.items():
                values[key].append(value)
                bounds[key] = bound
    print("\n| test | quantity | min | max | bound | n |\n|---|---|---|---|---|---|")
    for (test, quantity), vals in sorted(values.items()):
        print(f"| {test} | {quantity} | {min(vals):.3g} | {max(vals):.3g} | {bounds[(test, quantity)]} | {len(vals)} |")
    print("\nfailures:" if failures else "\nno failures", *failures, sep="\n  ")


if __name__ == "__main__":
    main()
