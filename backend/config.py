"""The one typed configuration object of an experiment.

The dashboard and the CLI both build an :class:`ExperimentConfig`; library code never reads
widgets or flags. The config serialises completely into ``run.json`` and back.

Sections: ``data`` (which file and variables), ``task`` (what to reconstruct and how time is
split), ``model`` (the registered model's own parameters, with its ``name``), ``train``
(epochs, seed, device), ``limits`` (resources a run may use).

Every number must be finite (``.inf`` and ``nan`` are refused), every seed is an integer
from 0 to 2**63 - 1 (it is stored in NetCDF attributes as a signed 64-bit integer), and a
text field that is given must not be empty (leave it out, or null, for the default).
"""

from __future__ import annotations

import functools
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator

from data.tasks import TaskParams, available_tasks, get_task
from models import registry
from models.base import ModelParams
from models.trainer import TrainSettings
from oceanlab_errors import ConfigError

#: Keys that moved from a network's ``model`` section to ``train`` (issue 4); a config that
#: still gives them under ``model`` is read as if they were under ``train``.
MOVED_TO_TRAIN = ("lr", "weight_decay", "batch_size", "patch_size", "steps_per_epoch", "flips",
                  "transposes")


def __getattr__(name: str):
    if name == "TASKS":  # the registered task names (a registry, so always current)
        return tuple(available_tasks())
    raise AttributeError(name)

#: Largest seed: seeds are written to NetCDF attributes as signed 64-bit integers.
SEED_MAX = 2**63 - 1
#: Sections whose value may be written as a plain name (``model: unet`` = ``{name: unet}``).
NAMED_SECTIONS = ("task", "model")


def _check_seed(value: int) -> int:
    if not 0 <= value <= SEED_MAX:
        raise ValueError(f"a seed is an integer from 0 to 2**63-1 = {SEED_MAX}")
    return value


def _check_text(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("must not be empty (leave it out, or null, for the default)")
    if value is not None and "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class PhysicsConfig(_Section):
    """Quasi-geostrophic constants (SI) that override or supply the data's attributes
    (``qg_f0``, ``qg_beta``, ``qg_Ld``, ``qg_g``): for the PINN and ``physics_residual``."""

    f0: float | None = Field(None, description="Coriolis parameter f0 (s⁻¹), e.g. 9e-5")
    beta: float | None = Field(None, description="β = df/dy (m⁻¹ s⁻¹), e.g. 1.7e-11")
    Ld: float | None = Field(None, gt=0, description="first baroclinic deformation radius (m), "
                                                     "e.g. 35000")
    g: float | None = Field(None, gt=0, description="gravity in ψ = g η / f0 (m s⁻²); "
                                                    "default 9.81")


class DataConfig(_Section):
    path: str | None = Field(
        None, description="NetCDF file, glob, directory of NetCDF files or Zarr store; unset "
                          "(null) = the built-in OSSE dataset")
    region: list[float] | None = Field(
        None, description="lon0,lon1,lat0,lat1 (degrees): keep only this box, cut before "
                          "anything is loaded (lon0 > lon1 crosses the antimeridian); "
                          "default: the whole grid")
    period: list[str] | None = Field(
        None, description="START,END (ISO dates, END included): keep only these days, cut "
                          "before anything is loaded; default: the whole record")
    var: str | None = Field(
        None, description="variable to reconstruct; default: the dataset's truth variable or its first")
    obs: str | list[str] | None = Field(
        None, description="observation variable, or 'simulation' to sample `var` along nadir "
                          "tracks, or along-track files PATH_OR_GLOB[:VARIABLE] (gridded by "
                          "day, missions kept), or a list of these merged (cell mean where "
                          "several observe a cell); default: the dataset's observation "
                          "variable, else 'simulation'")
    aux: str | list[str] | None = Field(
        None, description="extra gridded inputs of learned interpolation models (e.g. sst), "
                          "normalised by their own training-period statistics")
    regrid: Literal["linear", "nearest", "none"] = Field(
        "linear", description="curvilinear files (2-D latitude/longitude, e.g. NEMO nav_lat/"
                              "nav_lon): put them on a regular grid by linear or nearest "
                              "interpolation, or refuse them (none)")
    regrid_step_deg: float | None = Field(
        None, gt=0, le=10, description="step (degrees) of the regular grid of a curvilinear "
                                       "file; default: its median grid spacing")
    mdt: str | None = Field(
        None, description="mean dynamic topography, PATH[:VARIABLE] of a 2-D file or a "
                          "variable of the data file: an absolute dynamic topography (adt) "
                          "becomes anomalies adt - mdt")
    obs_noise: float = Field(0.02, ge=0, description="noise (data units) of simulated observations")
    obs_seed: int = Field(0, ge=0, description="seed of the simulated observations")
    holdout: str | list[str] | None = Field(
        None, description="along-track observations (obs given as files): mission name(s) whose "
                          "samples are not inputs but kept to score the reconstruction "
                          "independently over the test period (e.g. c2)")
    physics: PhysicsConfig | None = Field(
        None, description="quasi-geostrophic constants overriding the data's attributes "
                          "(f0, beta, Ld, g), for the PINN and the physics residual")

    _texts = field_validator("path", "var", "mdt")(_check_text)
    _seeds = field_validator("obs_seed")(_check_seed)

    @field_validator("region", mode="before")
    @classmethod
    def _region(cls, value: Any) -> list[float] | None:
        if value is None:
            return None
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or len(items) != 4:
            raise ValueError("expected four numbers lon0,lon1,lat0,lat1 (e.g. -60,-30,20,45)")
        try:
            lon0, lon1, lat0, lat1 = (float(str(v).strip()) if isinstance(v, str) else float(v)
                                      for v in items)
        except (TypeError, ValueError):
            raise ValueError("expected four numbers lon0,lon1,lat0,lat1 (e.g. -60,-30,20,45)"
                             ) from None
        if any(isinstance(v, bool) for v in items) or not all(
                math.isfinite(v) for v in (lon0, lon1, lat0, lat1)):
            raise ValueError("expected four finite numbers lon0,lon1,lat0,lat1")
        if not (-90 <= lat0 < lat1 <= 90):
            raise ValueError(f"latitudes must satisfy -90 <= lat0 < lat1 <= 90 (got lat0 "
                             f"{lat0:g}, lat1 {lat1:g})")
        if not (-180 <= lon0 <= 360 and -180 <= lon1 <= 360):
            raise ValueError(f"longitudes must lie in -180..360 (got lon0 {lon0:g}, lon1 "
                             f"{lon1:g})")
        if lon0 == lon1:
            raise ValueError("lon0 and lon1 are equal: the region has no width")
        return [lon0, lon1, lat0, lat1]

    @field_validator("period", mode="before")
    @classmethod
    def _period(cls, value: Any) -> list[str] | None:
        import datetime

        import pandas as pd

        if value is None:
            return None
        items = value.replace("/", ",").split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or len(items) != 2:
            raise ValueError("expected two dates START,END (e.g. 2012-10-01,2012-12-31)")
        out = []
        for v in items:
            if isinstance(v, datetime.date):
                v = v.isoformat()
            text = str(v).strip()
            try:
                pd.Timestamp(datetime.date.fromisoformat(text) if len(text) <= 10 else text)
            except (TypeError, ValueError):
                raise ValueError(f"{text!r} is not an ISO date such as 2012-10-01") from None
            out.append(text)
        if pd.Timestamp(out[1]) < pd.Timestamp(out[0]):
            raise ValueError(f"ends before it starts ({out[0]} > {out[1]})")
        return out

    @field_validator("obs", "aux", "holdout")
    @classmethod
    def _names(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list):
            if not value:
                raise ValueError("must name at least one variable (leave it out, or null, "
                                 "for the default)")
            if len(set(value)) != len(value):
                raise ValueError(f"names a variable twice: {value}")
            for v in value:
                _check_text(v)
            return value[0] if len(value) == 1 else value
        return _check_text(value)


#: The ``train`` section: how networks are trained (defined beside the trainer).
TrainConfig = TrainSettings


class LimitsConfig(_Section):
    max_memory_gb: float | None = Field(
        None, gt=0, description="refuse a run whose estimated memory exceeds this (GB); "
                                "default: half of this machine's memory")


class BackendConfig(_Section):
    """Where and how runs execute; none of it changes a run's result (not part of the key
    under which finished runs are reused)."""

    executor: Literal["local", "dask"] = Field(
        "local", description="local worker processes (default), or an existing Dask "
                             "distributed cluster at `scheduler`")
    scheduler: str | None = Field(
        None, description="address of the Dask scheduler (tcp://host:8786) for executor dask")
    slots: int | None = Field(
        None, ge=1, le=256, description="runs executed at once by the local workers; default "
                                        "OCEANLAB_SLOTS, else one per GPU, one on a CPU-only "
                                        "machine")

    _texts = field_validator("scheduler")(_check_text)


def _registered_params(value: Any, base: type[BaseModel], section: str, example: str,
                       params_of, default: str | None = None) -> BaseModel:
    """The parameters of the registered task or model that ``value`` names: a Params object,
    a plain name, or a dict with ``name`` (``default`` when absent)."""
    if isinstance(value, base):
        return value
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise ValueError(f"{section} needs a 'name' (e.g. {{name: {example}}})")
    if default is not None:
        value = {"name": default, **value}
    if "name" not in value:
        raise ValueError(f"{section} needs a 'name' (e.g. {{name: {example}}})")
    if not isinstance(value["name"], str):
        raise ValueError(f"{section} name must be a text such as {example!r} (got {value['name']!r})")
    return params_of(value["name"])(**value)


class ExperimentConfig(_Section):
    """data, task, model, train and limits; ``task`` and ``model`` are the registered
    classes' own parameters, chosen by their ``name`` (a union discriminated through the
    registries, so that a task or model added in one file is a valid section at once)."""

    data: DataConfig = Field(default_factory=DataConfig)
    task: SerializeAsAny[TaskParams] = Field(default_factory=lambda: get_task("interpolation").Params())
    model: SerializeAsAny[ModelParams]
    train: TrainConfig = Field(default_factory=TrainConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    backend: BackendConfig = Field(default_factory=BackendConfig)

    @field_validator("task", mode="before")
    @classmethod
    def _task_params(cls, value: Any) -> TaskParams:
        return _registered_params(value, TaskParams, "task", "forecast",
                                  lambda name: get_task(name).Params, default="interpolation")

    @field_validator("model", mode="before")
    @classmethod
    def _model_params(cls, value: Any) -> ModelParams:
        return _registered_params(value, ModelParams, "model", "oi",
                                  lambda name: registry.get(name).Params)

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


#: Section name → its class (``model`` is the registered model's ``Params``).
SECTIONS: tuple[str, ...] = tuple(ExperimentConfig.model_fields)
_SECTION_CLASSES: dict[str, type[BaseModel]] = {
    "data": DataConfig, "train": TrainConfig, "limits": LimitsConfig, "backend": BackendConfig}


def max_memory_bytes(config: ExperimentConfig) -> int:
    """The most memory (bytes) a run of ``config`` may need: ``limits.max_memory_gb``
    (GB = 2**30 bytes, as :mod:`backend.resources` counts) when set, else half of this
    machine's physical memory."""
    if config.limits.max_memory_gb is not None:
        return int(config.limits.max_memory_gb * 2**30)
    return physical_memory_bytes() // 2


def physical_memory_bytes() -> int:
    """Total physical memory of this machine (bytes); 8 GB when it cannot be read."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        if total > 0:
            return int(total)
    except (AttributeError, ValueError, OSError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:  # psutil missing or unsupported platform
        return 8 * 10**9


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        got = err.get("input")
        got_text = f" (got {_short(got)})" if not isinstance(got, dict | list) else ""
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}{got_text}")
    return "invalid configuration: " + "; ".join(parts)


def _type_name(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


def normalise_sections(base: Any, where: str | None = None) -> dict[str, dict]:
    """Check the shape of a config dict (a YAML file's content) and copy it.

    ``where`` names the origin in messages (the file). Each section must be a mapping of
    fields, or empty; ``task`` and ``model`` may also be a plain name (``model: unet``).
    Raises ConfigError naming the section otherwise, or for an unknown section.
    """
    at = f"{where}: " if where else ""
    if base is None:
        return {}
    if not isinstance(base, dict):
        raise ConfigError(f"{at}expected a mapping of sections ({', '.join(SECTIONS)}), "
                          f"got {_type_name(base)}")
    out: dict[str, dict] = {}
    for key, value in base.items():
        if key not in SECTIONS:
            raise ConfigError(f"{at}unknown config section {str(key)!r}; "
                              f"sections are: {', '.join(SECTIONS)}")
        if value is None:
            value = {}
        elif isinstance(value, str) and key in NAMED_SECTIONS:
            value = {"name": value}
        if not isinstance(value, dict):
            example = "{name: oi, ...}" if key == "model" else "{field: value, ...}"
            raise ConfigError(f"{at}config section {key!r} must be a mapping of fields such as "
                              f"{example}, got {_type_name(value)} {_short(value)}")
        out[key] = dict(value)
    return out


def _annotation_kinds(annotation: Any) -> set:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return {a for a in typing.get_args(annotation) if a is not type(None)}
    return {annotation}


def _check_fields(section: str, cls: type[BaseModel], values: dict, owner: str) -> None:
    """Unknown fields and booleans given for numbers: ConfigError listing the valid fields."""
    fields = cls.model_fields
    for key in sorted(values, key=str):
        if key not in fields:
            valid = ", ".join(f for f in fields if not (section == "model" and f == "name"))
            raise ConfigError(f"{section}.{key}: not a {owner}; valid: {valid}")
        kinds = _annotation_kinds(fields[key].annotation)
        if isinstance(values[key], bool) and bool not in kinds and kinds & {int, float}:
            raise ConfigError(f"{section}.{key}: expected a number, got {values[key]!r}")


def build_config(
    task: str = "interpolation",
    model: str = "oi",
    base: dict | None = None,
    overrides: dict[str, Any] | None = None,
) -> ExperimentConfig:
    """Build and validate a config from a base dict (a YAML file's content) and dotted overrides.

    Parameters
    ----------
    task, model : task and model names (used when ``base`` does not set them).
    base : nested dict, e.g. loaded from a YAML file.
    overrides : ``{"section.field": value}``, applied last (``--set`` and the CLI flags).

    Raises
    ------
    ConfigError : unknown section or field, invalid value; the message lists what is valid.
    """
    raw = normalise_sections(base)
    raw.setdefault("task", {}).setdefault("name", task)
    raw.setdefault("model", {}).setdefault("name", model)
    for key, value in (overrides or {}).items():
        section, _, field = key.partition(".")
        if not field or section not in SECTIONS:
            raise ConfigError(f"--set {key}: expected section.field with section one of "
                              f"{', '.join(SECTIONS)}")
        raw.setdefault(section, {})[field] = value
    name = raw["model"]["name"]
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"model.name: expected a model name such as 'oi' (got {_short(name)}); "
                          f"choose one of: {', '.join(registry.available())}")
    task_name = raw["task"]["name"]
    if not isinstance(task_name, str):
        raise ConfigError(f"task.name: expected a task name (got {_short(task_name)}); "
                          f"choose one of: {', '.join(available_tasks())}")
    task_cls = get_task(task_name)
    model_cls = registry.get(name)
    if not model_cls.supports(task_name):
        valid = registry.available(task_name)
        raise ConfigError(f"model {name!r} does not support the {task_name} task; models for "
                          f"{task_name}: {', '.join(valid) or 'none'}")
    params_cls = model_cls.Params
    for key in MOVED_TO_TRAIN:  # older configs and scripts: model.lr → train.lr
        if key in raw["model"] and key not in params_cls.model_fields:
            raw.setdefault("train", {}).setdefault(key, raw["model"].pop(key))
    for section, values in raw.items():
        if section == "model":
            _check_fields(section, params_cls, values, f"parameter of model {name!r}")
        elif section == "task":
            _check_fields(section, task_cls.Params, values, f"parameter of task {task_name!r}")
        else:
            _check_fields(section, _SECTION_CLASSES[section], values, f"field of section {section!r}")
    try:
        return ExperimentConfig(**raw)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


def _yaml_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError):
        return text


def parse_set(items: list[str]) -> dict[str, Any]:
    """Parse ``["model.lt_days=7", ...]``; values are read as YAML scalars (7 → int)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected section.field=value")
        out[key.strip()] = _yaml_scalar(text) if text.strip() else None
    return out


def load_yaml(path: str | Path) -> dict:
    """Read a YAML config file into a dict of sections (ConfigError naming the file on failure).

    The shape is checked (see :func:`normalise_sections`): the result maps known section
    names to dicts.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, expected a YAML config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not a text file (not UTF-8 at byte {exc.start}); "
                          f"expected a YAML config file") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read this config file ({exc.strerror or exc})") from None
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{p}: not a usable YAML config ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"{p}: expected a mapping of sections ({', '.join(SECTIONS)}), "
                          f"got {_type_name(content)}")
    return normalise_sections(content, where=str(p))


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{"section.field": value}``."""
    out: dict[str, Any] = {}
    for k, v in (d.items() if isinstance(d, dict) else []):
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def summarize(config: dict) -> str:
    """The settings of a run that tell it apart: every field that differs from the default
    config of its task and model (``model.lt_days=7 · train.epochs=3``), plus the epochs and
    seed of a trained model. A config of another version (an unknown model or task) is
    summarised as far as it goes."""
    config = config if isinstance(config, dict) else {}
    task = str((config.get("task") or {}).get("name") or "interpolation") \
        if isinstance(config.get("task"), dict) else "interpolation"
    model = str((config.get("model") or {}).get("name") or "") \
        if isinstance(config.get("model"), dict) else ""
    default, trained = _defaults(task, model)
    given = flatten(config)
    parts = [f"{k}={v}" for k, v in given.items()
             if k not in ("model.name", "task.name") and default.get(k, object()) != v]
    for key in ("train.epochs", "train.seed") if trained else ():
        if key in given and not any(p.startswith(key + "=") for p in parts):
            parts.append(f"{key}={given[key]}")
    return " · ".join(parts)


@functools.lru_cache(maxsize=64)
def _defaults(task: str, model: str) -> tuple[dict, bool]:
    """The flattened default config of ``task`` and ``model`` and whether the model trains
    (``({}, False)`` for names no longer registered)."""
    try:
        return flatten(build_config(task, model).to_dict()), registry.get(model).trainable
    except (ConfigError, ValidationError, TypeError, ValueError):
        return {}, False
