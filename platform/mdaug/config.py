"""The one configuration: a YAML file (configs/tiny.yaml, small.yaml, paper.yaml) checked against one typed schema
(`PipelineConfig` and its sections) with OmegaConf, then dotted `key=value` overrides. Every entry point loads its
section here, so an unknown key or a mistyped value gets the same error everywhere."""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from mdaug.bounds import SettingError
from mdaug.console import add_verbose_argument
from mdaug.secrets import USE_THE_ENVIRONMENT, check_location

CONFIGS = Path(str(resources.files("mdaug") / "configs"))  # package data (in the checkout: a link to configs/)
DEFAULT_CONFIG = "tiny"


def config_file(name: str | Path) -> Path:
    """A YAML file, or the name of one in configs/ (tiny, small, paper): the working folder's configs/ first (a Ray
    job's working_dir, or your own edited copies; said on stderr when it is not the packaged file), then the
    package's."""
    path = Path(name)
    if path.is_file():
        return path
    packaged = CONFIGS / f"{name}.yaml"
    local = Path.cwd() / "configs" / f"{name}.yaml"
    if local.is_file():
        if not packaged.is_file() or local.resolve() != packaged.resolve():
            print(f"configuration {name}: {local} (the working folder's configs/, not the packaged {packaged})",
                  file=sys.stderr)
        return local
    if packaged.is_file():
        return packaged
    known = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.yaml")))
    raise FileNotFoundError(f"configuration {str(name)!r} not found: give a YAML file or one of {known} "
                            f"(in {CONFIGS})")


@functools.lru_cache(maxsize=1)
def _schema() -> DictConfig:
    from mdaug.pipeline.config import PipelineConfig

    return OmegaConf.structured(PipelineConfig)


def _valid_keys(node: Any) -> str:
    return ", ".join(sorted(str(k) for k in node.keys())) if isinstance(node, DictConfig) else "none (not a section)"


def _relative(key: str, section: str | None) -> str:
    """A schema key as the user wrote it: relative to the entry point's section."""
    return key[len(section) + 1:] if section and key.startswith(section + ".") else key


def _why(err: OmegaConfBaseException) -> str:
    """OmegaConf's reason, first line, without its unfilled placeholders."""
    return str(err).splitlines()[0].replace("Value '$VALUE' of type '$VALUE_TYPE'", "a value")


def _unknown_key(schema: DictConfig, key: str, section: str | None) -> ValueError:
    """The error for a key the schema lacks, named as the user wrote it (relative to `section`), with the valid
    keys of the deepest section that exists."""
    if _relative(key, section) != key:
        schema, key = schema[section], _relative(key, section)
    parts, node, where = key.split("."), schema, ""
    for part in parts[:-1]:
        child = node.get(part) if isinstance(node, DictConfig) else None
        if not isinstance(child, DictConfig):
            break
        node, where = child, f"{where}{part}."
    return ValueError(f"unknown configuration key {key!r}; valid keys{' under ' + where[:-1] if where else ''}: "
                      f"{_valid_keys(node)}")


def _merge(schema: DictConfig, update: DictConfig, source: str, section: str | None = None) -> DictConfig:
    try:
        return OmegaConf.merge(schema, update)
    except ConfigKeyError as err:
        raise _unknown_key(schema, str(err.full_key), section) from None
    except OmegaConfBaseException as err:
        key = _relative(str(err.full_key or ""), section)
        raise ValueError(f"{source}: {key + ': ' if key else ''}{_why(err)}") from None


def _override(item: str, section: str | None) -> DictConfig:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ValueError(f"override {item!r} is not key=value (a dotted key, e.g. a.b=1)")
    return OmegaConf.from_dotlist([f"{section}.{key}={value}" if section else item])


_ENV_RESOLVER = re.compile(r"\$\{\s*(oc\.env|env)\s*:")


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf of a dict/list tree."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else None
    if items is None:
        yield prefix.rstrip("."), node
        return
    for k, v in items:
        yield from _leaves(v, f"{prefix}{k}.")


def _refuse_secrets(tree: Any, source: str, resolved: bool = False) -> None:
    """Configuration values are logged (MLflow params, config.yaml, checkpoints): refuse `${oc.env:…}`, which
    would copy an environment variable there, and locations with credentials (named redacted)."""
    for key, value in _leaves(tree):
        if not isinstance(value, str | Path):
            continue
        if not resolved and isinstance(value, str) and _ENV_RESOLVER.search(value):
            raise ValueError(f"{source}: {key}: ${{oc.env:…}} is refused: configuration values are logged to "
                             f"MLflow and written with the outputs, so an environment variable read here would be "
                             f"too; write the value itself, and for secrets {USE_THE_ENVIRONMENT}")
        check_location(value, f"{source}: {key}")


@functools.lru_cache(maxsize=8)
def _file_config(path: Path, mtime_ns: int, size: int) -> DictConfig:
    """The schema merged with the YAML file `path` (kept per version of the file: OmegaConf's merge of the whole
    schema takes most of a load; every later merge copies, so the kept one is never changed)."""
    try:
        text = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"configuration {path} is not valid YAML: {err}") from None
    _refuse_secrets(text, f"configuration {path}")  # as written: a Path field would hide 'scheme://'
    return _merge(_schema(), OmegaConf.create(text), str(path))


def load_config(config: str | Path = DEFAULT_CONFIG, overrides: list[str] | tuple[str, ...] = (),
                section: str | None = None, layers: list[dict] | tuple[dict, ...] = ()) -> Any:
    """The configuration of `config` (a file or a name in configs/), then `layers` (dicts of settings, e.g. a
    sweep's best_sampling.yaml), then `overrides`; the whole `PipelineConfig`, or its `section` (train, sweep,
    sampling, evaluation, sim), to which the layers' and overrides' keys are then relative (`vae.lr=1e-3` for the
    train section is `train.vae.lr=1e-3` for the whole)."""
    path = config_file(config)
    stat = path.stat()
    cfg = _file_config(path.resolve(), stat.st_mtime_ns, stat.st_size)
    for layer in layers:
        _refuse_secrets(layer, "settings")
        cfg = _merge(cfg, OmegaConf.create({section: layer} if section else layer), "settings", section)
    for item in overrides:
        key, _, value = item.partition("=")
        _refuse_secrets({key: value}, "override")  # not {item!r}: it may hold the secret
        cfg = _merge(cfg, _override(item, section), f"override {item!r}", section)
    try:
        whole = OmegaConf.to_object(cfg)
        _refuse_secrets(OmegaConf.to_container(cfg, resolve=True), f"configuration {path}", resolved=True)
    except OmegaConfBaseException as err:
        raise ValueError(f"configuration {path}: {err.full_key}: {_why(err)}") from None
    except SettingError as err:  # a setting out of range (a schema dataclass's __post_init__)
        raise ValueError(_out_of_range(cfg, err, section)) from None
    return getattr(whole, section) if section else whole


def _sections(node: DictConfig, path: str = "") -> Iterator[tuple[str, DictConfig]]:
    """(dotted path, node) of `node` and every section below it."""
    yield path, node
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none():
            yield from _sections(child, f"{path}.{key}" if path else str(key))


def _out_of_range(cfg: DictConfig, err: SettingError, section: str | None) -> str:
    """The refusal's message with its keys as the user writes them: prefixed by the path of the section that
    raised it (the one of its dataclass whose own conversion raises the same refusal), relative to `section`."""
    found = [path for path, node in _sections(cfg) if OmegaConf.get_type(node) is err.owner]
    for path in found if len(found) > 1 else ():
        try:
            OmegaConf.to_object(OmegaConf.select(cfg, path) if path else cfg)
        except SettingError as again:
            if again.text == err.text:
                found = [path]
                break
    where = found[0] if found else ""
    where = "" if where == section else _relative(where, section)
    return err.message(f"{where}." if where else "")


def to_yaml(cfg: Any) -> str:
    """A resolved configuration (a schema dataclass) as YAML, for MLflow and for reading."""
    return yaml.safe_dump(json.loads(json.dumps(asdict(cfg), default=str)), sort_keys=False)  # tuples as lists


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'vae': {'lr': 1}} → {'vae.lr': 1} (for MLflow params)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def add_config_arguments(ap: argparse.ArgumentParser, section: str | None) -> None:
    """--config FILE and the trailing key=value overrides (relative to `section`)."""
    where = f"its {section} section" if section else "it"
    ap.add_argument("--config", default=DEFAULT_CONFIG, help="configuration: a YAML file or the name of one in "
                    f"configs/ (tiny: 2-core CPU; small: one GPU; paper: GPUs); this entry point reads {where} "
                    "(default %(default)s)")
    example = {"train": "vae.lr=1e-3 dit.epochs=5", "sweep": "trials=16 steps=[8,100]",
               "sampling": "steps=50 cfg_scale=4", "evaluation": "ks=[5,10] seeds=8",
               "sim": "persons=3 per_person=12 radar.prf_hz=2000"}.get(section or "",
                                                                      "train.workers=4 evaluation.seeds=8")
    if section != "sim":  # the entry points that start Ray
        add_verbose_argument(ap)
    ap.add_argument("overrides", nargs="*", metavar="key=value",
                    help=f"configuration overrides, dotted keys of {where} (e.g. {example}); an unknown key is "
                         "refused, naming the valid ones")
