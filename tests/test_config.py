"""The one configuration: every configs/*.yaml loads against the schema, is complete and commented, takes an
override; every entry point refuses an unknown key with the same error; the pipeline logs what it resolved."""

from __future__ import annotations

import dataclasses
import re
import runpy
import sys
from pathlib import Path

import pytest
import yaml

from mdaug.config import CONFIGS, load_config, to_yaml
from mdaug.pipeline import PipelineConfig

REPO = Path(__file__).resolve().parents[1]
FILES = sorted(CONFIGS.glob("*.yaml"))
# set per run by an entry point's options or by the pipeline, not by a configuration file
PER_RUN = {"train.stage", "train.data", "train.out", "train.tracking_dir", "train.resume", "evaluation.data",
           "evaluation.synthetic", "evaluation.out", "evaluation.oracle"}


def _leaves(cls: type, prefix: str = "") -> set[str]:
    """Dotted names of every leaf field of a schema dataclass."""
    out = set()
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            out |= _leaves(type(default), f"{prefix}{f.name}.")
        else:
            out.add(prefix + f.name)
    return out


def _file_keys(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        out |= _file_keys(v, f"{prefix}{k}.") if isinstance(v, dict) and k != "aux" else {prefix + k}
    return out


def test_the_three_configurations_exist():
    assert [p.stem for p in FILES] == ["paper", "small", "tiny"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_configuration_loads_takes_overrides_and_is_complete(path):
    cfg = load_config(path)
    assert isinstance(cfg, PipelineConfig) and cfg.name == path.stem
    assert load_config(path.stem) == cfg  # by name too
    # an override, its section's view, and interpolation (aux follows the task's image size)
    changed = load_config(path, ["train.vae.lr=5e-4", "sim.size=96", "evaluation.seeds=3", "generator_ks=[3]"])
    assert changed.train.vae.lr == 5e-4 and changed.evaluation.seeds == 3 and changed.generator_ks == (3,)
    assert changed.aux.size == 96 and changed.sim.size == 96
    assert load_config(path, ["vae.lr=5e-4"], "train") == changed.train
    assert load_config(path, ["trials=3"], "sweep").trials == 3
    assert load_config(path, ["steps=7"], "sampling").steps == 7
    assert load_config(path, ["radar.prf_hz=3000"], "sim").radar.prf_hz == 3000
    # complete: every knob of the schema is in the file (aux lists what differs from the simulator's defaults)
    text = path.read_text()
    missing = _leaves(PipelineConfig) - PER_RUN - _file_keys(yaml.safe_load(text))
    assert not {m for m in missing if not m.startswith("aux.")}, f"{path.name} lacks {sorted(missing)}"
    # commented: every key line has its comment (on the line, or the line above)
    lines = text.splitlines()
    bare = [line for i, line in enumerate(lines) if re.match(r"^\s*[\w/+-]+:\s*\S", line) and "#" not in line
            and not lines[i - 1].lstrip().startswith("#")]
    assert not bare, f"{path.name}: knobs without a comment: {bare}"


def test_a_wrong_key_or_value_is_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match=r"unknown configuration key 'train.vae.learning_rate'; valid keys under "
                                         r"train.vae: architecture, .*lr, "):
        load_config("tiny", ["train.vae.learning_rate=1"])
    with pytest.raises(ValueError, match=r"override 'vae.epochs=many': vae.epochs: Value 'many' of type 'str' could "
                                         r"not be converted to Integer"):
        load_config("tiny", ["vae.epochs=many"], "train")
    with pytest.raises(ValueError, match=r"override 'ks=\[5,all\]': a value could not be converted to Integer"):
        load_config("tiny", ["ks=[5,all]"], "evaluation")
    with pytest.raises(ValueError, match=r"override 'steps=\[8\]': .*length 1 does not match .* length 2"):
        load_config("tiny", ["steps=[8]"], "sweep")
    with pytest.raises(ValueError, match="is not key=value"):
        load_config("tiny", ["vae.epochs"], "train")
    with pytest.raises(ValueError, match="classifier seeds per generator replicate"):  # the schema's checks hold
        load_config("tiny", ["seeds=0"], "evaluation")
    bad = tmp_path / "mine.yaml"
    bad.write_text("sim:\n  persons: 3\n  colour: red\n")
    with pytest.raises(ValueError, match=r"unknown configuration key 'sim.colour'; valid keys under sim: .*persons"):
        load_config(bad)
    with pytest.raises(FileNotFoundError, match=r"configuration 'huge' not found: give a YAML file or one of paper, "
                                                r"small, tiny"):
        load_config("huge")


ENTRY_POINTS = {  # script, its required options, the section its overrides are relative to
    "jobs/pipeline.py": ([], None),
    "jobs/train.py": (["--stage", "vae", "--data", "manifest.json"], "train"),
    "tuning/sweep_sampling.py": (["--dit", "dit.pt"], "sweep"),
    "jobs/generate.py": (["--dit", "dit.pt", "--per-person", "1", "--out", "generated"], "sampling"),
    "eval/augmentation_gain.py": (["--data", "manifest.json", "--synthetic", "generated"], "evaluation"),
    "mdaug simulate": (["--out", "data"], "sim"),
}


def test_overrides_after_the_synthetic_folders_are_overrides(tmp_path, monkeypatch, capsys):
    """`--synthetic A B ks=[5] colour=red`: the folders end at the first key=value."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["augmentation_gain.py", "--data", "manifest.json", "--synthetic", "gen5",
                                      "gen10", "ks=[5]", "colour=red"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(REPO / "eval" / "augmentation_gain.py"), run_name="__main__")
    assert stop.value.code == 2 and "unknown configuration key 'colour'" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["augmentation_gain.py", "--data", "manifest.json", "--synthetic", "ks=[5]"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(REPO / "eval" / "augmentation_gain.py"), run_name="__main__")
    assert stop.value.code == 2 and "--synthetic needs at least one generated folder" in capsys.readouterr().err


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_entry_point_refuses_an_unknown_key_the_same_way(entry, tmp_path, monkeypatch, capsys):
    """Run in this process (each script's own main), before any work: exit 2 and the valid keys of its section."""
    args, section = ENTRY_POINTS[entry]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dit.pt").write_bytes(b"")  # --dit must name a file before the settings are read
    argv = [*args, "--config", "small", "colour=red"]
    with pytest.raises(SystemExit) as stop:
        if entry == "mdaug simulate":
            from mdaug.cli import main

            main(["simulate", *argv])
        else:
            monkeypatch.setattr(sys, "argv", [entry, *argv])
            runpy.run_path(str(REPO / entry), run_name="__main__")
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    fields = sorted(f.name for f in dataclasses.fields(getattr(PipelineConfig(), section) if section else
                                                        PipelineConfig))
    assert f"unknown configuration key 'colour'; valid keys: {', '.join(fields)}" in err
    assert not (tmp_path / "generated").exists() and not (tmp_path / "data").exists()


def test_the_pipeline_logs_the_configuration_it_resolved(pipeline_run, tmp_path):
    """The pipeline run's config.yaml is the whole resolved configuration, and loads back to it."""
    from conftest import small_pipeline
    from mlflow.tracking import MlflowClient

    from mdaug.ray_mlflow.tracking import tracking_uri

    client = MlflowClient(tracking_uri(pipeline_run))
    run = client.search_runs([client.get_experiment_by_name("mdaug").experiment_id],
                             "tags.kind = 'pipeline'", order_by=["attributes.start_time ASC"])[0]
    logged = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path)))
    assert run.data.tags["config"] == "tiny"
    cfg = small_pipeline(pipeline_run)
    assert logged.read_text() == to_yaml(cfg)
    assert load_config(logged) == cfg


def test_the_pipeline_refuses_a_missing_checkpoint_before_any_stage(tmp_path):
    from mdaug.pipeline import run_pipeline

    cfg = load_config("tiny", [f"out={tmp_path / 'p'}", "train.vae.checkpoint=/nowhere/vavae.pt"])
    with pytest.raises(FileNotFoundError, match="train.vae.checkpoint=/nowhere/vavae.pt not found"):
        run_pipeline(cfg, echo=lambda line: None)
    assert not (tmp_path / "p" / "stages.json").exists()


def test_the_vf_weights_need_the_vf_encoder():
    with pytest.raises(ValueError, match="vae.vf_weights is set but vae.vf_encoder is none"):
        load_config("tiny", ["vae.vf_weights=/models/dinov2-large"], "train")
    assert load_config("tiny", ["vae.vf_weights=/m", "vae.vf_encoder=dinov2"], "train").vae.vf_encoder == "dinov2"


def test_a_stage_reruns_when_what_changes_its_result_changes(tmp_path):
    """Stage keys: settings that do not change a result (checkpoints kept, waiting, the experiment) rerun nothing;
    the VA-VAE architecture reruns the classifier (it trains at that size); a DiT setting leaves the VA-VAE."""
    from mdaug.pipeline.runner import stage_keys
    from mdaug.pipeline.steps import Paths

    paths, stages = Paths(tmp_path, tmp_path / "data", ""), ["simulate", "validate", "split", "classifier", "vae",
                                                             "latents", "dit"]

    def keys(*overrides: str) -> dict[str, str]:
        return stage_keys(load_config("tiny", list(overrides)), paths, stages)

    before = keys()
    assert keys("train.keep_checkpoints=5", "resource_wait_s=60", "train.experiment=x", "train.max_failures=0") \
        == before
    architecture = keys("train.vae.architecture=small")
    assert architecture["split"] == before["split"] and architecture["classifier"] != before["classifier"]
    dit = keys("train.dit.lr=1e-3")
    assert dit["vae"] == before["vae"] and dit["dit"] != before["dit"]
    assert keys("aux=null", "generator_ks=[3]")["vae"] != keys("aux=null")["vae"]  # no other walkers: trains on k


def test_a_vae_job_refuses_a_missing_file_before_any_work(tmp_path, monkeypatch):
    """Named by its absolute path (what every Ray worker would open), before Ray, data or output."""
    from mdaug.ray_mlflow.train_job import run_train_job

    monkeypatch.chdir(tmp_path)
    cfg = load_config("tiny", ["vae.vf_encoder=dinov2", "vae.vf_weights=nowhere/dinov2"], "train")
    with pytest.raises(FileNotFoundError, match=rf"vae.vf_weights={tmp_path}/nowhere/dinov2 not found"):
        run_train_job(dataclasses.replace(cfg, stage="vae", data=str(tmp_path / "manifest.json"),
                                          out=str(tmp_path / "o")))
    assert not (tmp_path / "o").exists()
