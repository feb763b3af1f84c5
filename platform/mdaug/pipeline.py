"""The one-command pipeline: stages run in order, each skipped when its output matches its config hash."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mdaug.data.manifest import Manifest
from mdaug.data.split import split_report
from mdaug.data.validate import validate
from mdaug.sim import SimConfig, simulate_dataset

STAGES = ("simulate", "validate", "split", "report")


@dataclass(frozen=True)
class PipelineConfig:
    """What the pipeline runs. data=None simulates the embedded default data set first."""

    out: Path = Path("runs/pipeline")
    data: Path | None = None
    preset: str = "tiny"
    sim: SimConfig = field(default_factory=lambda: SimConfig(per_person=60, size=64))
    val: float = 0.15
    test: float = 0.15
    split_seed: int = 0


def _hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class StageLog:
    """stages.json in the output folder: per stage, the config hash its output was made with."""

    def __init__(self, out: Path) -> None:
        self.path = out / "stages.json"
        self.done: dict[str, dict] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def fresh(self, stage: str, key: str, force: bool) -> bool:
        return not force and self.done.get(stage, {}).get("hash") == key

    def record(self, stage: str, key: str, seconds: float) -> None:
        self.done[stage] = {"hash": key, "seconds": round(seconds, 2), "finished": time.strftime("%FT%T")}
        self.path.write_text(json.dumps(self.done, indent=1))


def run_pipeline(cfg: PipelineConfig, start: str | None = None, only: str | None = None,
                 echo: Callable[[str], None] = print) -> dict:
    """Run (or resume) the pipeline; returns the paths of what it made."""
    out = cfg.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = StageLog(out)
    data = (cfg.data or out / "data").resolve()
    manifest_path = out / "manifest.json"
    stages = [s for s in STAGES if not (s == "simulate" and cfg.data is not None)]
    for name in (start, only):
        if name is not None and name not in stages:
            raise ValueError(f"unknown or inactive stage {name!r}; stages: {', '.join(stages)}")
    forced = False
    keys = {
        "simulate": _hash(asdict(cfg.sim)),
        "validate": _hash([str(data), asdict(cfg.sim) if cfg.data is None else None]),
        "split": _hash([str(data), cfg.val, cfg.test, cfg.split_seed]),
        "report": _hash([str(data), cfg.val, cfg.test, cfg.split_seed]),
    }
    report = None
    for stage in stages:
        forced = forced or stage in (start, only)
        if only is not None and stage != only:
            continue
        if log.fresh(stage, keys[stage], forced) and stage != "report":
            echo(f"[{stage}] up to date, skipped")
            continue
        t0 = time.perf_counter()
        echo(f"[{stage}] running")
        if stage == "simulate":
            if data.exists():
                shutil.rmtree(data)
            simulate_dataset(data, cfg.sim)
        elif stage == "validate":
            report = validate(data)
            (out / "validation.json").write_text(json.dumps(report.to_dict(), indent=1))
        elif stage == "split":
            report = report or validate(data, progress=False)
            split_report(report, cfg.val, cfg.test, seed=cfg.split_seed).save(manifest_path)
        elif stage == "report":
            report = report or validate(data, progress=False)
            echo(report.table())
            m = Manifest.load(manifest_path)
            echo(f"manifest {manifest_path}: " + ", ".join(f"{s} {len(m.split(s))}" for s in ("train", "val", "test")))
        log.record(stage, keys[stage], time.perf_counter() - t0)
    return {"out": out, "data": data, "manifest": manifest_path}
