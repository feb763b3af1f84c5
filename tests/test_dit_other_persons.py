"""The DiT learning other persons beside the task's (train.dit.other_share): they train labels of their own, the
generator still generates only the task's persons, the provenance names them, and the evaluation's real-data budget
counts them as other persons' images; a manifest sharing an image with the task's is refused."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from conftest import FAST

from mdaug.config import load_config
from mdaug.data.manifest import Manifest
from mdaug.evaluation.budget import budget_of
from mdaug.generation import Generator
from mdaug.ray_mlflow.dit_stage import _dit_module
from mdaug.ray_mlflow.train_job import run_train_job
from mdaug.ray_mlflow.train_stages import read_stats
from mdaug.training.dit_module import load_dit


def _job(trained, out, other: str):
    out.mkdir()
    for part in ("latents", "classifier", "vae"):
        (out / part).symlink_to(trained / part)
    cfg = load_config("tiny", [*FAST, "dit.train_per_person=2", "workers=2", "dit.other_share=0.5",
                               f"dit.other_data={other}"], "train")
    return replace(cfg, stage="dit", data=str(trained.parent / "manifest.json"), out=str(out))


@pytest.mark.slow  # an option off in every configuration: its learning test in the slow tier (≈ 30 s)
def test_the_dit_learns_other_persons_as_labels_it_never_generates(trained, ray_local, tmp_path):
    task = Manifest.load(trained.parent / "manifest.json")
    aux_path = trained.parent / "aux_manifest.json"
    other = Manifest.load(aux_path)
    cfg = _job(trained, tmp_path / "joint", str(aux_path))
    run_train_job(cfg)
    model, _, ckpt = load_dit(cfg.dit_dir / "dit.pt", use_ema=False)
    n_task, n_other = task.num_classes, other.num_classes
    assert model.config.num_classes == n_task + n_other
    prov = ckpt["provenance"]["dit_other"]
    assert sorted(prov["images"]) == sorted(r.sha256 for r in other.split("train"))
    assert prov["persons"] == sorted({r.person for r in other.split("train")})
    # the other persons' labels were trained: their embedding rows moved from the initialisation (no weight decay:
    # a label never seen keeps its row exactly)
    stats, info = read_stats(cfg)
    torch.manual_seed(cfg.seed)
    init = _dit_module(cfg.to_dict(), stats, info["latent_shape"], n_task + n_other, n_task).model
    moved = (model.y_embedder.weight - init.y_embedder.weight).abs().amax(1)
    assert (moved[n_task:n_task + n_other] > 0).all(), moved
    # the generator knows the task's persons only
    gen = Generator.load(cfg.dit_dir / "dit.pt")
    assert sorted(gen.labels) == sorted(task.labels) and max(gen.labels.values()) < n_task
    # the evaluation's budget: the task images it saw are the k-subset; the rest are other persons' images
    budget = budget_of(task, "joint", gen.info, 2)
    assert budget.equal and budget.other_images >= len(prov["images"])


def test_other_persons_that_share_an_image_with_the_task_are_refused(trained, ray_local, tmp_path):
    cfg = _job(trained, tmp_path / "same", str(trained.parent / "manifest.json"))
    with pytest.raises(ValueError, match="shares .* images with the task's manifest"):
        run_train_job(cfg)


def test_the_pipeline_refuses_other_share_without_other_persons(tmp_path):
    from mdaug.pipeline import run_pipeline

    data = tmp_path / "data"
    (data / "ID_1").mkdir(parents=True)
    cfg = load_config("tiny", [f"out={tmp_path / 'out'}", f"data={data}", "train.dit.other_share=0.5"])
    with pytest.raises(ValueError, match="train.dit.other_data=MANIFEST"):
        run_pipeline(cfg)
    assert not (tmp_path / "out").exists()
