"""Synthetic data sets from a trained DiT: ID_k folders like the input data, written atomically and
resumably (fixed per-image seeds and fixed batches: a resumed run writes the same bytes)."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mdaug.data.manifest import Manifest, Row
from mdaug.flow.latents import LatentStats, decode_latents
from mdaug.flow.sampler import SamplingConfig, sample
from mdaug.imaging import encode, tensor_image
from mdaug.models.dit import LightningDiT
from mdaug.models.vavae import AutoencoderKL, load_vae
from mdaug.seeds import hash_seed
from mdaug.storage import absolute, write_text
from mdaug.training.dit_module import load_dit


@dataclass(frozen=True)
class Generator:
    """A loaded generator: DiT (EMA weights), its latent statistics, the matching VAE and provenance."""

    dit: LightningDiT
    stats: LatentStats
    vae: AutoencoderKL
    labels: dict[int, int]  # person id → label
    info: dict

    @classmethod
    def load(cls, dit: str | Path, vae: str | Path | None = None) -> Generator:
        """From a DiT checkpoint and the VA-VAE it names (local paths or storage URIs); `vae` overrides it."""
        model, stats, ckpt = load_dit(dit)
        vae_uri = str(vae or ckpt.get("vae_uri") or "")
        if not vae_uri:
            raise ValueError(f"{dit} names no VA-VAE; pass --vae")
        vae_model = load_vae(vae_uri)
        if vae_model.identity() != stats.vae_identity:
            raise ValueError(f"{vae_uri} is not the VAE the DiT {dit} was trained with; pass the right --vae")
        labels = {int(k): v for k, v in ckpt.get("labels", {}).items()} or {
            i + 1: i for i in range(model.config.num_classes)}
        info = {"dit_sha256": ckpt["file_sha256"], "vae_identity": stats.vae_identity,
                "training_manifest_hash": ckpt.get("manifest_hash"), "training_manifest": ckpt.get("manifest_uri"),
                "channels": ckpt.get("channels", "gray"), "image_format": ckpt.get("image_format", "png"),
                "provenance": ckpt.get("provenance"), "vae_uri": absolute(vae_uri),
                "classifier_uri": ckpt.get("classifier_uri"),
                "identity_metrics": ckpt.get("identity_metrics")}
        return cls(model, stats, vae_model.eval(), labels, info)

    def seen_rows(self, manifest: Manifest) -> list[Row]:
        """The manifest's train rows this generator's DiT trained on (all of them when it records none)."""
        seen = set(((self.info.get("provenance") or {}).get("dit") or {}).get("images", []))
        return [r for r in manifest.split("train") if not seen or r.sha256 in seen]

    @torch.no_grad()
    def images(self, labels: list[int], seeds: list[int], sampling: SamplingConfig, device: str = "cpu",
               batch: int = 64) -> torch.Tensor:
        """Decoded images in [-1, 1] for (label, seed) pairs, in fixed batches of `batch`."""
        self.dit.to(device)
        self.vae.to(device)
        dtype = torch.bfloat16 if device.startswith("cuda") else None
        out = []
        for i in range(0, len(labels), batch):
            z = sample(self.dit, labels[i:i + batch], seeds[i:i + batch], sampling, device, dtype)
            out.append(decode_latents(self.vae, z, self.stats).float().clamp(-1, 1).cpu())
        return torch.cat(out) if out else torch.empty(0)


def image_seed(seed: int, person: int, index: int) -> int:
    """A 63-bit seed per (run seed, person, image index), independent of batching."""
    return hash_seed(seed, person, index)


def to_file_bytes(img: torch.Tensor, channels: str, image_format: str) -> bytes:
    """Encode a generated image in the training data's channel mode and file format (pseudo-colour data back
    through its colormap)."""
    pil = tensor_image(img, channels)
    return encode(pil.convert("RGB") if channels == "rgb" else pil, image_format)


@dataclass(frozen=True)
class GenerationJob:
    per_person: int
    persons: tuple[int, ...]
    seed: int
    sampling: SamplingConfig
    batch: int = 64

    def items(self) -> list[tuple[int, int]]:
        """(person id, index) in a fixed order."""
        return [(p, i) for p in self.persons for i in range(self.per_person)]

    def chunks(self) -> list[list[tuple[int, int]]]:
        items = self.items()
        return [items[i:i + self.batch] for i in range(0, len(items), self.batch)]


def file_name(person: int, index: int, image_format: str) -> str:
    return f"ID_{person}/gen_{index:05d}.{image_format}"


def check_job(gen: Generator, per_person: int, persons: list[int] | None) -> tuple[int, ...]:
    if per_person <= 0:
        raise ValueError(f"--per-person must be ≥ 1, got {per_person}")
    known = sorted(gen.labels)
    chosen = tuple(persons) if persons else tuple(known)
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise ValueError(f"unknown person ids {unknown}; this generator knows {known[0]}..{known[-1]}")
    return chosen


def chunk_files(gen: Generator, job: GenerationJob, chunk: list[tuple[int, int]], device: str) -> list[bytes]:
    """One fixed chunk's image files, encoded (a worker returns them: it needs no access to the output folder)."""
    labels = [gen.labels[p] for p, _ in chunk]
    seeds = [image_seed(job.seed, p, i) for p, i in chunk]
    imgs = gen.images(labels, seeds, job.sampling, device, batch=len(chunk))
    return [to_file_bytes(img, gen.info["channels"], gen.info["image_format"]) for img in imgs]


def chunk_targets(gen: Generator, chunk: list[tuple[int, int]], folder: Path) -> list[Path]:
    return [folder / file_name(p, i, gen.info["image_format"]) for p, i in chunk]


def write_chunk(targets: list[Path], files: list[bytes]) -> None:
    """Each file whole or not at all (a killed run leaves no half image to resume from)."""
    for target, data in zip(targets, files, strict=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)


def manifest_for(gen: Generator, job: GenerationJob) -> dict:
    fmt = gen.info["image_format"]
    return {
        "format": "mdaug-synthetic/1", **gen.info, "sampling": asdict(job.sampling), "seed": job.seed,
        "per_person": job.per_person, "persons": list(job.persons), "batch": job.batch,
        "images": [{"path": file_name(p, i, fmt), "person": p, "label": gen.labels[p],
                    "seed": image_seed(job.seed, p, i)} for p, i in job.items()],
    }


def prepare_output(out: Path, expected: dict) -> Path | None:
    """None if out already holds this exact generation; else the partial folder to fill.
    A folder that holds anything else is refused."""
    if out.exists():
        if read_json(out / "manifest.json") == expected:
            return None
        raise FileExistsError(f"{out} already exists and holds something else; choose another --out or remove it")
    partial = out.parent / f".{out.name}.partial"
    spec = partial / "manifest.json.expected"
    if partial.exists() and read_json(spec) != expected:
        shutil.rmtree(partial)  # an interrupted run with other settings, or an unreadable record: start over
    partial.mkdir(parents=True, exist_ok=True)
    for orphan in partial.glob(".manifest.json*.tmp"):  # a killed write's temporary file: not part of the set
        orphan.unlink()
    write_text(spec, json.dumps(expected))
    return partial


def read_json(path: Path) -> object | None:
    """A JSON file's content; None when it is missing or unreadable (truncated, not JSON): treated as absent."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None


def finish_output(partial: Path, out: Path, expected: dict) -> None:
    """manifest.json written last; the folder renamed into place (a kill before that leaves a resumable partial)."""
    write_text(partial / "manifest.json", json.dumps(expected, indent=1))
    (partial / "manifest.json.expected").unlink()
    partial.rename(out)
