"""Create or update the MLflow user that cluster jobs log as: not an admin, EDIT on mdaug's experiments and on its
registered generator (log runs, register versions, move the @best alias; not delete them, not manage users or
permissions). Idempotent: a rerun resets the job user's password to the one given and grants again.

Logins come from the environment only, never the command line (`ps` shows it to every user of the host):
  MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD   the server's admin (what `mlflow server` read)
  MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD       the job user to create (what jobs read)

    python scripts/mlflow_job_user.py http://HOST:5000 [--experiments mdaug mdaug-eval] [--model mdaug-generator]
"""

from __future__ import annotations

import argparse
import os
import sys

from mlflow.exceptions import RestException
from mlflow.server import get_app_client
from mlflow.tracking import MlflowClient

KIND = {"mlflow.experimentKind": "custom_model_development"}  # as mdaug.ray_mlflow.tracking creates them


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"mlflow_job_user: {name} is not set (the logins come from the environment: see --help)")
    return value


def _grant_edit(auth, user: str, resource_type: str, resource_id: str) -> None:
    """EDIT for `user`, whatever permission it had on the resource before."""
    try:
        auth.grant_user_permission(user, resource_type, resource_id, "EDIT")
    except RestException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        auth.revoke_user_permission(user, resource_type, resource_id)
        auth.grant_user_permission(user, resource_type, resource_id, "EDIT")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url", help="the tracking server, e.g. http://10.0.0.5:5000")
    ap.add_argument("--experiments", nargs="+", default=["mdaug", "mdaug-eval"], help="created if missing")
    ap.add_argument("--model", default="mdaug-generator", help="registered model, created if missing")
    a = ap.parse_args()
    job_user, job_password = _env("MLFLOW_TRACKING_USERNAME"), _env("MLFLOW_TRACKING_PASSWORD")
    admin = _env("MLFLOW_AUTH_ADMIN_USERNAME")
    if job_user == admin:
        raise SystemExit(f"mlflow_job_user: the job user must not be the admin ({admin!r}): give jobs their own login")
    # this process talks to the server as the admin
    os.environ.update(MLFLOW_TRACKING_USERNAME=admin, MLFLOW_TRACKING_PASSWORD=_env("MLFLOW_AUTH_ADMIN_PASSWORD"))
    auth, client = get_app_client("basic-auth", tracking_uri=a.url), MlflowClient(a.url)
    try:
        auth.get_user(job_user)
        auth.update_user_password(job_user, job_password)
    except RestException:
        auth.create_user(job_user, job_password)
    auth.update_user_admin(job_user, False)
    for name in a.experiments:
        exp = client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp else client.create_experiment(name, tags=KIND)
        _grant_edit(auth, job_user, "experiment", exp_id)
    try:
        client.get_registered_model(a.model)
    except RestException:
        client.create_registered_model(a.model)
    _grant_edit(auth, job_user, "registered_model", a.model)
    print(f"MLflow user {job_user!r}: EDIT on experiments {', '.join(a.experiments)} and model {a.model}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
