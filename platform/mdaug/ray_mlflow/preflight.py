"""Checks that run before any training starts: manifest, file hashes, resources (waiting, when asked to, for an
autoscaling cluster to add the nodes a job needs)."""

from __future__ import annotations

import time

import ray
from ray.autoscaler.sdk import request_resources
from ray.exceptions import GetTimeoutError
from ray.util.placement_group import placement_group, remove_placement_group

from mdaug.data.manifest import Manifest, Row
from mdaug.ray_mlflow.config import TrainJobConfig, VAEStage
from mdaug.storage import exists, file_sha256, io_map, is_uri

VAE_FILES = ("checkpoint", "vf_weights", "perceptual_weights")  # what a VA-VAE job may read from outside


def load_verified_manifest(path: str, verified: set[str] | None = None) -> Manifest:
    """Load the manifest and check every file still has the content hash recorded in it (IO_THREADS at a time from
    remote storage). `verified`: content hashes of manifests this process checked already (a pipeline checks its
    manifest once, not before every stage): their files are not read again; a manifest checked now is added."""
    if not path:
        raise ValueError("--data MANIFEST is required; make one with `mdaug split ROOT --out MANIFEST`")
    m = Manifest.load(path)
    content = m.content_hash() if verified is not None else ""
    if content in (verified or ()):
        return m

    def state(row: Row) -> str:
        try:
            return "" if file_sha256(m.file(row)) == row.sha256 else "changed"
        except (FileNotFoundError, IsADirectoryError):
            return "missing"

    states = list(io_map(state, m.rows, is_uri(m.root)))
    missing, changed = ([r.path for r, s in zip(m.rows, states, strict=True) if s == what]
                        for what in ("missing", "changed"))
    if missing or changed:
        raise ValueError(
            f"manifest {path} no longer matches {m.root}: {len(missing)} files missing {missing[:5]}, "
            f"{len(changed)} files changed {changed[:5]}; re-run `mdaug split` to make a new manifest"
        )
    if verified is not None:
        verified.add(content)
    return m


POLL_S = 1.0  # how often a wait for new nodes looks at the cluster again
PLACE_S = 30.0  # at least this long for Ray to reserve bundles that fit the cluster's totals (busy nodes free up)


def missing_resources(bundles: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """{resource: (the bundles' total, the cluster's total)} for each resource the cluster has too little of."""
    have, need = ray.cluster_resources(), {}
    for bundle in bundles:
        for k, v in bundle.items():
            need[k] = need.get(k, 0.0) + v
    return {k: (n, have.get(k, 0.0)) for k, n in need.items() if n > have.get(k, 0.0)}


def wait_for_resources(bundles: list[dict[str, float]], wait_s: float) -> dict[str, tuple[float, float]]:
    """What the cluster still lacks for `bundles` ({} when they fit). When it lacks something and wait_s > 0, asks
    the autoscaler for the bundles (`request_resources`) and polls the cluster for up to wait_s seconds; the
    request is withdrawn afterwards (it is cluster-wide: it replaces any other standing request)."""
    missing = missing_resources(bundles)
    if not missing or wait_s <= 0:
        return missing
    print(f"pre-flight: the cluster lacks {_shortfall(missing)}; asked the autoscaler for {len(bundles)} × "
          f"{bundles[0]}, waiting up to {wait_s:g} s", flush=True)
    t0 = time.monotonic()
    request_resources(bundles=bundles)
    try:
        while missing and time.monotonic() - t0 < wait_s:
            time.sleep(min(POLL_S, max(0.0, wait_s - (time.monotonic() - t0))))
            missing = missing_resources(bundles)
    finally:
        request_resources(bundles=[])
    if not missing:
        print(f"pre-flight: the cluster grew in {time.monotonic() - t0:.0f} s", flush=True)
    return missing


def _largest_node(nodes: list[dict[str, float]]) -> dict[str, float]:
    """The CPUs and GPUs of the node with the most CPUs (then GPUs), for an error message."""
    node = max(nodes, key=lambda r: (r.get("CPU", 0.0), r.get("GPU", 0.0)), default={})
    return {k: v for k, v in node.items() if k in ("CPU", "GPU")}


def unplaced(bundles: list[dict[str, float]], wait_s: float) -> str:
    """Why Ray cannot reserve `bundles` together ('' when it can): totals that suffice can still be split over
    nodes too small for one bundle, and Ray would wait forever. Without an autoscaler wait, a bundle no node holds
    is refused at once; otherwise a placement group (PACK, as Ray Train's) gets max(PLACE_S, wait_s) seconds to be
    placed, and is removed."""
    bundles = [{k: v for k, v in b.items() if v > 0} for b in bundles]
    if not all(bundles):
        return ""
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    if wait_s <= 0 and not all(any(all(node.get(k, 0.0) >= v for k, v in b.items()) for node in nodes)
                               for b in bundles):
        return f"no node holds one (the largest has {_largest_node(nodes)})"
    pg = placement_group(bundles, strategy="PACK")
    try:
        ray.get(pg.ready(), timeout=max(PLACE_S, wait_s))
        return ""
    except GetTimeoutError:
        return (f"Ray could not place them within {max(PLACE_S, wait_s):g} s (the nodes are too small to pack them "
                f"or busy with other work; the largest has {_largest_node(nodes)})")
    finally:
        remove_placement_group(pg)


def unplaced_error(what: str, bundles: list[dict[str, float]], why: str, lower: str) -> ValueError:
    return ValueError(f"{what}: {len(bundles)} × {bundles[0]} fit the cluster's totals but {why}. Lower {lower}, or "
                      "add nodes large enough for them.")


def _shortfall(missing: dict[str, tuple[float, float]]) -> str:
    return ", ".join(f"{n - h:g} {k}" for k, (n, h) in missing.items())


def waited_note(wait_s: float) -> str:
    """' after waiting N s for the autoscaler', for an error message ('' without a wait)."""
    return f" after waiting {wait_s:g} s for the autoscaler" if wait_s > 0 else ""


def check_placeable(what: str, bundle: dict[str, float], count: int, wait_s: float, lower: str,
                    wait_how: str) -> None:
    """`count` × `bundle` (a job's tasks or actors, all placed at once) that the cluster cannot place would wait
    forever (Ray only warns): a ValueError now, after giving an autoscaling cluster wait_s seconds to add nodes and
    Ray max(PLACE_S, what is left of them) to place the bundles. `what` needs …; `lower`: the knobs that ask for
    less; `wait_how`: how to give the cluster time."""
    bundle = {k: v for k, v in bundle.items() if v > 0}
    deadline = time.monotonic() + wait_s
    missing = wait_for_resources([bundle] * count, wait_s)
    if missing:
        needs = " and ".join(f"{n:g} {k}" for k, (n, _) in missing.items())
        has = " and ".join(f"{h:g} {k}" for k, (_, h) in missing.items())
        raise ValueError(f"{what} needs {needs}; the cluster has {has}{waited_note(wait_s)}. Lower {lower}, or give "
                         f"an autoscaling cluster time to add nodes: {wait_how}.")
    left = max(deadline - time.monotonic(), 1e-3) if wait_s > 0 else 0.0  # one deadline for both waits, not two
    if why := unplaced([bundle] * count, left):
        raise unplaced_error(what, [bundle] * count, why, lower)


def check_resources(cfg: TrainJobConfig) -> None:
    """More workers than the cluster can place is an error now, not a hang later; an autoscaling cluster gets
    cfg.resource_wait_s seconds to add the nodes."""
    bundle = {k: v for k, v in (("CPU", cfg.cpus_per_worker), ("GPU", cfg.gpus_per_worker)) if v > 0}
    knobs = {"GPU": "gpus_per_worker", "CPU": "cpus_per_worker"}
    shape = " + ".join(f"{v:g} {k}" for k, v in bundle.items())
    check_placeable(f"training ({cfg.workers} worker{'s' * (cfg.workers != 1)} × {shape})", bundle, cfg.workers,
                    cfg.resource_wait_s, f"workers or {' / '.join(knobs[k] for k in bundle)}",
                    f"resource_wait_s=SECONDS (now {cfg.resource_wait_s:g})")


def check_resume(cfg: TrainJobConfig) -> None:
    """--resume needs an earlier run of the stage to resume."""
    if cfg.resume and not cfg.run_name_file.is_file():
        raise ValueError(f"--resume: no earlier {cfg.stage} run under {cfg.out_path}; start one without --resume")


def check_vae_files(vae: VAEStage, prefix: str = "vae.") -> None:
    """The files a VA-VAE job names exist: refused before any work rather than in a Ray worker."""
    for key in VAE_FILES:
        value = getattr(vae, key)
        if value and not exists(value):
            raise FileNotFoundError(f"{prefix}{key}={value} not found (the official VA-VAE checkpoint is "
                                    "vavae-imagenet256-f16d32-dinov2.pt from hustvl/LightningDiT's README; DINOv2 "
                                    "weights a local Hugging Face folder): give an absolute path or a storage URI")


def check_batch(n_train: int, cfg: TrainJobConfig, batch_size: int) -> None:
    """Each worker must see at least one full batch per epoch."""
    per_worker = n_train // cfg.workers
    if per_worker < batch_size:
        raise ValueError(f"{n_train} training images over {cfg.workers} workers leave {per_worker} per worker, "
                         f"fewer than one batch of {batch_size}; lower the batch size or the workers")
