"""Pre-registration you can audit: what an evaluation commits to before any training, written as canonical JSON
with its sha256; classifier seeds derived from that hash; and how many earlier evaluations looked at a test split.

The hash is over the exact bytes of preregistration.json (sorted keys, no spaces, ASCII, no NaN), so the same
commitments give the same hash whatever the key order they were built in; `sha256sum -c preregistration.sha256`
checks the file without mdaug."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import fields, is_dataclass
from importlib import metadata
from pathlib import Path

from mdaug.data.manifest import Manifest
from mdaug.evaluation.arms import COMPARATOR, SYNTHETIC, primary_name
from mdaug.evaluation.config import EVAL_TAG, EvalConfig, k_label
from mdaug.evaluation.stats import ALPHA
from mdaug.seeds import hash_seed
from mdaug.storage import read_text, write_text

FORMAT = "mdaug-preregistration/1"
DOC, HASH = "preregistration.json", "preregistration.sha256"
SEED_LIMIT = 2**31  # seeds are < 2**31 (numpy, torch and Ray all accept them)
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _plain(value: object, where: str) -> object:
    """value as JSON types (tuples → lists, dataclasses → dicts, paths → strings); TypeError naming `where`."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"pre-registration field {where} is {value}: a commitment must be a finite number")
        return value
    if isinstance(value, Path):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name), f"{where}.{f.name}") for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "item"):  # a numpy or torch scalar
        return _plain(value.item(), where)
    raise TypeError(f"pre-registration field {where} is a {type(value).__name__} ({value!r}); pass numbers, "
                    "strings, lists or dicts")


def canonical_json(doc: dict) -> str:
    """The one text of a document: sorted keys, no whitespace, ASCII, finite numbers only."""
    return json.dumps(_plain(doc, "doc"), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def code_version() -> str:
    """mdaug's version (mdaug.__version__, else the installed package's); never git, which a wheel lacks."""
    import mdaug

    version = getattr(mdaug, "__version__", None)
    if version:
        return str(version)
    try:
        return metadata.version("mdaug")
    except metadata.PackageNotFoundError:
        return "unknown"


def test_split_hash(manifest: Manifest) -> str:
    """sha256 over the sorted content hashes of the manifest's test images: the test split's identity,
    whatever the paths, row order or the other splits."""
    hashes = sorted(r.sha256 for r in manifest.split("test"))
    if not hashes:
        raise ValueError(f"manifest of {manifest.root} has no test images; an evaluation scores a test split: "
                         "remake it with `mdaug split ROOT --test FRACTION --out MANIFEST`")
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()


test_split_hash.__test__ = False  # not a pytest test, though its name starts with test_


def _spec(spec: object) -> dict:
    """One planned run as a dict: its dataclass fields plus its arm name (e.g. real+synthetic@1), less `base`,
    the seed base that derives from this document's hash (recording it would make the hash depend on itself)."""
    row = {f.name: getattr(spec, f.name) for f in fields(spec)} if is_dataclass(spec) else dict(vars(spec))
    row.pop("base", None)
    if hasattr(spec, "name"):
        row["name"] = spec.name
    return row


def preregistration(cfg: EvalConfig, plan: list, test_split_hash: str, extra: dict,
                    manifest_hash: str | None = None) -> dict:
    """What the run commits to before any training. `extra` holds the replicate design (generator folders per
    k with their DiT sha256, replicates, classifier seeds per replicate); manifest_hash defaults to that of
    cfg.data's manifest. Fields the configuration may not have yet are read with getattr and a default."""
    if not _HEX64.fullmatch(test_split_hash or ""):
        raise ValueError(f"test_split_hash {test_split_hash!r} is not a sha256 hex digest; pass "
                         "preregistration.test_split_hash(manifest)")
    if manifest_hash is None:
        manifest_hash = Manifest.load(cfg.data).content_hash()
    arms = list(dict.fromkeys(_spec(s)["name"] for s in plan))
    return {
        "format": FORMAT,
        "primary": {"arm": primary_name(cfg), "comparator": COMPARATOR[SYNTHETIC],
                    "reference_ratio": cfg.reference_ratio},
        "holm_family_k": [k_label(k) for k in cfg.ks],
        "control_ks": None if cfg.control_ks is None else [k_label(k) for k in cfg.control_ks],
        "replicate_design": dict(extra),
        "seeds": cfg.seeds,
        "replicates": getattr(cfg, "replicates", None),
        "alpha": getattr(cfg, "alpha", ALPHA),
        "margin": getattr(cfg, "margin", None),
        "step_policy": {"steps": cfg.steps, "converge": cfg.converge, "max_steps": cfg.max_steps,
                        "convergence_points": cfg.convergence_points,
                        "probe_seeds": getattr(cfg, "probe_seeds", None)},
        "arms": arms,
        "ratios": list(cfg.ratios),
        "plan": [_spec(s) for s in plan],
        "classifiers": getattr(cfg, "classifiers", None),
        "classifier_training": {"batch_size": cfg.batch_size, "lr": cfg.lr, "width": cfg.width,
                                "image_size": cfg.image_size, "augment": cfg.augment},
        "test_split_hash": test_split_hash,
        "manifest_hash": manifest_hash,
        "code_version": code_version(),
    }


def write_preregistration(doc: dict, folder: str | Path) -> tuple[Path, str]:
    """Write doc as canonical preregistration.json (atomically) and its sha256 as preregistration.sha256 (in
    `sha256sum` format); returns (path of the JSON, its sha256)."""
    text = canonical_json(doc)
    digest = hashlib.sha256(text.encode()).hexdigest()
    path = Path(folder) / DOC
    write_text(path, text)
    write_text(Path(folder) / HASH, f"{digest}  {DOC}\n")
    return path, digest


def verify_preregistration(folder: str | Path, expected: str | None = None) -> dict:
    """The pre-registration in folder, after checking its bytes against preregistration.sha256 (and against
    `expected`, e.g. the hash tagged on the MLflow run, when given); ValueError naming the file if either differs."""
    path, hash_path = Path(folder) / DOC, Path(folder) / HASH
    for p in (path, hash_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: a pre-registration is written by write_preregistration before "
                                    "any training; an evaluation without it cannot be audited")
    text = read_text(path)
    digest = hashlib.sha256(text.encode()).hexdigest()
    recorded = (read_text(hash_path).split() or [""])[0]
    for name, want in ((str(hash_path), recorded), ("the expected hash", expected)):
        if want is not None and digest != want:
            raise ValueError(f"{path} was changed after it was written: its sha256 is {digest}, {name} says "
                             f"{want}; a pre-registration is never edited: start a new evaluation instead")
    doc = json.loads(text)
    if canonical_json(doc) != text or doc.get("format") != FORMAT:
        raise ValueError(f"{path} is not a canonical {FORMAT} document; write it with write_preregistration")
    return doc


def _permute(index: int, key: str) -> int:
    """A bijection of [0, 2**31) keyed by `key`: a 4-round Feistel network on 32 bits, cycle-walked below 2**31."""
    value = index
    while True:
        left, right = value >> 16, value & 0xFFFF
        for round_ in range(4):
            left, right = right, left ^ (hash_seed(key, round_, right) & 0xFFFF)
        value = (left << 16) | right
        if value < SEED_LIMIT:
            return value


def replicate_seeds(prereg_hash: str, n: int) -> list[int]:
    """n distinct seeds < 2**31 derived from the pre-registration's hash. Each n takes its own block of a keyed
    permutation (indices n(n-1)/2 … n(n+1)/2 - 1), so no seed of n is a seed of any other n: adding seeds
    starts new runs instead of extending the earlier ones."""
    if not _HEX64.fullmatch(prereg_hash or ""):
        raise ValueError(f"prereg_hash {prereg_hash!r} is not a sha256 hex digest; pass the hash "
                         "write_preregistration returned")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10_000:
        raise ValueError(f"replicate_seeds: n={n!r} must be an integer from 1 to 10000")
    start = n * (n - 1) // 2
    return [_permute(start + i, prereg_hash) for i in range(n)]


def count_looks(client, experiment_ids: list[str] | None, test_split_hash: str) -> int:
    """How many FINISHED evaluation runs (tag kind = EVAL_TAG) in those experiments (None: every experiment of
    the store, deleted ones too) carry tag test_split_hash equal to this one. Deleted runs count: deleting an
    earlier look does not make the next one a first."""
    from mlflow.entities import ViewType


    if not _HEX64.fullmatch(test_split_hash or ""):
        raise ValueError(f"test_split_hash {test_split_hash!r} is not a sha256 hex digest; pass "
                         "preregistration.test_split_hash(manifest)")
    if experiment_ids is None:
        experiment_ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    if not experiment_ids:
        return 0
    query = (f"tags.kind = '{EVAL_TAG}' and tags.test_split_hash = '{test_split_hash}' "
             "and attributes.status = 'FINISHED'")
    count, token = 0, None
    while True:
        page = client.search_runs(list(experiment_ids), query, run_view_type=ViewType.ALL, max_results=1000,
                                  page_token=token)
        count += len(page)
        token = page.token
        if not token:
            return count


def look_label(n_previous: int) -> str:
    """How the verdict names this evaluation, given the earlier evaluations of its test split."""
    if isinstance(n_previous, bool) or not isinstance(n_previous, int) or n_previous < 0:
        raise ValueError(f"look_label: n_previous={n_previous!r} must be a count ≥ 0 (count_looks' result)")
    if n_previous == 0:
        return "confirmatory: first look at this test split"
    return (f"exploratory, look #{n_previous + 1} at this test split ({n_previous} earlier evaluation(s) of it "
            "in MLflow)")
