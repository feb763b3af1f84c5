"""Print the real-vs-augmented comparison table and verdict of the latest (or a given) evaluation, recomputed
from what MLflow holds (its per-run results with per-image outcomes, and the verdict's context)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mdaug.secrets import location, redact, redact_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--experiment", default="mdaug-eval", help="MLflow experiment (default %(default)s)")
    ap.add_argument("--run", help="evaluation run id (default: the newest finished one)")
    ap.add_argument("--tracking-uri", type=location,
                    help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite in --tracking-dir)")
    ap.add_argument("--tracking-dir", type=Path, default=Path("runs"),
                    help="folder holding mlflow.db, e.g. a pipeline's --out (default %(default)s)")
    a = ap.parse_args()
    uri = a.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        db = (a.tracking_dir / "mlflow.db").resolve()
        if not db.is_file():
            ap.error(f"no MLflow store at {db}: pass --tracking-dir (the pipeline's --out) or --tracking-uri")
        uri = f"sqlite:///{db}"
    from mlflow.exceptions import MlflowException  # after the arguments: --help stays fast
    from mlflow.tracking import MlflowClient

    from mdaug.evaluation.report import table_rows
    from mdaug.evaluation.verdict import conclude
    from mdaug.ray_mlflow.eval_job import latest_evaluation, results_from_mlflow
    from mdaug.tables import markdown_table

    client = MlflowClient(uri)
    try:
        parent = latest_evaluation(client, a.experiment, a.run)
        results, context = results_from_mlflow(client, parent)
    except (ValueError, MlflowException, OSError) as err:
        print(f"compare: error: {redact_text(str(err)).splitlines()[0]}", file=sys.stderr)
        raise SystemExit(2) from err
    rows, lines = conclude(results, context)
    print(f"evaluation {parent.info.run_id} ({parent.info.run_name}), {redact(uri)}")
    print(markdown_table(table_rows(rows)))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
