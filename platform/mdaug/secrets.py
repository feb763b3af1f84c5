"""Credentials never travel in a location: a URI with userinfo (`s3://KEY:SECRET@bucket/…`, `https://token@host`) or
a secret in its query string (pyarrow's `?access_key=…&secret_key=…&session_token=…`, a SAS `sig=…`) would be logged
as an MLflow parameter, written into config.yaml, checkpoints and model tags, and shown by `ps`. Configuration values
and command-line locations are checked here and refused; a URI that is printed goes through `redact` first.

The libraries read credentials from the environment: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or an instance
profile) for pyarrow and boto, MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD for MLflow."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from urllib.parse import parse_qsl

# scheme://userinfo@ — the userinfo ends at the first '@' before the authority's end ('/', '?', '#')
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s]*)@")
# a query parameter whose name says it carries a secret
_SECRET_NAME = re.compile(r"(?i)(secret|passw|token|access_key|api_?key|credential|signature|^sig$|^key$)")
_QUERY = re.compile(r"\?(?P<query>[^#\s]*)")
_ANY_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]*")

USE_THE_ENVIRONMENT = ("put credentials in the environment, where the libraries read them: AWS_ACCESS_KEY_ID / "
                       "AWS_SECRET_ACCESS_KEY (or an instance profile) for storage, MLFLOW_TRACKING_USERNAME / "
                       "MLFLOW_TRACKING_PASSWORD for MLflow")


def _secret_query_keys(uri: str) -> list[str]:
    match = _QUERY.search(uri)
    if not match or "://" not in uri[:match.start()]:
        return []
    return [k for k, _ in parse_qsl(match["query"], keep_blank_values=True) if _SECRET_NAME.search(k)]


def credentials_in(location: str | Path) -> list[str]:
    """What credentials a URI carries: 'userinfo' and/or the names of secret query parameters; [] for a plain
    path, a URI without them, or `models:/name@alias`."""
    text = str(location)
    if "://" not in text:
        return []
    found = ["userinfo"] if _USERINFO.search(text) else []
    return found + _secret_query_keys(text)


def redact(location: str | Path) -> str:
    """The URI with its userinfo and the values of secret query parameters replaced by ***
    (`s3://***@bucket/prefix`, `s3://bucket/p?region=x&secret_key=***`)."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}***@", str(location))
    match = _QUERY.search(text)
    if not match or "://" not in text[:match.start()]:
        return text
    parts = []
    for item in match["query"].split("&"):
        key, sep, _ = item.partition("=")
        parts.append(f"{key}{sep}***" if sep and _SECRET_NAME.search(key) else item)
    return text[:match.start("query")] + "&".join(parts) + text[match.end("query"):]


def redact_text(text: str) -> str:
    """Every URI in a message (an error, a console line) redacted."""
    return _ANY_URI.sub(lambda m: redact(m.group(0)), text)


def check_location(location: str | Path, where: str) -> None:
    """Refuse a location that carries credentials; the error names `where` (a configuration key or an option)
    and shows the location redacted."""
    found = credentials_in(location)
    if found:
        raise ValueError(f"{where}: {redact(location)} carries credentials ({', '.join(found)}), which would be "
                         f"logged to MLflow and written with the outputs; remove them from the location and "
                         f"{USE_THE_ENVIRONMENT}")


def location(value: str) -> str:
    """argparse `type=` for an option that takes a location: refuses one with credentials (argparse prints
    'argument --x: …' with the location redacted)."""
    try:
        check_location(value, "location")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("location: ")) from None
    return value


def location_path(value: str) -> Path:
    """`location`, as a Path."""
    return Path(location(value))
