"""The physics-informed neural field (models/pinn.py): its QG residual against analytic values,
fits of analytic fields, what the physics term buys, window independence, errors, the CLI
end to end and the Experiment page."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from data.physics import QGPhysics
from data.synthetic import add_noise, insert_nan, mock_field
from models.pinn import (
    SECONDS_PER_DAY,
    Background,
    PINNMapper,
    PINNParams,
    WindowProblem,
    evaluate,
    fit_windows,
    qg_pv_residual,
)
from oceanlab_errors import ConfigError

PHYS = QGPhysics(f0=9e-5, beta=1.7e-11, Ld=35e3, g=9.81, source="test")
CPU = torch.device("cpu")


def _points(n: int = 200, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 3), generator=g, dtype=torch.float64) * torch.tensor(
        [6e5, 6e5, 20 * SECONDS_PER_DAY], dtype=torch.float64)


# ------------------------------------------------------------------------ (1) residual


@pytest.mark.parametrize("exact", [True, False])
def test_residual_of_a_rossby_wave(exact):
    """η = A cos(kx + ly − ωt): J(ψ, q) = 0 and R = −(gA/f0) sin θ ((K² + Ld⁻²) ω + β k),
    zero on the dispersion relation."""
    a, k, l = 0.1, 2 * math.pi / 200e3, 2 * math.pi / 300e3
    k2 = k * k + l * l + PHYS.Ld ** -2
    omega = -PHYS.beta * k / k2 if exact else 2e-6
    pts = _points()

    def eta(p):
        return a * torch.cos(k * p[..., 0] + l * p[..., 1] - omega * p[..., 2])

    r = qg_pv_residual(eta, pts, PHYS).detach()
    theta = k * pts[:, 0] + l * pts[:, 1] - omega * pts[:, 2]
    expected = -(PHYS.g * a / PHYS.f0) * torch.sin(theta) * (k2 * omega + PHYS.beta * k)
    scale = PHYS.g * a / PHYS.f0 * PHYS.beta * k  # the size of one term
    assert torch.allclose(r, expected, rtol=0, atol=1e-9 * scale)
    if exact:
        assert float(r.abs().max()) < 1e-9 * scale
    else:
        assert float(expected.abs().max()) > 5 * scale


def test_residual_jacobian_with_a_background():
    """ψ = a cos kx (network) + b cos ly (background): J = a b k l (k² − l²) sin kx sin ly,
    β ψ_x = −β a k sin kx, ∂q/∂t = 0 — the background enters through its derivatives."""
    c = PHYS.g / PHYS.f0
    ea, eb, k, l = 0.1, 0.3, 2 * math.pi / 150e3, 2 * math.pi / 400e3
    a, b = c * ea, c * eb
    pts = _points(seed=1)
    x, y = pts[:, 0], pts[:, 1]
    k2l = l * l + PHYS.Ld ** -2
    bg = Background(psi_x=torch.zeros_like(x), psi_y=-b * l * torch.sin(l * y),
                    q_x=torch.zeros_like(x), q_y=k2l * b * l * torch.sin(l * y))
    r = qg_pv_residual(lambda p: ea * torch.cos(k * p[..., 0]), pts, PHYS, bg).detach()
    expected = (a * b * k * l * (k * k - l * l) * torch.sin(k * x) * torch.sin(l * y)
                - PHYS.beta * a * k * torch.sin(k * x))
    assert torch.allclose(r, expected, rtol=1e-6, atol=1e-6 * float(expected.abs().max()))


# ------------------------------------------------------------------- (2), (3) fitting


def _grid_nodes(n: int = 21, half: float = 3e5) -> np.ndarray:
    g = np.linspace(-half, half, n)
    gx, gy = np.meshgrid(g, g)
    return np.stack([gx.ravel(), gy.ravel()], 1)


def _problem(pts: np.ndarray, values: np.ndarray, t_range: tuple[float, float],
             nodes: np.ndarray | None = None) -> WindowProblem:
    nodes = _grid_nodes() if nodes is None else nodes
    return WindowProblem(obs_p=pts[None], obs_y=values[None], obs_n=np.array([len(values)]),
                         col_xy=nodes, col_bg=np.zeros((len(nodes), 4)),
                         col_t=np.array([t_range]) * SECONDS_PER_DAY)


TINY = {"hidden": 32, "layers": 2, "features": 32, "data_points": 256,
        "collocation_points": 128, "lr": 5e-3}


@pytest.mark.parametrize(("encoding", "weight", "adaptive"),
                         [("fourier", 0.0, "none"), ("siren", 0.4, "gradnorm")])
def test_fit_reconstructs_a_smooth_field_from_scattered_samples(encoding, weight, adaptive):
    rng = np.random.default_rng(0)
    k = 2 * math.pi / 400e3

    def field(x, y, t):
        return 0.1 * np.cos(k * x + 0.5 * k * y - 0.1 * t) + 0.05 * np.sin(0.7 * k * y)

    n = 600
    pts = np.stack([rng.uniform(-3e5, 3e5, n), rng.uniform(-3e5, 3e5, n),
                    rng.uniform(-5, 5, n) * SECONDS_PER_DAY], 1)
    vals = field(pts[:, 0], pts[:, 1], pts[:, 2] / SECONDS_PER_DAY)
    params = PINNParams(steps=400, physics_weight=weight, adaptive=adaptive, encoding=encoding,
                        length_scale_km=100, time_scale_days=5, **TINY)
    net, info = fit_windows(_problem(pts, vals, (-5, 5)), params, PHYS, CPU, seed=0)
    if adaptive == "gradnorm":
        assert info["history"][-1]["lambda"] != 1.0  # λ was rebalanced
    nodes = _grid_nodes(15, 2.5e5)
    test = np.concatenate([nodes, np.zeros((len(nodes), 1))], 1)
    pred = evaluate(net, info, torch.as_tensor(test[None], dtype=torch.float32))[0].numpy()
    truth = field(test[:, 0], test[:, 1], 0.0)
    rel = np.sqrt(np.mean((pred - truth) ** 2)) / np.std(truth)
    assert rel < 0.1, rel


def test_physics_term_improves_extrapolation_of_a_rossby_wave():
    """Data only over days −6…0 of a Rossby wave; the physics term (collocation up to day 6)
    makes the extrapolation to days 2…6 closer to the truth than the data alone."""
    phys = QGPhysics(f0=1e-4, beta=1e-10, Ld=100e3, g=9.81, source="test")
    k, l = 2 * math.pi / 300e3, 2 * math.pi / 600e3
    omega = -phys.beta * k / (k * k + l * l + phys.Ld ** -2)  # period ≈ 19 days

    def field(x, y, t_days):
        return 0.1 * np.cos(k * x + l * y - omega * t_days * SECONDS_PER_DAY)

    rng = np.random.default_rng(1)
    n = 800
    pts = np.stack([rng.uniform(-3e5, 3e5, n), rng.uniform(-3e5, 3e5, n),
                    rng.uniform(-6, 0, n) * SECONDS_PER_DAY], 1)
    vals = field(pts[:, 0], pts[:, 1], pts[:, 2] / SECONDS_PER_DAY)
    problem = _problem(pts, vals, (-6, 6))
    nodes = _grid_nodes(11, 2.5e5)
    test = np.concatenate([np.concatenate([nodes, np.full((len(nodes), 1), d * SECONDS_PER_DAY)], 1)
                           for d in (2, 4, 6)])
    truth = field(test[:, 0], test[:, 1], test[:, 2] / SECONDS_PER_DAY)
    errors = {}
    for weight in (0.0, 1.0):
        params = PINNParams(steps=300, physics_weight=weight, length_scale_km=100,
                            time_scale_days=6, **TINY)
        net, info = fit_windows(problem, params, phys if weight else None, CPU, seed=0)
        pred = evaluate(net, info, torch.as_tensor(test[None], dtype=torch.float32))[0].numpy()
        errors[weight] = float(np.sqrt(np.mean((pred - truth) ** 2)))
    assert errors[1.0] < 0.7 * errors[0.0], errors


# --------------------------------------------------------------- the mapper on tasks


def _dataset(n_time: int = 40, qg: bool = True):
    ds = mock_field(n_time=n_time, n_lat=12, n_lon=14, step_deg=0.25, land=True, seed=1)
    ds["ssh_obs"] = add_noise(insert_nan(ds["ssh"], 0.8, seed=2), 0.005, seed=3)
    ds["ssh_obs"].attrs = {"units": "m"}
    if qg:
        ds.attrs.update(qg_f0=9e-5, qg_beta=1.7e-11, qg_Ld=35e3, qg_g=9.81)
    return ds


def _task(ds, physics: bool = True):
    from data.physics import resolve_physics
    from data.tasks.interpolation import build_interpolation_task

    task = build_interpolation_task(ds, "ssh", "ssh_obs", min_days=10)
    if physics:
        task.physics, task.physics_note = resolve_physics(ds.attrs)
    return task


def test_windows_are_independent():
    """Changing the observations seen only by the first window changes its days and no
    other window's."""
    task = _task(_dataset(n_time=60))
    times = task.times("test")[:6]
    params = PINNParams(steps=30, window_days=2, stride_days=3, physics_weight=0.1, **TINY)
    before = PINNMapper(params, CPU, seed=0).predict(task, times)
    # window 1 is centred on day 1 of ``times`` and sees days 0…2, window 2 days 3…5
    first = pd.DatetimeIndex([times[0] - pd.Timedelta(days=1), times[0]])
    task.obs.loc[{"time": first}] = task.obs.sel(time=first) + 0.05
    after = PINNMapper(params, CPU, seed=0).predict(task, times)
    assert before.dims == ("time", "lat", "lon") and before.shape[0] == 6
    diff = np.abs(after.values - before.values)
    assert np.nanmax(diff[:3]) > 1e-3
    np.testing.assert_array_equal(after.values[3:], before.values[3:])
    assert np.isnan(before.values[:, ~task.mask.values]).all()


def test_physics_weight_without_constants_is_a_config_error():
    task = _task(_dataset(qg=False))
    note = task.physics_note
    with pytest.raises(ConfigError, match="physics_weight") as info:
        PINNMapper(PINNParams(steps=2, **TINY), CPU).predict(task, task.times("test")[:2])
    assert note in str(info.value) and "\n" not in str(info.value)
    # data only needs no constants
    out = PINNMapper(PINNParams(steps=2, physics_weight=0, **TINY), CPU).predict(
        task, task.times("test")[:2])
    assert np.isfinite(out.values[:, task.mask.values]).all()


def test_memory_estimate_by_part():
    task = _task(_dataset())
    parts = PINNMapper(PINNParams(**TINY), CPU).memory_estimate(task)
    assert {"collocation_graph", "data_batch", "observations", "output"} <= set(parts)
    assert all(isinstance(v, int) and v >= 0 for v in parts.values())
    assert parts["collocation_graph"] > 0


# ------------------------------------------------------------------------ (6) the CLI


@pytest.fixture
def qg_nc(tmp_path: Path) -> Path:
    path = tmp_path / "qg.nc"
    _dataset(n_time=60).drop_vars("mask").to_netcdf(path)
    return path


SMALL = ["--set", "model.steps=15", "--set", "model.hidden=16", "--set", "model.layers=2",
         "--set", "model.features=16", "--set", "model.data_points=128",
         "--set", "model.collocation_points=64"]


@pytest.mark.parametrize("task", ["interpolation", "forecast"])
def test_cli_train_pinn(capsys, qg_nc, tmp_path, task):
    from app.cli import main

    extra = (["--set", "task.history=2", "--set", "task.horizon=2", "--set",
              "task.start_stride=3"] if task == "forecast" else ["--obs", "ssh_obs"])
    code = main(["train", "--data", str(qg_nc), "--var", "ssh", "--task", task, "--model",
                 "pinn", "--device", "cpu", "--runs-dir", str(tmp_path / "runs"), "--json",
                 *extra, *SMALL])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "done", result
    assert np.isfinite(result["metrics"]["rmse"])
    # the window fits report their steps: live progress and history.csv
    import pandas as pd

    run_dir = tmp_path / "runs" / result["run_id"]
    history = pd.read_csv(run_dir / "history.csv")
    steps = int(history["epochs"].iloc[-1])
    assert history["epoch"].iloc[-1] == steps and len(history) >= 2
    assert np.allclose(history["train_loss"], history["data_loss"] + history["physics_loss"])
    info = json.loads((run_dir / "run.json").read_text())
    assert (info["progress"]["epoch"], info["progress"]["epochs"]) == (steps, steps)
    assert info["progress"]["stage"] == "done"


# --------------------------------------------------------------- (7) the Experiment page


def test_experiment_page_lists_pinn(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("OCEANLAB_HOME", str(tmp_path / "home"))
    path = tmp_path / "home" / "datasets" / "qg.nc"
    path.parent.mkdir(parents=True)
    ds = _dataset(n_time=30).drop_vars("mask")
    ds.attrs.update(oceanlab_truth_var="ssh", oceanlab_obs_var="ssh_obs")
    ds.to_netcdf(path)
    page = Path(__file__).resolve().parents[1] / "app" / "pages" / "2_Experiment.py"
    at = AppTest.from_file(str(page), default_timeout=30).run()
    at.radio(key="exp.source").set_value("path").run()
    at.text_input(key="exp.path").input(str(path)).run()
    assert not at.exception
    assert "pinn" in at.selectbox(key="exp.model").options
    at.selectbox(key="exp.model").set_value("pinn").run()
    assert not at.exception
    weight = at.number_input(key="exp.model.pinn.physics_weight")
    assert weight.value == PINNParams.model_fields["physics_weight"].default
    assert at.selectbox(key="exp.model.pinn.encoding").options == ["fourier", "siren"]
