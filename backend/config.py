"""The one typed configuration object of an experiment.

The dashboard and the CLI both build an :class:`ExperimentConfig`; library code never reads
widgets or flags. The config serialises completely into ``run.json`` and back.

Sections: ``data`` (which file and variables), ``task`` (what to reconstruct and how time is
split), ``model`` (the registered model's own parameters, with its ``name``), ``train``
(epochs, seed, device).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator

from data.errors import ConfigError
from models import registry
from models.base import ModelParams

TASKS = ("interpolation",)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    path: str | None = Field(
        None, description="NetCDF file or glob; empty = the built-in OSSE dataset")
    var: str | None = Field(
        None, description="variable to reconstruct; default: the dataset's truth variable or its first")
    obs: str | None = Field(
        None, description="observation variable, or 'simulation' to sample `var` along nadir "
                          "tracks; default: the dataset's observation variable, else 'simulation'")
    obs_noise: float = Field(0.02, ge=0, description="noise (data units) of simulated observations")
    obs_seed: int = Field(0, description="seed of the simulated observations")


class TaskConfig(_Section):
    name: Literal["interpolation"] = "interpolation"
    test_period: str | None = Field(
        None, description="'YYYY-MM-DD/YYYY-MM-DD'; default: from the file, else automatic")
    val_period: str | None = Field(None, description="'YYYY-MM-DD/YYYY-MM-DD' or automatic")
    train_period: str | None = Field(None, description="'YYYY-MM-DD/YYYY-MM-DD' or automatic")
    gap_days: int = Field(
        7, ge=0, description="days left out between automatic splits so they are not correlated")
    min_days: int = Field(10, ge=3, description="fewest time steps the task accepts")


class TrainConfig(_Section):
    epochs: int = Field(40, ge=1, description="training epochs (learned models only)")
    seed: int = Field(0, description="seed of every random choice in the run")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto' uses the GPU when there is one")


class ExperimentConfig(_Section):
    data: DataConfig = Field(default_factory=DataConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    model: SerializeAsAny[ModelParams]
    train: TrainConfig = Field(default_factory=TrainConfig)

    @field_validator("model", mode="before")
    @classmethod
    def _model_params(cls, value: Any) -> ModelParams:
        if isinstance(value, ModelParams):
            return value
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict) or "name" not in value:
            raise ValueError("model needs a 'name' (e.g. {name: oi})")
        return registry.get(value["name"]).Params(**value)

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        got = err.get("input")
        got_text = f" (got {got!r})" if not isinstance(got, dict | list) else ""
        parts.append(f"{loc}: {err['msg']}{got_text}")
    return "invalid configuration: " + "; ".join(parts)


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
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    raw: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in (base or {}).items()}
    unknown = set(raw) - set(ExperimentConfig.model_fields)
    if unknown:
        raise ConfigError(f"unknown config section {sorted(unknown)[0]!r}; "
                          f"sections are: {', '.join(ExperimentConfig.model_fields)}")
    raw.setdefault("task", {}).setdefault("name", task)
    model_section = raw.setdefault("model", {})
    model_section.setdefault("name", model)
    for key, value in (overrides or {}).items():
        section, _, field = key.partition(".")
        if not field or section not in ExperimentConfig.model_fields:
            raise ConfigError(f"--set {key}: expected section.field with section one of "
                              f"{', '.join(ExperimentConfig.model_fields)}")
        raw.setdefault(section, {})[field] = value
    name = raw["model"]["name"]
    params_cls = registry.get(name).Params
    bad = set(raw["model"]) - set(params_cls.model_fields)
    if bad:
        raise ConfigError(f"model.{sorted(bad)[0]}: not a parameter of model {name!r}; valid: "
                          f"{', '.join(f for f in params_cls.model_fields if f != 'name')}")
    try:
        return ExperimentConfig(**raw)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


def parse_set(items: list[str]) -> dict[str, Any]:
    """Parse ``["model.lt_days=7", ...]``; values are read as YAML scalars (7 → int)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected section.field=value")
        try:
            out[key.strip()] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = text
    return out


def load_yaml(path: str | Path) -> dict:
    """Read a YAML config file into a dict (ConfigError naming the file on failure)."""
    p = Path(path)
    try:
        content = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"{p}: expected a mapping of sections (data, task, model, train)")
    return content
