"""Every setting in range before any work (issue 22): each numeric key of every section of PipelineConfig, set to
0, −1, 10**12 and NaN, is refused when the configuration loads, with a ValueError naming the key, or is one of the
values listed below as documented-valid. A new numeric key without bounds fails here: the keys are enumerated from
the dataclasses, not listed by hand."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
import types
import typing
from pathlib import Path

import pytest

from mdaug.config import load_config
from mdaug.pipeline.config import PipelineConfig

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("train", "sweep", "sampling", "evaluation", "sim")  # the entry points' own sections

# The values of the enumeration that are valid, each with what it means (the dataclasses' docstrings say so).
VALID = {
    **{f"{s}.{k}=0": "0 is a valid index, seed or count" for s in ("sim", "aux")
       for k in ("first_person", "first_sample", "seed")},
    **{f"{s}.radar.radar_height_m=0": "an antenna on the floor" for s in ("sim", "aux")},
    **{f"{s}.variation.{k}=0": "no variation" for s in ("sim", "aux") for k in ("velocity", "stride_jitter")},
    **{f"{s}.variation.{k}=[{v},{v}]": "a fixed SNR (dB) or aspect (degrees), which may be 0 or negative"
       for s in ("sim", "aux") for k in ("snr_db", "aspect_deg") for v in (0, -1)},
    "split_seed=0": "a seed", "train.seed=0": "a seed", "sweep.seed=0": "a seed",
    "train.dit.subset_seed=0": "the k-subset of the split's first k", "train.dit.replicate=0": "the first replicate",
    "resource_wait_s=0": "refuse at once", "train.resource_wait_s=0": "refuse at once",
    "train.gpus_per_worker=0": "CPU", "sweep.gpus_per_trial=0": "CPU", "evaluation.gpus_per_run=0": "CPU",
    "train.max_failures=0": "no restart",
    "train.vae.steps_per_epoch=0": "one pass per epoch", "train.dit.steps_per_epoch=0": "one pass per epoch",
    "train.vae.train_per_person=0": "all images", "train.dit.train_per_person=0": "all latents",
    "train.vae.betas=[0,0]": "Adam without momentum", "train.vae.identity_weight=0": "no identity loss",
    "train.vae.disc_start=0": "the PatchGAN from the start", "train.vae.kl_weight=0": "no KL term",
    "train.dit.ema_decay=0": "EMA = the weights", "train.dit.other_share=0": "no other persons",
    "train.dit.class_dropout=0": "no label dropout",
    "train.dit.preview_cfg=0": "unconditional previews", "sampling.cfg_scale=0": "unconditional sampling",
    "sweep.cfg_scale=[0,0]": "unconditional sampling", "sweep.cfg_interval_start=[0,0]": "guidance throughout",
    "sampling.cfg_interval_start=0": "guidance throughout", "sweep.trials=0": "no sweep",
    "generator_ks=[0]": "one generator on all train images (runner.check_settings refuses it before any stage "
                        "when an evaluated k has no generator within it)",
    "evaluation.convergence_points=0": "converged only when doubling adds nothing",
    "evaluation.sensitivity_seeds=0": "no step-sensitivity runs",
    **{f"evaluation.augment.{k}=0": "that augmentation off" for k in (
        "p_time_shift", "time_shift", "p_time_mask", "time_mask_width", "p_freq_mask", "freq_mask_width",
        "torso_guard", "p_gain", "gain_db", "p_noise", "noise_std", "p_blur")},
}


def numeric_keys(cls: type = PipelineConfig, prefix: str = "") -> list[tuple[str, type, int | None]]:
    """(dotted key, element type, tuple length: None for a number, 2 for a pair, 1 for a list) of every numeric
    leaf, through nested and optional sections."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        if typing.get_origin(t) in (typing.Union, types.UnionType):
            t = next(a for a in typing.get_args(t) if a is not type(None))
        if dataclasses.is_dataclass(t):
            out += numeric_keys(t, f"{prefix}{f.name}.")
        elif t in (int, float):
            out.append((f"{prefix}{f.name}", t, None))
        elif typing.get_origin(t) is tuple and typing.get_args(t)[0] in (int, float):
            out.append((f"{prefix}{f.name}", typing.get_args(t)[0], 1 if typing.get_args(t)[-1] is Ellipsis else 2))
    return out


def cases() -> list[tuple[str, str]]:
    """(key, value as written) for every numeric key and bad value: 0, −1, 10**12, NaN (floats); a tuple key gets
    them as a whole tuple ([v,v] for a pair, [v] for a list)."""
    out = []
    for key, kind, length in numeric_keys():
        for v in ("0", "-1", "1000000000000", *(("nan",) if kind is float else ())):
            out.append((key, v if length is None else "[" + ",".join([v] * length) + "]"))
    return out


CASES = cases()


def test_the_enumeration_reaches_every_section():
    keys = {k for k, _, _ in numeric_keys()}
    assert len(keys) >= 110 and {"sim.radar.prf_hz", "aux.variation.range_m", "train.vae.lr", "train.dit.ema_decay",
                                 "sweep.steps", "sampling.cfg_scale", "evaluation.augment.p_blur", "val",
                                 "generator_ks", "workers"} <= keys
    assert set(VALID) <= {f"{k}={v}" for k, v in CASES}, "a VALID entry that the enumeration never makes"


@pytest.mark.parametrize(("key", "value"), CASES, ids=[f"{k}={v}" for k, v in CASES])
def test_every_numeric_key_is_bounded(key, value):
    """Through the whole configuration (jobs/pipeline.py) and, for −1, through the entry point's own section (the
    same check; only the key's name differs)."""
    for section in (None, *(s for s in SECTIONS if key.startswith(s + ".") and value.strip("[]") == "-1")):
        written = key[len(section) + 1:] if section else key
        start = time.perf_counter()
        try:
            load_config("tiny", [f"{written}={value}"], section)
        except ValueError as err:
            took = time.perf_counter() - start
            assert written in str(err), f"{written}={value} (section {section}): the error does not name it: {err}"
            assert took < 5, f"{written}={value}: refused after {took:.1f} s"
        else:
            assert f"{key}={value}" in VALID, f"{written}={value} (section {section}) is accepted: bound it, or " \
                                              "list it in VALID with its documented meaning"


NAMED = [  # issue 22's cases: (overrides, what the message must say)
    (["sweep.trials=-1"], "sweep.trials=-1: must be an integer from 0 to 10000 (0: no sweep)"),
    (["train.max_failures=-1"], "train.max_failures=-1: must be an integer from 0 to 100"),
    (["evaluation.steps=0", "evaluation.convergence_points=-1"], "evaluation.steps=0: must be an integer from 1"),
    (["evaluation.convergence_points=-1"], "evaluation.convergence_points=-1.0: must be a finite number in [0, 100]"),
    (["sim.per_person=1e9"], "sim.per_person"),  # not an integer: OmegaConf's refusal, naming the key
    (["sim.per_person=1000000000"], "sim.per_person=1000000000: must be an integer from 1 to 10000"),
    (["evaluation.seeds=1000000000"], "evaluation.seeds=1000000000: must be an integer from 1 to 1000"),
    (["evaluation.cpus_per_run=0"], "evaluation.cpus_per_run=0.0: must be a finite number in (0, 1024]"),
    (["val=0.9", "test=0.2"], "val=0.9 + test=0.2 = 1.1: the validation and test fractions must leave train images"),
    (["generator_ks=[-2]"], "generator_ks=[-2]: must be a non-empty list of integers from 0 to 100000"),
    (["sweep.steps=[100,8]"], "sweep.steps=[100,8]: must be a range [low, high] of integers with low ≤ high"),
    (["sweep.search=grid"], "sweep.search=grid: must be one of random, optuna"),
    (["train.dit.size=huge"], "train.dit.size=huge: must be one of tiny, S, B, L, XL"),
    (["train.vae.architecture=nope"], "train.vae.architecture=nope: must be one of f16d32, tiny, small"),
    (["train.dit.patch_size=3"], "train.dit.patch_size=3: must divide the latent side 16 of train.vae.architecture"),
    (["train.keep_checkpoints=0"], "train.keep_checkpoints=0: must be an integer from 1 to 1000"),
    (["train.classifier.batch_size=0"], "train.classifier.batch_size=0: must be an integer from 1"),
    (["train.vae.batch_size=0"], "train.vae.batch_size=0: must be an integer from 1"),
    (["train.dit.batch_size=0"], "train.dit.batch_size=0: must be an integer from 1"),
    (["evaluation.batch_size=0"], "evaluation.batch_size=0: must be an integer from 1"),
    (["train.vae.lr=nan"], "train.vae.lr=nan: must be a finite number in (0, 10]"),
    (["train.vae.lr=inf"], "train.vae.lr=inf: must be a finite number in (0, 10]"),
    (["evaluation.image_size=-3"], "evaluation.image_size=-3: must be an integer from 8 to 1024 pixels"),
    (["sampling.cfg_scale=-1"], "sampling.cfg_scale=-1.0: must be a finite number in [0, 100]"),
    (["sim.radar.prf_hz=10"], "sim.radar.prf_hz: PRF 10 Hz aliases: the fastest body part reaches"),
    (["aux.radar.duration_s=0.5"], "aux.radar.duration_s: duration 0.5 s is shorter than the slowest walker's"),
    (["sim.persons=2000"], "sim.persons=2000: must be an integer from 1 to 1000"),
    (['name=""'], "name='': must be a non-empty name"),
]


@pytest.mark.parametrize(("overrides", "message"), NAMED, ids=[" ".join(o) for o, _ in NAMED])
def test_the_issues_cases_are_refused_by_name(overrides, message):
    with pytest.raises(ValueError) as refused:
        load_config("tiny", overrides)
    assert message in str(refused.value)


def test_a_sections_refusal_names_its_keys_as_that_entry_point_takes_them():
    for section, override, message in [
            ("train", "vae.lr=nan", "vae.lr=nan: must be"), ("sweep", "steps=[100,8]", "steps=[100,8]: must be"),
            ("sampling", "cfg_scale=-1", "cfg_scale=-1.0: must be"), ("sim", "radar.prf_hz=10", "radar.prf_hz: PRF 10"),
            ("evaluation", "seeds=0", "seeds=0: must be an integer from 1 to 1000 (classifier seeds per generator "
                                      "replicate)"),
            ("evaluation", "ks=[2,4]", "control_ks (5,) must be among ks (2, 4): set control_ks too")]:
        with pytest.raises(ValueError) as refused:
            load_config("tiny", [override], section)
        assert str(refused.value).startswith(message), (section, override, str(refused.value))


# Each refused in its entry point before Ray, MLflow or Lightning is imported: (command, key in the error).
COMMANDS = [
    (["jobs/pipeline.py", "--out", "{out}", "sweep.trials=-1"], "pipeline: error: sweep.trials=-1"),
    (["jobs/pipeline.py", "--out", "{out}", "val=0.9", "test=0.2"], "pipeline: error: val=0.9 + test=0.2"),
    (["jobs/pipeline.py", "--out", "{out}", "sim.radar.prf_hz=10"], "pipeline: error: sim.radar.prf_hz: PRF 10 Hz"),
    (["eval/augmentation_gain.py", "--data", "m.json", "--out", "{out}", "seeds=0", "--synthetic", "s"],
     "evaluate: error: seeds=0"),
    (["jobs/train.py", "--stage", "vae", "--data", "m.json", "--out", "{out}", "vae.lr=nan"],
     "train: error: vae.lr=nan"),
    (["tuning/sweep_sampling.py", "--dit", "d.pt", "--out", "{out}", "trials=-1"], "sweep: error: trials=-1"),
]
CPU_S = 12.0  # measured: 2.8–3.5 CPU-seconds each (Python, torch, OmegaConf; `jobs/pipeline.py --help`: 2.8–3.5)


@pytest.mark.slow  # command-line processes: seconds of imports each
def test_entry_points_refuse_out_of_range_settings_at_once_and_write_nothing(tmp_path):
    """All at once (2 cores): exit 2, the key in stderr, a few CPU-seconds each (wall time depends on the machine's
    load), nothing written under --out or the working folder."""
    work = tmp_path / "work"
    work.mkdir()
    procs = []
    for i, (argv, _) in enumerate(COMMANDS):
        err = (tmp_path / f"stderr{i}").open("w")
        args = [a.replace("{out}", str(work / f"out{i}")) for a in argv]
        procs.append((subprocess.Popen([sys.executable, str(REPO / args[0]), *args[1:]], cwd=work,
                                       stdout=subprocess.DEVNULL, stderr=err), err, time.perf_counter()))
    for i, ((argv, expected), (proc, err, start)) in enumerate(zip(COMMANDS, procs, strict=True)):
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.close()
        stderr, cpu = (tmp_path / f"stderr{i}").read_text(), usage.ru_utime + usage.ru_stime
        assert proc.returncode == 2 and expected in stderr and "Traceback" not in stderr, (argv, stderr[-2000:])
        assert cpu < CPU_S, f"{argv}: {cpu:.1f} CPU-seconds to refuse (wall {time.perf_counter() - start:.0f} s)"
    assert list(work.iterdir()) == [], "an entry point wrote before refusing its configuration"
