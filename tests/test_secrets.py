"""Secrets stay out of what mdaug logs and writes: a location with credentials or an `${oc.env:…}` value is refused
where the configuration is loaded and where a command line names a location, without echoing the secret; printed
URIs are redacted; and a whole pipeline run with canary secrets in its environment leaves none of them in its
output folder (MLflow store, artifacts, config.yaml, checkpoints, console)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
from conftest import CANARIES

from mdaug.config import load_config
from mdaug.secrets import credentials_in, redact, redact_text

REPO = Path(__file__).resolve().parents[1]
SECRET = "Sup3rS3cretValue"

URIS = {  # location → (what credentials_in finds, the redacted form)
    f"s3://AKIAEXAMPLE:{SECRET}@bucket/mdaug": (["userinfo"], "s3://***@bucket/mdaug"),
    f"https://{SECRET}@mlflow.example.com:5000": (["userinfo"], "https://***@mlflow.example.com:5000"),
    f"s3://bucket/mdaug?region=us-east-1&access_key=AKIA&secret_key={SECRET}&session_token={SECRET}":
        (["access_key", "secret_key", "session_token"],
         "s3://bucket/mdaug?region=us-east-1&access_key=***&secret_key=***&session_token=***"),
    f"https://acct.blob.core.windows.net/c/x?sv=2024&sig={SECRET}": (["sig"],
                                                                      "https://acct.blob.core.windows.net/c/x?sv=2024&sig=***"),
    "s3://bucket/mdaug?region=us-east-1": ([], "s3://bucket/mdaug?region=us-east-1"),
    "models:/mdaug-generator@best": ([], "models:/mdaug-generator@best"),
    "/data/walker@home/manifest.json": ([], "/data/walker@home/manifest.json"),
    "s3://bucket/a@b/x": ([], "s3://bucket/a@b/x"),
    "file:///tmp/x": ([], "file:///tmp/x"),
}


@pytest.mark.parametrize("uri", URIS)
def test_credentials_are_found_and_redacted(uri):
    found, redacted = URIS[uri]
    assert credentials_in(uri) == found
    assert redact(uri) == redacted and SECRET not in redact(uri)


def test_redact_text_redacts_every_uri_in_a_message():
    text = f"cannot open s3://K:{SECRET}@b/x; tracking http://u:{SECRET}@h:5000/api?token={SECRET} failed"
    assert SECRET not in redact_text(text) and "s3://***@b/x" in redact_text(text) and "http://***@h:5000" in text \
        .replace(f"u:{SECRET}", "***")


def test_the_printed_ui_link_opens_the_training_view_without_credentials(tmp_path, monkeypatch):
    from mdaug.ray_mlflow.tracking import ui_hint

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"https://{SECRET}@mlflow.example.com:5000/")
    assert ui_hint(tmp_path, "3") == ("open https://***@mlflow.example.com:5000/#/experiments/3"
                                      "?workflowType=machine_learning")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert ui_hint(tmp_path, "1") == (f"mlflow ui --backend-store-uri sqlite:///{tmp_path.resolve() / 'mlflow.db'} "
                                      "--host 127.0.0.1 --workers 1, then open "
                                      "http://127.0.0.1:5000/#/experiments/1?workflowType=machine_learning")


# (section, override): locations of the pipeline and of each entry point's section
REFUSED = [
    (None, f"storage=s3://AKIA:{SECRET}@bucket/mdaug"),
    (None, f"data=s3://AKIA:{SECRET}@bucket/data"),  # a Path field: checked as written
    (None, f"train.storage=s3://bucket/x?secret_key={SECRET}"),
    (None, f"evaluation.data=https://{SECRET}@host/manifest.json"),
    ("train", f"storage=s3://AKIA:{SECRET}@bucket/mdaug"),
    ("train", f"data=s3://AKIA:{SECRET}@bucket/manifest.json"),
    ("train", f"vae.checkpoint=https://{SECRET}@host/vavae.pt"),
    ("evaluation", f"data=s3://bucket/m.json?access_key=A&secret_key={SECRET}"),
    ("evaluation", f"oracle=s3://AKIA:{SECRET}@bucket/oracle"),
]


@pytest.mark.parametrize(("section", "override"), REFUSED)
def test_a_location_with_credentials_is_refused_without_echoing_it(section, override):
    key = override.split("=", 1)[0]
    with pytest.raises(ValueError, match="credentials") as err:
        load_config("tiny", [override], section)
    message = str(err.value)
    assert SECRET not in message, message
    assert key in message and "***" in message and "AWS_SECRET_ACCESS_KEY" in message, message


@pytest.mark.parametrize("section", [None, "train", "sweep", "sampling", "evaluation", "sim"])
def test_oc_env_is_refused_in_overrides_of_every_section(section, monkeypatch):
    monkeypatch.setenv("MDAUG_TEST_SECRET", SECRET)
    key = {None: "experiment", "train": "experiment", "sweep": "search", "sampling": "method",
           "evaluation": "experiment", "sim": "image_format"}[section]
    with pytest.raises(ValueError, match=r"oc\.env.*refused.*logged to MLflow") as err:
        load_config("tiny", [f"{key}=${{oc.env:MDAUG_TEST_SECRET}}"], section)
    assert SECRET not in str(err.value) and key in str(err.value)


def test_oc_env_and_credentials_are_refused_in_a_configuration_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MDAUG_TEST_SECRET", SECRET)
    base = (REPO / "configs" / "tiny.yaml").read_text()
    env_file = tmp_path / "env.yaml"
    env_file.write_text(base + "\nstorage: s3://bucket/${oc.env:MDAUG_TEST_SECRET}\n")
    with pytest.raises(ValueError, match=r"storage: \$\{oc\.env:…\} is refused"):
        load_config(env_file)
    creds = tmp_path / "creds.yaml"
    creds.write_text(base.replace('train:\n  storage: ""', f"train:\n  storage: s3://AKIA:{SECRET}@bucket/x", 1))
    assert f"storage: s3://AKIA:{SECRET}@bucket/x" in creds.read_text()
    with pytest.raises(ValueError, match=r"train\.storage: s3://\*\*\*@bucket/x carries credentials") as err:
        load_config(creds, section="train")
    assert SECRET not in str(err.value)
    # a secret assembled by interpolation is caught once resolved
    built = tmp_path / "built.yaml"
    built.write_text(base + f"\nexperiment: 'AKIA:{SECRET}'\nstorage: s3://${{experiment}}@bucket/x\n")
    with pytest.raises(ValueError, match="storage: s3://\\*\\*\\*@bucket/x carries credentials") as err:
        load_config(built)
    assert SECRET not in str(err.value)


def test_plain_locations_and_interpolations_still_load():
    cfg = load_config("tiny", ["storage=s3://bucket/mdaug?region=us-east-1", "train.data=/data/a@b/m.json"])
    assert cfg.storage == "s3://bucket/mdaug?region=us-east-1"
    assert cfg.aux.size == cfg.sim.size  # configs' own ${sim.size} interpolation


@pytest.mark.parametrize("argv", [
    ["jobs/train.py", "--stage", "vae", "--data", f"s3://AKIA:{SECRET}@bucket/manifest.json"],
    ["jobs/generate.py", "--dit", f"s3://AKIA:{SECRET}@bucket/dit.pt", "--per-person", "1", "--out", "/tmp/x"],
    ["eval/augmentation_gain.py", "--data", "m.json", "--synthetic", f"s3://b/s?secret_key={SECRET}"],
])
def test_a_command_line_location_with_credentials_is_refused_at_parse_time(argv, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / argv[0]), run_name="__main__")  # in-process: argparse refuses before any work
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and "carries credentials" in err and "***" in err, err[-2000:]
    assert SECRET not in out + err


def test_a_pipeline_run_leaves_no_canary_secret_in_its_outputs(pipeline_run):
    """conftest's pipeline_run ran with CANARIES in its environment: no file under its output folder (the MLflow
    sqlite store, artifacts, config.yaml, checkpoints, first_run.log) holds any of them, as text or bytes."""
    files = [p for p in pipeline_run.rglob("*") if p.is_file()]
    assert any(p.name == "mlflow.db" for p in files) and any(p.name == "config.yaml" for p in files)
    assert (pipeline_run / "first_run.log").read_text().strip(), "the console lines were recorded"
    leaks = [(p.relative_to(pipeline_run).as_posix(), name) for p in files for name, value in CANARIES.items()
             if value.encode() in p.read_bytes()]
    assert not leaks, f"canary secrets written to: {leaks}"
