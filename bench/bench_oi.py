"""Benchmark: the OI's fast default (models/oi.py) against the exact challenge algorithm,
and the exact algorithm against the data challenge's reference notebook.

Default mode, on the built-in OSSE (``python -m app generate --if-missing`` creates it):
over the test period, the fast default (:class:`models.oi.OIParams()`: super-observations,
shared factorisations, ``noise="auto"``, the training period's mean map) and the exact
algorithm (``superobs=None, block_days=1``) with the same noise ratio and mean, so that the
difference is the speed-ups' alone. The exact one runs on a subset of the test days
(``--exact-days``; ``all`` for every day, about 5 minutes on 2 CPU cores). Prints
``key=value`` lines: wall times (the exact one also extrapolated to the whole period), the
number of observations before and after super-observations, the RMSE of the difference
(in metres, and relative to the truth's RMS and to the RMS of its anomaly about the
training period's mean) and each one's ``rmse`` and ``mu`` scores (:func:`metrics.mapping.score_mapping`)
on the common days, and the change. ``--swath`` replaces the observations by simulated
wide-swath ones (about 10× the nadir density) to time the fast mode at SWOT density.

``--vs-notebook`` mode (the former benchmark): the batched-Cholesky exact algorithm against
a transcription of the 2020a SSH mapping data challenge's baseline notebook (for each output
day, select the observations with ``|t_obs − t| < 2 Lt``, build ``BHᵀ`` and ``HBHᵀ`` column
by column in a Python loop over the observations, add ``R = noise² I``, invert explicitly
with ``np.linalg.inv``), on a drifting-eddy field sampled along inclined synthetic tracks.

No assertion on time. Usage::

    python bench/bench_oi.py                          # OSSE, 6 exact days
    python bench/bench_oi.py --exact-days all         # OSSE, every test day exact
    python bench/bench_oi.py --swath --exact-days 0   # SWOT-like density, fast mode only
    python bench/bench_oi.py --obs ssh_obs_swot --exact-days 0  # the OSSE's own swaths
    python bench/bench_oi.py --vs-notebook            # exact vs the notebook, 3 days
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from data.synthetic import add_noise, mock_field
from models.oi import OIMapper, OIParams, optimal_interpolation

OSSE = Path("workspace/datasets/osse_gulfstream_seed0.nc")


# ------------------------------------------------------------------------------ the OSSE


def swath_obs(truth: xr.DataArray, swaths_per_day: int = 3, half_width: int = 6,
              gap: int = 1, noise_std: float = 0.02, seed: int = 0) -> xr.DataArray:
    """Simulated wide-swath observations: each day ``swaths_per_day`` inclined swaths, each
    two bands of ``half_width − gap`` cells either side of a ``2·gap + 1``-cell nadir gap
    (on a 0.1° grid, 6 cells ≈ 60 km, SWOT's half swath), plus white noise."""
    rng = np.random.default_rng(seed)
    n_time, n_lat, n_lon = truth.shape
    keep = np.zeros(truth.shape, dtype=bool)
    rows = np.arange(n_lat)
    for d in range(n_time):
        for _ in range(swaths_per_day):
            slope = rng.uniform(0.3, 0.8) * rng.choice([-1.0, 1.0])
            centre = rng.uniform(0, n_lon) + slope * rows
            for off in range(-half_width, half_width + 1):
                if abs(off) > gap:
                    keep[d, rows, np.round(centre + off).astype(int) % n_lon] = True
    obs = (truth + rng.normal(0.0, noise_std, truth.shape).astype(np.float32)).where(keep)
    obs.attrs = {"units": truth.attrs.get("units", ""), "noise_std": float(noise_std)}
    obs.name = f"{truth.name}_obs"
    return obs


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux: kB


def osse_main(args: argparse.Namespace) -> None:
    from data.tasks.interpolation import build_interpolation_task
    from metrics.mapping import score_mapping

    path = Path(args.data)
    if not path.exists():
        raise SystemExit(f"{path} not found; create it with: python -m app generate --if-missing")
    ds = xr.open_dataset(path).load()
    task = build_interpolation_task(ds, "ssh", args.obs, label=str(path))
    if args.swath:
        task.obs = swath_obs(task.truth, seed=args.seed)
    times = task.times("test")
    n_obs = int(task.obs.notnull().sum())
    print(f"data={path} obs={args.obs if not args.swath else 'swath'} test_days={len(times)} obs_total={n_obs} "
          f"obs_per_day={n_obs / task.obs.sizes['time']:.0f}")
    print(f"device={args.device} torch_threads={torch.get_num_threads()} torch={torch.__version__}")
    device = torch.device(args.device)

    fast_params = OIParams(**({"max_obs": args.max_obs} if args.max_obs else {}))
    t0 = time.perf_counter()
    fast = OIMapper(fast_params, device).predict(task, times)
    t_fast = time.perf_counter() - t0
    a = fast.attrs
    print(f"fast_params={fast_params.model_dump()}")
    print(f"fast_s={t_fast:.2f} fast_s_per_day={t_fast / len(times):.3f} "
          f"peak_rss_gb={_peak_rss_gb():.2f}")
    print(f"noise_auto={a['oi_noise']:.4f} noise_source={a.get('oi_noise_source')!r} "
          f"mean_map={a['oi_mean_map']} superobs_frac={a['oi_superobs']}")
    print(f"obs_before_superobs={a['oi_n_obs']} obs_after_superobs={a['oi_n_superobs']} "
          f"reduction={a['oi_n_obs'] / max(a['oi_n_superobs'], 1):.2f}x")
    mask = task.mask
    truth = task.truth.sel(time=times)
    mu_fast_all = score_mapping(fast, truth, mask)["mu"]
    print(f"fast_mu_all_days={mu_fast_all:.4f}")

    if args.exact_days == "0":
        return
    if args.exact_days == "all":
        sub = times
    else:
        k = int(args.exact_days)
        sub = times[np.unique(np.linspace(0, len(times) - 1, k).round().astype(int))]
    exact_params = fast_params.model_copy(update={
        "superobs": None, "block_days": 1, "noise": float(a["oi_noise"])})
    t0 = time.perf_counter()
    exact = OIMapper(exact_params, device).predict(task, sub)
    t_exact = time.perf_counter() - t0
    per_day = t_exact / len(sub)
    print(f"exact_days={len(sub)} exact_s={t_exact:.2f} exact_s_per_day={per_day:.3f} "
          f"exact_s_all_days_extrapolated={per_day * len(times):.1f} "
          f"speedup={per_day * len(times) / t_fast:.1f}x peak_rss_gb={_peak_rss_gb():.2f}")
    f_sub = fast.sel(time=sub)
    t_sub = truth.sel(time=sub)
    ocean = np.asarray(mask.values, dtype=bool)[None]
    d = (f_sub.values - exact.values)[np.broadcast_to(ocean, f_sub.shape)]
    rms = float(np.sqrt(np.nanmean(t_sub.values[np.broadcast_to(ocean, t_sub.shape)] ** 2)))
    diff = float(np.sqrt(np.nanmean(d**2)))
    # the truth's anomaly about its time-mean over the training period (the mean map)
    anom = (t_sub - task.truth.sel(time=task.times("train")).mean("time")).values
    rms_anom = float(np.sqrt(np.nanmean(anom[np.broadcast_to(ocean, anom.shape)] ** 2)))
    s_fast = score_mapping(f_sub, t_sub, mask)
    s_exact = score_mapping(exact, t_sub, mask)
    print(f"diff_rmse={diff:.4f} diff_rmse_rel_truth_rms={diff / rms:.4f} "
          f"diff_rmse_rel_truth_anomaly_rms={diff / rms_anom:.4f} "
          f"diff_max_abs={float(np.nanmax(np.abs(d))):.4f}")
    print(f"rmse_exact={s_exact['rmse']:.4f} rmse_fast={s_fast['rmse']:.4f} "
          f"mu_exact={s_exact['mu']:.4f} mu_fast={s_fast['mu']:.4f} "
          f"mu_change={s_fast['mu'] - s_exact['mu']:+.4f} (on the {len(sub)} common days)")


# ------------------------------------------------------------------ against the notebook


def track_obs(truth: xr.DataArray, tracks_per_day: float, seed: int = 0) -> xr.DataArray:
    """Sample ``truth`` along inclined straight tracks crossing the domain.

    Each track crosses every latitude row once (one cell per row), with a slope of 0.3–0.8
    cells of longitude per row, ascending or descending, wrapping around in longitude; the
    number of tracks per day alternates around ``tracks_per_day``.
    """
    rng = np.random.default_rng(seed)
    n_time, n_lat, n_lon = truth.shape
    keep = np.zeros(truth.shape, dtype=bool)
    rows = np.arange(n_lat)
    for d in range(n_time):
        n_tracks = int(tracks_per_day) + (rng.random() < tracks_per_day % 1)
        for _ in range(n_tracks):
            slope = rng.uniform(0.3, 0.8) * rng.choice([-1.0, 1.0])
            cols = np.round(rng.uniform(0, n_lon) + slope * rows).astype(int) % n_lon
            keep[d, rows, cols] = True
    return truth.where(keep)


def reference_oi(obs: xr.DataArray, times: pd.DatetimeIndex, lat: np.ndarray, lon: np.ndarray,
                 lx: float, ly: float, lt: float, noise: float) -> np.ndarray:
    """The challenge's baseline OI: loop over observations, explicit inverse, per day."""
    it, iy, ix = np.nonzero(np.isfinite(obs.values))
    obs_time = (obs.time.values[it] - obs.time.values[0]) / np.timedelta64(1, "D")
    obs_lat, obs_lon = obs.lat.values[iy], obs.lon.values[ix]
    obs_val = obs.values[it, iy, ix].astype(np.float64)
    glon2, glat2 = np.meshgrid(lon, lat)
    fglon, fglat = glon2.flatten(), glat2.flatten()
    out = np.empty((len(times), len(lat), len(lon)))
    for k, t in enumerate((times - pd.Timestamp(obs.time.values[0])) / pd.Timedelta(days=1)):
        ind1 = np.where(np.abs(obs_time - t) < 2.0 * lt)[0]
        nobs = len(ind1)
        fgtime = np.full(fglon.shape, t)
        BHt = np.empty((len(fglon), nobs))
        HBHt = np.empty((nobs, nobs))
        ot, olon, olat = obs_time[ind1], obs_lon[ind1], obs_lat[ind1]
        for iobs in range(nobs):
            BHt[:, iobs] = np.exp(-((fgtime - ot[iobs]) / lt) ** 2
                                  - ((fglon - olon[iobs]) / lx) ** 2
                                  - ((fglat - olat[iobs]) / ly) ** 2)
            HBHt[:, iobs] = np.exp(-((ot - ot[iobs]) / lt) ** 2
                                   - ((olon - olon[iobs]) / lx) ** 2
                                   - ((olat - olat[iobs]) / ly) ** 2)
        R = np.diag(np.full(nobs, noise**2))
        Mi = np.linalg.inv(HBHt + R)
        sol = np.dot(np.dot(BHt, Mi), obs_val[ind1])
        out[k] = sol.reshape(len(lat), len(lon))
    return out


def notebook_main(args: argparse.Namespace) -> None:
    lx = ly = 1.0
    lt, noise = 7.0, 0.05
    n_time = 40
    ds = mock_field(n_time, args.n_grid, args.n_grid, step_deg=0.1, n_eddies=30, seed=0)
    obs = add_noise(track_obs(ds["ssh"], args.tracks_per_day, seed=1), 0.01, seed=2)
    mid = n_time // 2
    times = pd.DatetimeIndex(ds.time.values[mid:mid + args.n_days])
    lat, lon = ds.lat.values, ds.lon.values
    t_obs = np.arange(n_time)
    per_day = np.isfinite(obs.values).sum(axis=(1, 2))
    windows = [int(per_day[np.abs(t_obs - (mid + k)) < 2 * lt].sum()) for k in range(args.n_days)]
    device = torch.device(args.device)
    print(f"grid={args.n_grid}x{args.n_grid} step_deg=0.1 out_days={args.n_days} "
          f"obs_total={int(per_day.sum())} obs_per_window_max={max(windows)} "
          f"obs_per_window_min={min(windows)}")
    print(f"device={device} torch_threads={torch.get_num_threads()} torch={torch.__version__}")

    kw = dict(lx_deg=lx, ly_deg=ly, lt_days=lt, noise=noise, remove_mean=False, device=device)

    def ours(dtype: torch.dtype) -> tuple[float, np.ndarray]:
        optimal_interpolation(obs.isel(time=slice(mid - 2, mid + 2)), times[:1], lat[:5],
                              lon[:5], dtype=dtype, **kw)  # warm-up (kernels, allocator)
        best, out = np.inf, None
        for _ in range(args.repeat):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = optimal_interpolation(obs, times, lat, lon, dtype=dtype, **kw).values
            best = min(best, time.perf_counter() - t0)
        return best, out

    t64, x64 = ours(torch.float64)
    t32, x32 = ours(torch.float32)
    print(f"ours_float64_s={t64:.3f}")
    print(f"ours_float32_s={t32:.3f}")
    scale = float(np.abs(x64).max())
    print(f"float32_vs_float64_max_abs={np.abs(x32 - x64).max():.3e} "
          f"float32_vs_float64_max_rel={np.abs(x32 - x64).max() / scale:.3e}")
    if args.skip_reference:
        return
    t0 = time.perf_counter()
    ref = reference_oi(obs, times, lat, lon, lx, ly, lt, noise)
    t_ref = time.perf_counter() - t0
    diff = float(np.abs(x64 - ref).max())
    print(f"reference_s={t_ref:.3f}")
    print(f"speedup_float64={t_ref / t64:.1f}")
    print(f"speedup_float32={t_ref / t32:.1f}")
    # ours returns float32 maps: the float32 rounding (~3e-8 relative) bounds the agreement.
    print(f"max_abs_diff={diff:.3e} max_rel_diff={diff / float(np.abs(ref).max()):.3e} "
          f"field_max_abs={float(np.abs(ref).max()):.3e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data", default=str(OSSE), help="the OSSE file (default mode)")
    ap.add_argument("--exact-days", default="6",
                    help="test days the exact algorithm runs on (evenly spread), 'all', or 0")
    ap.add_argument("--obs", default="ssh_obs",
                    help="observation variable of the OSSE (ssh_obs: nadir; ssh_obs_swot where "
                         "the file has it)")
    ap.add_argument("--swath", action="store_true",
                    help="replace the observations by simulated wide swaths (~10x denser)")
    ap.add_argument("--max-obs", type=int, default=0, help="override OIParams.max_obs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verbose", action="store_true", help="log the OI's INFO messages")
    ap.add_argument("--vs-notebook", action="store_true",
                    help="exact algorithm vs the challenge's notebook on synthetic tracks")
    ap.add_argument("--n-grid", type=int, default=100, help="(--vs-notebook) cells per side")
    ap.add_argument("--n-days", type=int, default=3, help="(--vs-notebook) output days")
    ap.add_argument("--tracks-per-day", type=float, default=1.1, help="(--vs-notebook)")
    ap.add_argument("--repeat", type=int, default=2, help="(--vs-notebook) runs of ours")
    ap.add_argument("--skip-reference", action="store_true", help="(--vs-notebook)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.vs_notebook:
        notebook_main(args)
    else:
        osse_main(args)


if __name__ == "__main__":
    main()
