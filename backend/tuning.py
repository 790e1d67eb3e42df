"""Hyper-parameter search: an Optuna study on the validation period, then one ordinary run.

:func:`tune` is what ``python -m app tune`` calls:

1. the model's ``Params.search_space(trial)`` (see :meth:`models.base.ModelParams.search_space`)
   is checked before any data is read; a model without one is refused (ConfigError);
2. the task is built once; each trial merges the drawn values into the config's ``model``
   section (validated like any config), fits the model on the training split, predicts the
   **validation** period (``task.sample_times("val")``) and scores it with the task's own
   scoring. The objective is one score of :data:`metrics.scores.SCORES` (``rmse`` by
   default), minimised when lower is better and maximised when higher is better (``mu``,
   ``acc``, …). The test period is never predicted during the search;
3. a trial that raises an :class:`OceanLabError` (a covariance that is not positive definite,
   a model too large for the memory limit, …) or runs out of memory is a failed trial; the
   search goes on. When every trial fails the search raises ConfigError with the first
   reason;
4. the best parameters are run as an ordinary run (:func:`backend.runner.execute`: the same
   files as ``train``) and the study is written into that run's folder: ``tuning.json``
   (everything, every trial) and ``tuning.csv`` (one row per trial); ``run.json`` gets
   ``tuned: {metric, direction, best_value, n_trials}``.

The sampler is Optuna's TPE seeded from ``train.seed``: the same config and data give the
same trials. ``--grid FIELD=V1,V2,…`` (repeatable) sweeps the given values instead, every
combination once, in order (enqueued trials; the model needs no search space for that): the
autoencoder's reconstruction error against its latent size, for example. Optuna keeps the study in memory (no database file) and is imported only here,
only when a search runs. Progress goes to the ``backend.tuning`` logger (INFO); Optuna's own
logging is reduced to warnings and sent through Python's logging (stderr), never stdout.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from oceanlab_errors import ConfigError, OceanLabError

if TYPE_CHECKING:
    from backend.config import ExperimentConfig
    from backend.store import Run, RunStore
    from data.tasks import Task
    from models.base import Mapper, ModelParams

log = logging.getLogger(__name__)

TUNING_JSON = "tuning.json"
TUNING_CSV = "tuning.csv"
#: Trials of ``python -m app tune`` when ``--trials`` is not given.
DEFAULT_TRIALS = 30
#: The split every trial is scored on.
SEARCH_SPLIT = "val"


@dataclass
class TrialRecord:
    """One trial of the study: the model parameters it tried and what came of them."""

    number: int
    params: dict[str, Any]
    value: float | None
    state: str  # "COMPLETE" or "FAIL"
    duration_s: float
    error: str | None = None

    def to_dict(self) -> dict:
        return {"number": self.number, "params": self.params, "value": self.value,
                "state": self.state, "duration_s": self.duration_s, "error": self.error}


@dataclass
class TuningResult:
    """The study and the final run of its best parameters (``run`` is None until it ran)."""

    study_name: str
    metric: str
    direction: str  # "minimize" or "maximize"
    seed: int
    trials: list[TrialRecord]
    best_trial: int
    best_params: dict[str, Any]
    best_value: float
    total_s: float
    timeout_s: float | None = None
    distributions: dict[str, Any] = field(default_factory=dict)
    run: Run | None = None
    #: "TPESampler" (the model's search space) or "grid" (``--grid``)
    sampler: str = "TPESampler"
    grid: dict[str, list] | None = None

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    @property
    def n_failed(self) -> int:
        return sum(t.state != "COMPLETE" for t in self.trials)

    def to_dict(self) -> dict:
        """What ``tuning.json`` holds."""
        import optuna

        return {
            "study_name": self.study_name, "metric": self.metric, "direction": self.direction,
            "split": SEARCH_SPLIT, "sampler": self.sampler, "grid": self.grid,
            "seed": self.seed,
            "n_trials": self.n_trials, "n_complete": self.n_trials - self.n_failed,
            "n_failed": self.n_failed, "best_trial": self.best_trial,
            "best_params": self.best_params, "best_value": self.best_value,
            "timeout_s": self.timeout_s, "total_s": self.total_s,
            "distributions": self.distributions, "optuna_version": optuna.__version__,
            "run_id": self.run.id if self.run is not None else None,
            "trials": [t.to_dict() for t in self.trials],
        }

    def table(self) -> pd.DataFrame:
        """What ``tuning.csv`` holds: number, state, value, duration_s, one column per
        parameter, error."""
        names: list[str] = []
        for t in self.trials:
            names += [k for k in t.params if k not in names]
        rows = [{"number": t.number, "state": t.state, "value": t.value,
                 "duration_s": t.duration_s, **{k: t.params.get(k) for k in names},
                 "error": t.error} for t in self.trials]
        return pd.DataFrame(rows, columns=["number", "state", "value", "duration_s", *names,
                                           "error"])


# -- checks made before any data is read ------------------------------------------------------
def tunable_metrics() -> list[str]:
    """Scores a search can optimise: scalar scores with a better direction."""
    from metrics.scores import SCORES

    return [k for k, s in SCORES.items() if s.better is not None and not s.per_lead]


def metric_direction(metric: str) -> str:
    """``"minimize"`` or ``"maximize"`` for ``metric`` (from :data:`metrics.scores.SCORES`);
    ConfigError for an unknown score, a per-lead list or a score without a better side."""
    from metrics.scores import SCORES

    info = SCORES.get(metric)
    valid = ", ".join(tunable_metrics())
    if info is None:
        raise ConfigError(f"--metric {metric!r}: unknown score; choose one of: {valid}")
    if info.per_lead:
        raise ConfigError(f"--metric {metric!r}: a list of scores per lead, not one number; "
                          f"choose one of: {valid}")
    if info.better is None:
        raise ConfigError(f"--metric {metric!r}: neither higher nor lower is better; "
                          f"choose one of: {valid}")
    return "minimize" if info.better == "lower" else "maximize"


def has_search_space(params_cls: type[ModelParams]) -> bool:
    """True when ``params_cls`` overrides :meth:`ModelParams.search_space`."""
    from models.base import ModelParams

    own = getattr(params_cls.search_space, "__func__", params_cls.search_space)
    return own is not ModelParams.search_space.__func__


def tunable_models(task: str | None = None) -> list[str]:
    """Registered models (for ``task``) whose parameters declare a search space."""
    from models import registry

    return [n for n in registry.available(task) if has_search_space(registry.get(n).Params)]


def check_grid(config: ExperimentConfig, grid: dict[str, list]) -> dict[str, list]:
    """``grid`` (``--grid FIELD=V1,V2,…``) checked against the config's model: known fields,
    at least one value each, no value twice, and every value valid for its field (each is
    validated like ``--set model.FIELD=V``). Returns it. Reads no data."""
    from models import registry

    name = config.model.name
    params_cls = registry.get(name).Params
    if not grid:
        raise ConfigError("--grid: give at least one FIELD=V1,V2,…")
    for key, values in grid.items():
        if key not in params_cls.model_fields or key == "name":
            valid = ", ".join(f for f in params_cls.model_fields if f != "name")
            raise ConfigError(f"--grid {key}: not a parameter of model {name!r}; valid: {valid}")
        if not values:
            raise ConfigError(f"--grid {key}: give at least one value")
        odd = [v for v in values if not isinstance(v, str | int | float | bool) or v is None]
        if odd:
            raise ConfigError(f"--grid {key}: values must be numbers, texts or booleans "
                              f"(got {odd[0]!r})")
        if len({repr(v) for v in values}) != len(values):
            raise ConfigError(f"--grid {key}: a value is given twice ({values})")
        for v in values:
            with_model_params(config, {key: v})
    return grid


def grid_size(grid: dict[str, list]) -> int:
    return math.prod(len(v) for v in grid.values())


def check_search_space(config: ExperimentConfig) -> None:
    """ConfigError unless the config's model declares a usable search space: one that draws
    at least one parameter, only fields of the model's Params. Reads no data."""
    import optuna

    from models import registry

    _quiet_optuna()
    name = config.model.name
    params_cls = registry.get(name).Params
    if not has_search_space(params_cls):
        others = tunable_models(config.task.name)
        raise ConfigError(f"model {name!r} declares no search space for tuning; models of the "
                          f"{config.task.name} task that can be tuned: {', '.join(others) or 'none'}")
    probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    space = _drawn(params_cls, probe, name)
    if not space:
        raise ConfigError(f"model {name!r}: its search space draws no parameter")


def _drawn(params_cls: type[ModelParams], trial: Any, name: str) -> dict[str, Any]:
    space = params_cls.search_space(trial)
    if not isinstance(space, dict):
        raise ConfigError(f"model {name!r}: search_space returned {type(space).__name__}, "
                          f"expected a dict of parameters")
    unknown = sorted(str(k) for k in space if k not in params_cls.model_fields or k == "name")
    if unknown:
        valid = ", ".join(f for f in params_cls.model_fields if f != "name")
        raise ConfigError(f"model {name!r}: its search space draws {', '.join(unknown)}, not "
                          f"parameters of the model; valid: {valid}")
    return dict(space)


def with_model_params(config: ExperimentConfig, params: dict[str, Any]) -> ExperimentConfig:
    """``config`` with ``params`` replacing fields of its model section, validated like any
    config (ConfigError naming the field otherwise)."""
    from pydantic import ValidationError

    from backend.config import ExperimentConfig, _one_line

    raw = config.to_dict()
    raw["model"] = {**raw["model"], **params}
    try:
        return ExperimentConfig(**raw)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


# -- the search ------------------------------------------------------------------------------
def _quiet_optuna() -> None:
    """Optuna's INFO lines (one per trial) off; its warnings through Python's logging."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def evaluate(config: ExperimentConfig, task: Task, device: Any, label: str,
             split: str = SEARCH_SPLIT) -> dict:
    """Fit ``config``'s model on ``task``'s training split, predict ``split`` and score it
    with the task's scoring; the scores (a dict like ``metrics.json``)."""
    from backend import resources
    from backend.runner import add_physics_scores
    from models import registry

    model_cls: type[Mapper] = registry.get(config.model.name)
    _seed_everything(config.train.seed)
    model = model_cls(config.model, device=device, seed=config.train.seed)
    model.configure(config.train)
    resources.check_model(config, model, task, label)
    model.fit(task, config.train)
    times = task.sample_times(split)
    rec = model.predict(task, times)
    pred = task.prediction_dataset(rec, times)
    scores, diagnostics = task.score(pred)
    scores, _ = add_physics_scores(task, pred, scores, diagnostics)  # --metric physics_residual
    return scores


def _fmt(params: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


def search(config: ExperimentConfig, task: Task, *, n_trials: int | None = DEFAULT_TRIALS,
           metric: str = "rmse", timeout: float | None = None, device: Any = None,
           label: str = "", grid: dict[str, list] | None = None) -> TuningResult:
    """Run the study on ``task`` (already built) and return it; no run folder is written.

    ``timeout`` (seconds): no trial starts after that time (the one running finishes).
    ``grid`` (``{field: [values]}``): try every combination of these values, in order,
    instead of the model's search space (a sweep, e.g. the autoencoder's latent
    size); ``n_trials`` None (or larger) then means the whole grid.
    ConfigError when every trial failed, or when the task has no score ``metric``.
    """
    import optuna
    from optuna.trial import TrialState

    from models import registry

    if grid is not None:
        check_grid(config, grid)
        n_trials = grid_size(grid) if n_trials is None else min(n_trials, grid_size(grid))
    elif n_trials is None:
        n_trials = DEFAULT_TRIALS
    if n_trials < 1:
        raise ConfigError(f"--trials {n_trials}: a search needs at least 1 trial")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ConfigError(f"--timeout {timeout}: expected a number of seconds > 0")
    direction = metric_direction(metric)
    name = config.model.name
    params_cls = registry.get(name).Params
    seed = config.train.seed
    study_name = f"tune-{name}-{config.task.name}-{metric}-seed{seed}"
    if grid is None:
        check_search_space(config)
        sampler = optuna.samplers.TPESampler(seed=seed % 2**32)
    else:
        _quiet_optuna()
        study_name += "-grid"
        sampler = optuna.samplers.RandomSampler(seed=seed % 2**32)  # every trial is enqueued
    study = optuna.create_study(study_name=study_name, direction=direction, sampler=sampler)
    if grid is not None:
        # Every combination, in order, as enqueued trials (Optuna's GridSampler stops the
        # study from inside tell(), which the ask-and-tell loop here does not allow).
        for values in itertools.product(*grid.values()):
            study.enqueue_trial(dict(zip(grid, values, strict=True)))
    records: list[TrialRecord] = []
    distributions: dict[str, Any] = {}
    first_error: tuple[TrialRecord, str] | None = None
    start = time.perf_counter()
    for i in range(n_trials):
        if timeout is not None and i > 0 and time.perf_counter() - start >= timeout:
            log.info("timeout of %gs reached after %d trials", timeout, i)
            break
        trial = study.ask()
        tic = time.perf_counter()
        params: dict[str, Any] = {}
        error: str | None = None
        value: float | None = None
        try:
            params = (_drawn(params_cls, trial, name) if grid is None
                      else {k: trial.suggest_categorical(k, v) for k, v in grid.items()})
            scores = evaluate(with_model_params(config, params), task, device, label)
        except OceanLabError as exc:
            error = str(exc)
        except MemoryError:
            error = "out of memory"
        else:
            if metric not in scores:
                study.tell(trial, state=TrialState.FAIL)
                available = [k for k, v in scores.items() if isinstance(v, int | float)]
                raise ConfigError(f"--metric {metric!r}: the {config.task.name} task does not "
                                  f"score it; its scores: {', '.join(available) or 'none'}")
            raw = scores[metric]
            if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
                value = float(raw)
            else:
                why = (scores.get("notes") or {}).get(metric) if isinstance(scores.get("notes"), dict) else None
                error = f"{metric} is {raw!r} on the validation period" + (f" ({why})" if why else "")
        duration = round(time.perf_counter() - tic, 3)
        params = params or dict(trial.params)
        for k, dist in trial.distributions.items():
            distributions.setdefault(k, optuna.distributions.distribution_to_json(dist))
        if error is None:
            study.tell(trial, value)
            record = TrialRecord(trial.number, params, value, "COMPLETE", duration)
            log.info("trial %d/%d: %s = %.6g (%s) in %.1fs", i + 1, n_trials, metric,
                     value, _fmt(params), duration)
        else:
            study.tell(trial, state=TrialState.FAIL)
            record = TrialRecord(trial.number, params, None, "FAIL", duration, error)
            log.info("trial %d/%d failed (%s): %s", i + 1, n_trials, _fmt(params), error)
            first_error = first_error or (record, error)
        records.append(record)
    total = round(time.perf_counter() - start, 3)
    done = [r for r in records if r.state == "COMPLETE"]
    if not done:
        rec, why = first_error  # type: ignore[misc]
        raise ConfigError(f"tuning: all {len(records)} trial{'s' if len(records) != 1 else ''} "
                          f"failed; the first ({_fmt(rec.params)}): {why}")
    best = study.best_trial
    best_record = next(r for r in records if r.number == best.number)
    log.info("best %s = %.6g (trial %d: %s)", metric, best_record.value, best.number,
             _fmt(best_record.params))
    return TuningResult(study_name=study_name, metric=metric, direction=direction, seed=seed,
                        trials=records, best_trial=best.number, best_params=best_record.params,
                        best_value=float(best_record.value), total_s=total, timeout_s=timeout,
                        distributions=distributions,
                        sampler="TPESampler" if grid is None else "grid", grid=grid)


def tune(config: ExperimentConfig, store: RunStore, *, n_trials: int | None = DEFAULT_TRIALS,
         metric: str = "rmse", timeout: float | None = None,
         grid: dict[str, list] | None = None) -> TuningResult:
    """Search on the validation period, then run the best parameters as an ordinary run of
    ``store`` and record the study in its folder (see the module docstring). ``grid``: a
    sweep over these values instead of the model's search space (see :func:`search`).

    Raises an OceanLabError for bad input found before the final run (no search space, an
    unknown metric, unusable data, every trial failed); the final run itself never raises
    (its status says how it ended, as for ``train``). Returns the result with ``run`` set.
    """
    from backend import resources
    from backend.device import choose_device
    from backend.runner import build_task, execute, resolve_data_path
    from backend.store import atomic_write_bytes, atomic_write_json

    if n_trials is not None and n_trials < 1:
        raise ConfigError(f"--trials {n_trials}: a search needs at least 1 trial")
    metric_direction(metric)
    if grid is None:
        check_search_space(config)
    else:
        check_grid(config, grid)
    path = resolve_data_path(config)
    resources.check_before_loading(config, path)
    tic = time.perf_counter()
    task = build_task(config, path, store)
    log.info("task %s built in %.1fs (%d train, %d val steps); %d trials",
             config.task.name, time.perf_counter() - tic, len(task.sample_times("train")),
             len(task.sample_times(SEARCH_SPLIT)),
             n_trials if n_trials is not None else grid_size(grid or {}))
    result = search(config, task, n_trials=n_trials, metric=metric, timeout=timeout,
                    device=choose_device(config.train.device), label=str(path), grid=grid)
    del task
    best = with_model_params(config, result.best_params)
    log.info("running the best parameters on the test period")
    run = execute(best, store)
    result.run = run
    atomic_write_json(run.path / TUNING_JSON, result.to_dict())
    atomic_write_bytes(run.path / TUNING_CSV, result.table().to_csv(index=False).encode())
    run.update(tuned={"metric": metric, "direction": result.direction,
                      "best_value": result.best_value, "n_trials": result.n_trials})
    return result
