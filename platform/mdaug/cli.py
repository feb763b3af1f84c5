"""The `mdaug` command: simulate, validate, split."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from mdaug.config import add_config_arguments, load_config
from mdaug.data.validate import DEFAULT_PATTERN, ValidationReport
from mdaug.storage import write_text


def _add_scan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pattern", default=DEFAULT_PATTERN,
                   help="regex a person folder name must match in full, one group = person number "
                        "(case-insensitive, zero padding allowed; default %(default)s)")
    p.add_argument("--channels", choices=("auto", "gray", "rgb", "jet"), default="auto",
                   help="channel mode images are converted to; auto = jet if the colour images fit the jet "
                        "colormap (read as the one value each colour encodes), rgb for other colour data, else gray")
    p.add_argument("--min-size", type=int, default=16, help="smallest acceptable image side in pixels")
    p.add_argument("--on-bad", choices=("skip", "fail"), default="skip",
                   help="skip: exclude bad files and count them in the report; fail: exit non-zero on any problem")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mdaug", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    s = sub.add_parser("simulate", help="make a data set of walking people with the built-in radar simulator",
                       description="Simulate gait micro-Doppler spectrograms: ROOT/ID_k/*.png|jpg, persons.json and "
                                   "preview.png. Same settings give byte-identical files. Settings: the sim section "
                                   "of --config, then key=value overrides of it, e.g. persons=3 per_person=12 "
                                   "size=128 colormap=jet first_sample=60 radar.prf_hz=2000 variation.snr_db=[5,25].")
    s.add_argument("--out", type=Path, required=True, help="output folder (must not exist or be empty)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_arguments(s, "sim")

    v = sub.add_parser("validate", help="check a ROOT/ID_k folder tree and report every problem",
                       description="Decode every image under ROOT/ID_k (sub-folders included) and report "
                                   "per-person counts, sizes, modes and every problem with its file.")
    v.add_argument("root", type=Path, help="data root holding the person folders")
    v.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    _add_scan_options(v)

    p = sub.add_parser("split", help="validate, then write a deterministic train/val/test manifest",
                       description="Per-person stratified split; identical images land in the same split; "
                                   "train subsets for --train-per-person nest across K for one seed.")
    p.add_argument("root", type=Path, help="data root holding the person folders")
    p.add_argument("--out", type=Path, required=True, help="manifest JSON to write")
    p.add_argument("--val", type=float, default=0.15, help="validation fraction per person (default %(default)s)")
    p.add_argument("--test", type=float, default=0.15, help="test fraction per person (default %(default)s)")
    p.add_argument("--train-per-person", type=int, help="keep only the first K train images per person")
    p.add_argument("--seed", type=int, default=0, help="split seed (default %(default)s)")
    p.add_argument("--group", metavar="REGEX",
                   help="keep every image of one recording in one split: a regex searched in each image's path "
                        r"relative to ROOT whose first group (else the whole match) names the recording, e.g. "
                        r"'(rec\d+)_win' for rec12_win003.png; images it does not match are their own group")
    p.add_argument("--on-duplicates", choices=("move", "refuse"), default="move",
                   help="near-duplicates of one person (pixel fingerprints closer than a threshold calibrated on "
                        "this data set's cross-person distances) that land in two splits: move the cluster into one "
                        "split (train if any is in train), listed in the manifest; or refuse, naming the pairs "
                        "(default %(default)s); near-duplicates of two persons are only reported")
    _add_scan_options(p)
    return ap


def _check(report: ValidationReport, on_bad: str) -> None:
    if on_bad == "fail" and report.problems:
        first = report.problems[0]
        raise SystemExit(f"validation failed with {len(report.problems)} problems; first: "
                         f"[{first.kind}] {first.path}: {first.reason}")


def _simulate(a: argparse.Namespace) -> None:
    from mdaug.sim import simulate_dataset

    cfg = load_config(a.config, a.overrides, "sim")
    t0 = time.perf_counter()
    summary = simulate_dataset(a.out, cfg, progress=not a.quiet)
    print(f"wrote {cfg.persons} × {cfg.per_person} images of {cfg.size}² to {a.out} in "
          f"{time.perf_counter() - t0:.1f} s "
          f"(largest Doppler {summary['max_doppler_hz']:.0f} Hz; preview: {a.out / 'preview.png'})")


def _validate(a: argparse.Namespace) -> None:
    from mdaug.data.validate import validate

    report = validate(a.root, a.pattern, a.channels, a.min_size)
    print(report.table())
    if a.json:
        write_text(a.json, json.dumps(report.to_dict(), indent=1))
    _check(report, a.on_bad)


def _split(a: argparse.Namespace) -> None:
    from mdaug.data.split import duplicate_lines, split_report
    from mdaug.data.validate import validate

    report = validate(a.root, a.pattern, a.channels, a.min_size)
    print(report.table())
    _check(report, a.on_bad)
    manifest = split_report(report, a.val, a.test, a.train_per_person, a.seed, a.group, a.on_duplicates)
    for line in duplicate_lines(manifest.leakage or {}):
        print(line)
    persons_out = [e for e in manifest.excluded if e["kind"] == "no_usable_image"]
    for e in persons_out:
        print(f"excluded person folder {e['path']}: {e['reason']}")
    manifest.save(a.out)
    counts = {s: len(manifest.split(s)) for s in ("train", "val", "test")}
    dropped = f"; {len(persons_out)} person folders without a usable image excluded" if persons_out else ""
    print(f"manifest {a.out}: {counts} over {manifest.num_classes} persons (seed {a.seed}){dropped}")


COMMANDS = {"simulate": _simulate, "validate": _validate, "split": _split}


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        print(f"mdaug {args.command}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err


if __name__ == "__main__":
    main()
