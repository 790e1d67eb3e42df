"""Human labels (with units) for the fields of the config sections drawn as form widgets.

:func:`field_label` is what the Experiment form shows instead of the raw config key: the
pydantic field's ``title`` when it has one, else an entry of :data:`LABELS` (by
``"section.name"`` first, then by ``name``), else a readable form of the name with its unit
suffix spelled out (``lx_deg`` → ``Lx (°)``, ``window_days`` → ``Window (days)``). The key
itself stays visible in the help tooltip (:func:`config_key_help`), for those who write YAML
or ``--set section.name=value``.

:func:`period_hint` says what an empty train / validation / test period becomes (the rule of
:func:`data.tasks.base.split_periods`), and on a known dataset the dates it gives.
"""

from __future__ import annotations

from typing import Any

#: Labels of known fields: ``"section.name"`` (a field whose meaning depends on the section)
#: or ``name`` (the same everywhere). Units in parentheses; "steps" = time steps of the data.
LABELS: dict[str, str] = {
    # tasks: the time split every task shares, then each task's own parameters
    "test_period": "Test period",
    "val_period": "Validation period",
    "train_period": "Training period",
    "gap_days": "Gap between periods (time steps)",
    "min_days": "Minimum record length (time steps)",
    "background": "Background removed",
    "factor": "Coarsening factor (grid cells)",
    "history": "History (time steps)",
    "horizon": "Horizon (time steps)",
    "mode": "Forecast mode",
    "init_run": "Initial condition from run",
    "start_stride": "Stride between forecast starts (time steps)",
    "climatology_window_days": "Climatology smoothing half-width (days)",
    # models
    "lx_deg": "Zonal length scale Lx (°)",
    "ly_deg": "Meridional length scale Ly (°)",
    "lt_days": "Time scale Lt (days)",
    "noise": "Noise-to-signal ratio",
    "remove_mean": "Remove the mean",
    "mean": "Mean removed",
    "superobs": "Super-observation bin (fraction of Lx, Ly)",
    "superobs_days": "Super-observation time bin (days)",
    "block_days": "Days per factorisation",
    "max_obs": "Max. super-observations per system",
    "model.precision": "Solver precision",
    "window": "Input window (time steps)",
    "model.window_days": "Window (days)",
    "base_channels": "Base channels",
    "depth": "Depth (down-sampling levels)",
    "latent": "Latent size",
    "linear": "Linear autoencoder",
    "hidden_channels": "Hidden channels",
    "layers": "Layers",
    "kernel_size": "Kernel size",
    "first_guess": "First guess",
    "first_guess_params": "First-guess OI parameters",
    "max_modes": "Max. EOF modes",
    "cv_fraction": "Cross-validation fraction",
    "tol": "Convergence tolerance",
    "max_iter": "Max. iterations",
    "train_fields": "Add training fields",
    "obs_margin_days": "Observation margin (time steps)",
    "coarsen": "Coarsening (grid cells)",
    "time_filter": "Temporal filter strength α",
    "time_filter_steps": "Temporal filter passes",
    "forecast_modes": "Forecast EOF modes",
    "ridge": "Ridge (relative)",
    "residual": "Residual outside the EOFs",
    "encoding": "Input encoding",
    "hidden": "Hidden width",
    "features": "Fourier features",
    "length_scale_km": "Length scale L (km)",
    "time_scale_days": "Time scale T (days)",
    "stride_days": "Days per window",
    "steps": "Optimiser steps",
    "model.lr": "Learning rate",
    "data_points": "Data points per step",
    "collocation_points": "Collocation points per step",
    "physics_weight": "Physics weight λ",
    "adaptive": "Adaptive weighting",
    "adaptive_every": "Steps between λ updates",
    "adaptive_ema": "λ EMA factor",
    "model.weight_decay": "Weight decay",
    # training
    "epochs": "Epochs",
    "seed": "Random seed",
    "device": "Device",
    "optimizer": "Optimiser",
    "lr": "Learning rate",
    "weight_decay": "Weight decay",
    "scheduler": "Learning-rate schedule",
    "batch_size": "Batch size (patches)",
    "patch_size": "Patch size (grid points)",
    "steps_per_epoch": "Steps per epoch",
    "flips": "Random flips",
    "transposes": "Random transposes",
    "loss": "Loss terms",
    "resample_obs": "Resampled observations (share)",
    "early_stopping_patience": "Early-stopping patience (epochs)",
    "train.precision": "Precision",
    "compile": "torch.compile",
    "strategy": "Strategy",
    "devices": "Devices (GPUs)",
    # data
    "path": "Dataset path",
    "var": "Variable",
    "obs": "Observations",
    "aux": "Extra inputs",
    "obs_noise": "Simulated observation noise (data units)",
    "obs_seed": "Simulated observation seed",
    "physics": "QG constants",
}

#: Unit suffixes of field names and how a label writes them.
UNITS: dict[str, str] = {"deg": "°", "days": "days", "day": "days", "km": "km", "m": "m",
                         "s": "s", "h": "hours", "hours": "hours", "gb": "GB", "steps": "steps",
                         "pct": "%"}

#: What an empty (None) field means, for fields whose default is not a value to show.
EMPTY_HINTS: dict[str, str] = {
    "init_run": "empty: the true field",
    "model.window_days": "empty: task.climatology_window_days",
    "flips": "empty: where the task allows it",
    "transposes": "empty: where the task allows it",
    "resample_obs": "empty: the task's choice",
    "early_stopping_patience": "empty: train every epoch",
    "superobs": "empty: every observation on its own",
    "aux": "empty: none",
    "physics": "empty: the data's attributes",
    "path": "empty: the built-in OSSE",
    "var": "empty: the dataset's truth variable",
    "obs": "empty: the dataset's observations, else simulated",
}

#: The automatic split of :func:`data.tasks.base.auto_periods`, per period.
PERIOD_RULES: dict[str, str] = {
    "train": "the first 70 % of the time steps",
    "val": "the next 15 %, after a gap of gap_days time steps",
    "test": "the last 15 % of the time steps, after another gap",
}
#: The same, short enough for the placeholder of a third-width text box.
PERIOD_PLACEHOLDERS: dict[str, str] = {
    "train": "empty: first 70 % of the steps",
    "val": "empty: next 15 %, after a gap",
    "test": "empty: last 15 % of the steps",
}


def _lookup(name: str, section: str | None) -> str | None:
    if section and f"{section}.{name}" in LABELS:
        return LABELS[f"{section}.{name}"]
    return LABELS.get(name)


def fallback_label(name: str) -> str:
    """A readable label from a field name: the unit suffix in parentheses, underscores as
    spaces, first letter capitalised (``lx_deg`` → ``Lx (°)``, ``wait_days`` →
    ``Wait (days)``, ``max_memory_gb`` → ``Max memory (GB)``)."""
    words = [w for w in name.strip("_").split("_") if w]
    unit = None
    if len(words) > 1 and words[-1].lower() in UNITS:
        unit = UNITS[words.pop().lower()]
    text = " ".join(words) or name
    text = text[:1].upper() + text[1:]
    return f"{text} ({unit})" if unit else text


def field_label(name: str, field: Any = None, section: str | None = None) -> str:
    """The label of field ``name`` of config ``section`` (``model``, ``task``, ``train``,
    ``data``): the pydantic ``field.title``, else :data:`LABELS`, else
    :func:`fallback_label`."""
    title = getattr(field, "title", None)
    if isinstance(title, str) and title.strip():
        return title.strip()
    return _lookup(name, section) or fallback_label(name)


def config_key(name: str, section: str | None = None) -> str:
    """``section.name`` as written in YAML files and ``--set`` (just ``name`` without one)."""
    return f"{section}.{name}" if section else name


def config_key_help(name: str, description: str | None, section: str | None = None,
                    extra: str | None = None) -> str:
    """The help tooltip of a field: its description, ``extra`` and the config key."""
    parts = [p.strip() for p in (description, extra) if p and p.strip()]
    parts.append(f"config key: `{config_key(name, section)}`")
    return "\n\n".join(parts)


def empty_hint(name: str, section: str | None = None) -> str:
    """What leaving an optional field empty means (``empty: …``), from
    :data:`EMPTY_HINTS`, else ``empty: automatic``."""
    if section and f"{section}.{name}" in EMPTY_HINTS:
        return EMPTY_HINTS[f"{section}.{name}"]
    return EMPTY_HINTS.get(name, "empty: automatic")


PERIOD_FIELDS = {"train_period": "train", "val_period": "val", "test_period": "test"}
_PERIOD_ATTR = "oceanlab_{}_period"


def _dates(first: Any, last: Any) -> str:
    import pandas as pd

    first, last = pd.Timestamp(first), pd.Timestamp(last)
    whole = first == first.normalize() and last == last.normalize()
    fmt = "%Y-%m-%d" if whole else "%Y-%m-%d %H:%M"
    return f"{first.strftime(fmt)}/{last.strftime(fmt)}"


def period_hint(split: str, gap_days: int = 7, times: Any = None,
                attrs: dict | None = None) -> tuple[str, str]:
    """``(placeholder, help)`` of the empty ``split`` period ("train", "val", "test").

    The rule of :func:`data.tasks.base.split_periods`: the file's ``oceanlab_<split>_period``
    attribute if it has one, else the automatic chronological split (70 % / 15 % / 15 %
    with gaps). With the dataset's ``times`` (and ``attrs``) the placeholder gives the dates
    that rule yields (``empty: 2012-10-22/2012-10-24``) and the help the dataset's time
    range and where the dates come from.
    """
    rule = PERIOD_RULES[split]
    attr = _PERIOD_ATTR.format(split)
    help_text = (f"Empty: the file's `{attr}` attribute if it has one, else automatic: {rule} "
                 f"(train 70 % / validation 15 % / test 15 % in time order, separated by gaps "
                 f"of gap_days = {gap_days} time steps, shorter on short records).")
    placeholder = PERIOD_PLACEHOLDERS[split]
    if times is None or len(times) == 0:
        return placeholder, help_text
    import pandas as pd

    times = pd.DatetimeIndex(times)
    from_file = (attrs or {}).get(attr)
    if not (isinstance(from_file, str) and from_file.strip()):
        from_file = None
    if from_file is not None:
        placeholder = f"empty: {from_file.strip()}"
        source = f"the file's `{attr}` attribute"
    elif len(times) >= 3:
        from data.tasks.base import auto_periods

        first, last = auto_periods(times, gap_days)[split]
        placeholder = f"empty: {_dates(first, last)}"
        source = "the automatic split"
    else:
        source = ""
    help_text += (f" The dataset covers {_dates(times[0], times[-1])} "
                  f"({len(times)} time steps)")
    if from_file is not None and source:  # the file's text is never Markdown: not echoed
        help_text += f"; empty here gives the period of {source} (the placeholder)."
    elif source:
        help_text += f"; empty here gives {placeholder.removeprefix('empty: ')}, from {source}."
    else:
        help_text += "."
    return placeholder, help_text
