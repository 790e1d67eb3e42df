"""Mapping scores of the SSH mapping data challenge (see ../shared/SCIENCE.md).

Inputs are a reconstruction ``rec`` and the truth ``ref``: DataArrays with dimensions
``(time, lat, lon)`` (lat/lon in degrees, time datetime64 or numeric days), NaN on land,
numpy- or dask-backed, plus an optional ocean ``mask(lat, lon)`` (True = ocean).

Which points count
    A point (t, lat, lon) is *valid* when the mask says ocean and both ``rec`` and ``ref``
    are finite there. Every score uses the valid points only, for numerator and
    denominator alike; whatever ``rec`` holds on land never matters. Means are plain
    (unweighted) means over the valid points, as in the challenge's code, unless
    ``area_weighting="cos(latitude)"`` (:mod:`metrics.weighting`): then every spatial mean
    of ``rmse``, ``mu``, ``mu_anomaly``, ``sigma`` (RMSE(t) and RMS(ref(t))) and of the
    currents' RMSEs is the cos(latitude)-weighted mean Σ w x / Σ w over the valid points,
    w = cos(lat). The PSD score and λx/λt are spectral (spectra along each latitude row,
    rows averaged unweighted) and do not depend on the option.

Scores (keys of :func:`score_mapping`)
    ``rmse``            sqrt(mean (rec − ref)²), in the data's units.
    ``mu``              µ(RMSE) = 1 − sqrt(mean (rec − ref)²) / sqrt(mean ref²).
    ``mu_anomaly``      the same with ref's time mean at each point removed from both
                        fields: 1 − RMSE / RMS(ref − mean_t ref), the eddy score.
    ``sigma``           σ(RMSE): population standard deviation (ddof=0, numpy's default,
                        as the challenge's ``rmse_t.std()``) over time of
                        RMSE_S(t) = 1 − RMSE(t) / RMS(ref(t)), spatial means at each t.
    ``lambda_x_deg``    λx: smallest wavelength (degrees of longitude) on the 0.5 contour of
                        the PSD score; ``lambda_x_km`` the same × 111.32 × cos(mean lat).
    ``lambda_t_days``   λt: smallest period (days) on that contour.
    ``rmse_u``/``rmse_v``  RMSE of geostrophic velocity (m s-1), see :mod:`metrics.currents`.
    ``rmse_vorticity``  RMSE of relative vorticity in units of f (ζ/f, dimensionless).
    ``notes``           {key: reason} for every score that is None.

A score that cannot be computed (too few days, no 0.5 contour, a zero reference, no valid
point...) is None with a reason in ``notes``; never an invented number.
Bad input (wrong dimensions, shapes or coordinates) raises :class:`oceanlab_errors.DataError`.

PSD score
    PSD score = 1 − PSD(rec − ref) / PSD(ref), spectra from
    ``xrft.power_spectrum(da, dim=["time", "lon"], detrend="constant", window="hann")``
    (``window="hann"`` is what the challenge's ``window=True`` means in xrft 1.0) with time
    in days since the first time, lon in degrees; averaged over latitude, kept where
    freq_lon > 0 and freq_time > 0. Invalid points (land, gaps) are set to 0 in both
    ``rec − ref`` and ``ref`` before the FFT: the FFT cannot take NaN, and an all-zero
    latitude row adds nothing to either latitude-mean spectrum. The 0.5 contour is traced
    over (1/freq_lon, 1/freq_time) with contourpy's ``mpl2014`` algorithm, the engine of
    ``matplotlib.pyplot.contour`` that the challenge's code calls, and λ are the minima of
    the vertices of its first path (as the challenge's ``get_paths()[0]``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar, Protocol

import contourpy
import numpy as np
import xarray as xr
import xrft

from metrics.currents import (
    MIN_ABS_LAT,
    geostrophic_velocity,
    relative_vorticity,
)
from metrics.weighting import AREA_WEIGHTING_NONE, weighted_mean, weights_for
from oceanlab_errors import DataError

DIMS: tuple[str, str, str] = ("time", "lat", "lon")
KM_PER_DEGREE: float = 111.32
"""Kilometres per degree used to express λx in km (times cos(mean latitude))."""

SCORE_KEYS: tuple[str, ...] = (
    "rmse", "mu", "mu_anomaly", "sigma", "lambda_x_deg", "lambda_x_km", "lambda_t_days",
    "rmse_u", "rmse_v", "rmse_vorticity",
)
"""Score keys of :func:`score_mapping`, in order (``notes`` follows them)."""


class ScoreUnavailable(DataError):
    """A score or diagnostic cannot be computed on these fields; the message says why."""


@dataclass(frozen=True)
class Score:
    """One score: its value, or None and the reason it could not be computed.

    Attributes
    ----------
    value : the score as a plain float, or None.
    units : units of the value (``"1"`` for dimensionless scores).
    reason : human-readable reason when ``value`` is None, else None.
    """

    value: float | None
    units: str
    reason: str | None = None

    @classmethod
    def unavailable(cls, reason: str, units: str) -> Score:
        """A missing score with its reason."""
        return cls(None, units, reason)


@dataclass(frozen=True)
class MappingFields:
    """Validated inputs shared by every mapping metric (built by :func:`prepare_fields`).

    Attributes
    ----------
    rec, ref : float64 ``(time, lat, lon)`` DataArrays, NaN wherever ``valid`` is False;
        the same coordinates (those of ``ref``).
    valid : bool ``(time, lat, lon)``: mask says ocean and both inputs are finite.
    units : units of ``ref`` (its ``units`` attribute, ``""`` if absent).
    weights : cos(latitude) on ``lat`` when spatial means are area-weighted, else None
        (plain means).
    """

    rec: xr.DataArray
    ref: xr.DataArray
    valid: xr.DataArray
    units: str
    weights: xr.DataArray | None = None


def _as_dataarray(x: object, name: str) -> xr.DataArray:
    if isinstance(x, xr.Dataset):
        raise DataError(
            f"'{name}' is a Dataset; pass one variable, e.g. ds['ssh'] "
            f"(variables: {', '.join(map(str, x.data_vars))})."
        )
    if not isinstance(x, xr.DataArray):
        raise DataError(f"'{name}' must be an xarray DataArray, got {type(x).__name__}.")
    if set(x.dims) != set(DIMS):
        raise DataError(
            f"'{name}' must have dimensions (time, lat, lon); it has {tuple(x.dims)}."
        )
    return x.transpose(*DIMS)


def _as_mask(mask: object, ref: xr.DataArray) -> xr.DataArray:
    shape = (ref.sizes["lat"], ref.sizes["lon"])
    if isinstance(mask, xr.DataArray):
        if set(mask.dims) != {"lat", "lon"}:
            raise DataError(f"mask must have dimensions (lat, lon); it has {mask.dims}.")
        mask = mask.transpose("lat", "lon")
        values = mask.data
    else:
        values = np.asarray(mask)
    if tuple(values.shape) != shape:
        raise DataError(
            f"mask has shape {tuple(values.shape)}, but the fields have (lat, lon) = {shape}."
        )
    da = xr.DataArray(values, dims=("lat", "lon"), coords={"lat": ref["lat"], "lon": ref["lon"]})
    if da.dtype != bool:
        da = da.fillna(0) != 0
    return da


def prepare_fields(
    rec: xr.DataArray, ref: xr.DataArray, mask: xr.DataArray | np.ndarray | None = None,
    *, area_weighting: str | bool = AREA_WEIGHTING_NONE,
) -> MappingFields:
    """Check ``rec``/``ref``/``mask`` and blank out every point that is not valid.

    Parameters
    ----------
    rec, ref : ``(time, lat, lon)`` DataArrays on the same grid (any dimension order).
    mask : ``(lat, lon)`` bool, True = ocean; None means every point may count.
    area_weighting : ``"none"`` (default), ``"cos(latitude)"`` or ``"auto"``
        (:func:`metrics.weighting.resolve_area_weighting` on ``ref``'s latitudes); sets
        ``weights``.

    Returns
    -------
    MappingFields : float64 fields in ``(time, lat, lon)`` order, NaN where not valid.

    Raises
    ------
    DataError : wrong type, dimensions, shapes or coordinates.
    """
    rec = _as_dataarray(rec, "rec")
    ref = _as_dataarray(ref, "ref")
    if rec.shape != ref.shape:
        raise DataError(
            f"rec and ref differ in shape (time, lat, lon): {rec.shape} vs {ref.shape}."
        )
    for dim in DIMS:
        a, b = rec[dim].values, ref[dim].values
        same = (
            np.array_equal(a, b)
            if not (np.issubdtype(a.dtype, np.floating) and np.issubdtype(b.dtype, np.floating))
            else np.allclose(a, b, rtol=0.0, atol=1e-4)  # float32 vs float64 degrees
        )
        if not same:
            raise DataError(f"rec and ref have different '{dim}' coordinates.")
    rec = rec.assign_coords({d: ref[d] for d in DIMS})
    units = str(ref.attrs.get("units", ""))
    rec64 = rec.astype("float64")
    ref64 = ref.astype("float64")
    valid = np.isfinite(rec64) & np.isfinite(ref64)
    if mask is not None:
        valid = valid & _as_mask(mask, ref)
    valid = valid.transpose(*DIMS)
    return MappingFields(
        rec=rec64.where(valid).assign_attrs(ref.attrs),
        ref=ref64.where(valid).assign_attrs(ref.attrs),
        valid=valid,
        units=units,
        weights=weights_for(area_weighting, ref["lat"]),
    )


# --------------------------------------------------------------------------- RMSE family


def _no_valid_reason() -> str:
    return "no valid point: no ocean point where both rec and ref are finite"


def _rmse_of(a: xr.DataArray, b: xr.DataArray,
             weights: xr.DataArray | None = None) -> tuple[float, int]:
    """RMSE over the points where both are finite (cos(latitude)-weighted mean of the
    squares when ``weights`` are given), and how many there were."""
    sq = (a - b) ** 2
    stats = xr.Dataset({"mse": weighted_mean(sq, weights), "n": sq.count()}).compute()
    count = int(stats["n"])
    return (float(np.sqrt(float(stats["mse"]))) if count else float("nan")), count


def rmse_over_time(
    rec: xr.DataArray,
    ref: xr.DataArray,
    mask: xr.DataArray | np.ndarray | None = None,
    *,
    normalised: bool = False,
    area_weighting: str | bool = AREA_WEIGHTING_NONE,
) -> xr.DataArray:
    """RMSE(t) over the valid (lat, lon) points at each time.

    Parameters
    ----------
    rec, ref, mask : as for :func:`score_mapping`.
    normalised : if False, RMSE(t) = sqrt(mean_{lat,lon} (rec − ref)²) in the data's units;
        if True, the score RMSE_S(t) = 1 − RMSE(t) / RMS(ref(t)) (dimensionless) whose
        standard deviation over time is σ(RMSE).
    area_weighting : as for :func:`score_mapping` (the spatial means weighted by cos(lat)).

    Returns
    -------
    DataArray ``(time)``, computed (not lazy); NaN at times with no valid point (and, when
    normalised, where RMS(ref(t)) = 0).
    """
    fields = prepare_fields(rec, ref, mask, area_weighting=area_weighting)
    return _rmse_over_time(fields, normalised)


def _rmse_over_time(fields: MappingFields, normalised: bool) -> xr.DataArray:
    space = ("lat", "lon")
    err_t = np.sqrt(weighted_mean((fields.rec - fields.ref) ** 2, fields.weights, space))
    if not normalised:
        what = "RMSE" if fields.weights is None else "cos(latitude)-weighted RMSE"
        return err_t.compute().rename("rmse").assign_attrs(
            units=fields.units, long_name=f"{what} over ocean points at each time"
        )
    rms_ref_t = np.sqrt(weighted_mean(fields.ref**2, fields.weights, space))
    score_t = (1.0 - err_t / rms_ref_t.where(rms_ref_t > 0)).compute()
    return score_t.rename("rmse_score").assign_attrs(
        units="1", long_name="1 - RMSE(t) / RMS(ref(t))"
    )


class MappingMetric(Protocol):
    """What the dashboard needs from a mapping metric: names, words, one ``compute``."""

    name: ClassVar[str]
    keys: ClassVar[tuple[str, ...]]
    description: ClassVar[str]

    def compute(
        self,
        rec: xr.DataArray,
        ref: xr.DataArray,
        mask: xr.DataArray | np.ndarray | None = None,
    ) -> dict[str, Score]:
        """Scores keyed by ``keys``."""

    def compute_fields(self, fields: MappingFields) -> dict[str, Score]:
        """The same, on fields already checked by :func:`prepare_fields`."""


class _Metric:
    """Shared ``compute``: check the inputs once, then :meth:`compute_fields`."""

    def compute(
        self,
        rec: xr.DataArray,
        ref: xr.DataArray,
        mask: xr.DataArray | np.ndarray | None = None,
    ) -> dict[str, Score]:
        """Scores keyed by ``self.keys`` (see the class docstring)."""
        return self.compute_fields(prepare_fields(rec, ref, mask))

    def compute_fields(self, fields: MappingFields) -> dict[str, Score]:  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True)
class RMSE(_Metric):
    """Plain RMSE over time, lat, lon and valid points, in the data's units (key ``rmse``)."""

    name: ClassVar[str] = "rmse"
    keys: ClassVar[tuple[str, ...]] = ("rmse",)
    description: ClassVar[str] = "RMSE of the reconstruction over all ocean points (data units)"

    def compute_fields(self, fields: MappingFields) -> dict[str, Score]:
        """``{"rmse": Score}``."""
        value, count = _rmse_of(fields.rec, fields.ref, fields.weights)
        if count == 0:
            return {"rmse": Score.unavailable(_no_valid_reason(), fields.units)}
        return {"rmse": Score(value, fields.units)}


@dataclass(frozen=True)
class MuRMSE(_Metric):
    """µ(RMSE) = 1 − sqrt(mean (rec − ref)²) / sqrt(mean ref²), dimensionless (key ``mu``),
    and the same on the anomaly (key ``mu_anomaly``).

    1 is perfect; 0 is no better than a map of zeros. ``mu`` is the leaderboard's, on the
    field as given (total SSH with its mean front: RMS(ref) is large). ``mu_anomaly``
    removes the truth's time mean over the evaluated period at each point from both fields
    (the error is unchanged, the denominator becomes RMS(ref − mean_t ref)): an eddy score,
    comparable between fields with and without a mean flow (SCIENCE.md). Undefined when
    the denominator is zero.
    """

    name: ClassVar[str] = "mu"
    keys: ClassVar[tuple[str, ...]] = ("mu", "mu_anomaly")
    description: ClassVar[str] = ("µ(RMSE) = 1 − RMSE / RMS(truth) (leaderboard score), and "
                                  "on the anomaly from the truth's time mean")

    def compute_fields(self, fields: MappingFields) -> dict[str, Score]:
        """``{"mu": Score, "mu_anomaly": Score}``."""
        sq_err = (fields.rec - fields.ref) ** 2
        anomaly = fields.ref - fields.ref.mean("time")
        w = fields.weights
        stats = xr.Dataset(
            {"mse": weighted_mean(sq_err, w), "ms_ref": weighted_mean(fields.ref**2, w),
             "ms_anom": weighted_mean(anomaly**2, w), "n": sq_err.count()}
        ).compute()
        if int(stats["n"]) == 0:
            return {k: Score.unavailable(_no_valid_reason(), "1") for k in self.keys}
        out = {}
        for key, ms, what in (("mu", float(stats["ms_ref"]), "ref is zero"),
                              ("mu_anomaly", float(stats["ms_anom"]),
                               "ref does not vary in time")):
            if ms == 0.0:
                out[key] = Score.unavailable(
                    f"{what} at every ocean point; µ divides by RMS(ref"
                    f"{')' if key == 'mu' else ' − its time mean)'}", "1")
            else:
                out[key] = Score(1.0 - float(np.sqrt(float(stats["mse"]) / ms)), "1")
        return out


@dataclass(frozen=True)
class SigmaRMSE(_Metric):
    """σ(RMSE): standard deviation over time of RMSE_S(t) = 1 − RMSE(t)/RMS(ref(t)).

    Spatial means at each time over valid points; times with no valid point or with
    RMS(ref(t)) = 0 are left out. ``ddof=0`` (population standard deviation, numpy's and
    the challenge's default). Key ``sigma``, dimensionless; smaller is steadier.
    """

    ddof: int = 0
    name: ClassVar[str] = "sigma"
    keys: ClassVar[tuple[str, ...]] = ("sigma",)
    description: ClassVar[str] = (
        "σ(RMSE): standard deviation over time of 1 − RMSE(t)/RMS(truth(t))"
    )

    def compute_fields(self, fields: MappingFields) -> dict[str, Score]:
        """``{"sigma": Score}``."""
        score_t = _rmse_over_time(fields, normalised=True)
        defined = np.asarray(score_t.values)[np.isfinite(score_t.values)]
        if defined.size < self.ddof + 2:
            return {"sigma": Score.unavailable(
                f"σ needs at least {self.ddof + 2} times with ocean data and a nonzero ref; "
                f"found {defined.size}", "1",
            )}
        return {"sigma": Score(float(np.std(defined, ddof=self.ddof)), "1")}


# --------------------------------------------------------------------------- PSD score


def _days(time: xr.DataArray) -> np.ndarray:
    values = np.asarray(time.values)
    if np.issubdtype(values.dtype, np.datetime64):
        return (values - values[0]) / np.timedelta64(1, "D")
    return values.astype("float64") - float(values[0])


def _evenly_spaced(x: np.ndarray) -> bool:
    step = np.diff(x)
    return bool(step.size) and bool(np.allclose(step, step[0], rtol=1e-6, atol=0.0))


def _psd_score_fields(
    fields: MappingFields, min_time: int, min_lon: int
) -> xr.DataArray:
    n_time, n_lon = fields.ref.sizes["time"], fields.ref.sizes["lon"]
    if n_time < min_time:
        raise ScoreUnavailable(
            f"the PSD score needs at least {min_time} days to resolve periods; "
            f"the fields have {n_time}"
        )
    if n_lon < min_lon:
        raise ScoreUnavailable(
            f"the PSD score needs at least {min_lon} longitudes; the fields have {n_lon}"
        )
    days = _days(fields.ref["time"])
    if not _evenly_spaced(days):
        raise ScoreUnavailable("the PSD score needs evenly spaced times")
    if not _evenly_spaced(np.asarray(fields.ref["lon"].values, dtype="float64")):
        raise ScoreUnavailable("the PSD score needs evenly spaced longitudes")

    err = (fields.rec - fields.ref).fillna(0.0).assign_coords(time=days)
    sig = fields.ref.fillna(0.0).assign_coords(time=days)
    if sig.chunks is not None:
        # xrft transforms a dimension only when it sits in one chunk.
        err = err.chunk({"time": -1, "lon": -1})
        sig = sig.chunk({"time": -1, "lon": -1})
    kwargs = {"dim": ["time", "lon"], "detrend": "constant", "window": "hann"}
    with warnings.catch_warnings():
        # xrft 1.0.1 calls the deprecated Dataset.drop internally; nothing for users to act on.
        warnings.filterwarnings("ignore", "dropping variables using `drop`", FutureWarning)
        psd_err = xrft.power_spectrum(err, **kwargs).mean("lat")
        psd_sig = xrft.power_spectrum(sig, **kwargs).mean("lat")
    both = xr.Dataset({"err": psd_err, "sig": psd_sig}).compute()
    fl, ft = both["freq_lon"].values, both["freq_time"].values
    both = both.sel(freq_lon=fl[fl > 0], freq_time=ft[ft > 0])
    score = 1.0 - both["err"] / both["sig"].where(both["sig"] > 0)
    score = score.transpose("freq_time", "freq_lon").drop_vars(
        [c for c in score.coords if c not in ("freq_time", "freq_lon")]
    )
    score["freq_time"].attrs.update(units="cycles per day", long_name="frequency")
    score["freq_lon"].attrs.update(units="cycles per degree", long_name="zonal wavenumber")
    if not np.isfinite(score.values).any():
        raise ScoreUnavailable(
            "ref has no variance at any positive frequency and wavenumber "
            "(PSD(ref) is zero); the PSD score is undefined"
        )
    return score.rename("psd_score").assign_attrs(
        units="1", long_name="PSD score 1 - PSD(rec - ref) / PSD(ref), mean over latitude"
    )


def psd_score(
    rec: xr.DataArray,
    ref: xr.DataArray,
    mask: xr.DataArray | np.ndarray | None = None,
    *,
    min_time: int = 8,
    min_lon: int = 8,
) -> xr.DataArray:
    """PSD score 1 − PSD(rec − ref) / PSD(ref), latitude-mean, positive frequencies only.

    Parameters
    ----------
    rec, ref, mask : as for :func:`score_mapping`.
    min_time, min_lon : fewest times / longitudes accepted.

    Returns
    -------
    DataArray ``(freq_time, freq_lon)``, computed: freq_time in cycles per day (> 0),
    freq_lon in cycles per degree (> 0); NaN where PSD(ref) is zero. The module docstring
    says how the spectra are taken and how land is filled.

    Raises
    ------
    ScoreUnavailable : too few or unevenly spaced times/longitudes, or PSD(ref) zero
        everywhere; the message says which.
    DataError : bad input, as in :func:`prepare_fields`.
    """
    return _psd_score_fields(prepare_fields(rec, ref, mask), min_time, min_lon)


def psd_score_contour(score: xr.DataArray, level: float = 0.5) -> list[np.ndarray]:
    """Contour lines of the PSD score at ``level`` over (wavelength, period).

    Parameters
    ----------
    score : the output of :func:`psd_score` (``freq_time``, ``freq_lon``).
    level : contour level.

    Returns
    -------
    list of (N, 2) float arrays, one per connected line, columns (1/freq_lon in degrees,
    1/freq_time in days), in the order matplotlib's ``contour`` would give them. Empty
    when the score never crosses ``level``.
    """
    score = score.transpose("freq_time", "freq_lon")
    x = 1.0 / np.asarray(score["freq_lon"].values, dtype="float64")
    y = 1.0 / np.asarray(score["freq_time"].values, dtype="float64")
    if x.size < 2 or y.size < 2:
        return []
    xx, yy = np.meshgrid(x, y)
    z = np.ma.masked_invalid(np.asarray(score.values, dtype="float64"))
    gen = contourpy.contour_generator(
        xx, yy, z, name="mpl2014", corner_mask=True, line_type=contourpy.LineType.SeparateCode
    )
    points, _codes = gen.lines(level)
    return [np.asarray(line, dtype="float64") for line in points if len(line)]


def resolved_scales(
    score: xr.DataArray, level: float = 0.5, *, first_path_only: bool = True
) -> tuple[float, float]:
    """λx (degrees) and λt (days): smallest wavelength and period on the ``level`` contour.

    Parameters
    ----------
    score : the output of :func:`psd_score`.
    level : contour level (0.5 in the challenge).
    first_path_only : use the first contour line only, as the challenge's code did when
        the leaderboard was computed (matplotlib < 3.8, where ``get_paths()[0]`` was the
        first connected line); if False, the minima over every line, which is what the
        same code gives with matplotlib >= 3.8 (one path per level). They differ only
        when the 0.5 contour has several pieces (e.g. islands of a noisy score).

    Returns
    -------
    (lambda_x_deg, lambda_t_days)

    Raises
    ------
    ScoreUnavailable : the score never crosses ``level``; the message says which way.
    """
    lines = psd_score_contour(score, level)
    if not lines:
        values = np.asarray(score.values, dtype="float64")
        values = values[np.isfinite(values)]
        if values.size and values.min() >= level:
            raise ScoreUnavailable(
                f"the PSD score is at least {level} at every wavelength and period the grid "
                f"resolves (e.g. rec equals ref): λ is below the grid's smallest scales "
                f"(2 grid steps, 2 time steps) and cannot be measured"
            )
        if values.size and values.max() < level:
            raise ScoreUnavailable(
                f"the PSD score is below {level} at every wavelength and period: "
                f"no scale of the truth is resolved"
            )
        raise ScoreUnavailable(f"the PSD score has no {level} contour")
    vertices = lines[0] if first_path_only else np.concatenate(lines)
    return float(vertices[:, 0].min()), float(vertices[:, 1].min())


@dataclass(frozen=True)
class ResolvedScales(_Metric):
    """λx and λt from the 0.5 contour of the PSD score (keys ``lambda_x_deg``,
    ``lambda_x_km``, ``lambda_t_days``); smaller is better.

    Attributes
    ----------
    level : contour level of the PSD score.
    min_time, min_lon : fewest days / longitudes for which λ is attempted.
    first_path_only : see :func:`resolved_scales`.
    km_per_degree : λx_km = λx_deg × km_per_degree × cos(mean of the lat coordinate).
    """

    level: float = 0.5
    min_time: int = 8
    min_lon: int = 8
    first_path_only: bool = True
    km_per_degree: float = KM_PER_DEGREE
    name: ClassVar[str] = "lambda"
    keys: ClassVar[tuple[str, ...]] = ("lambda_x_deg", "lambda_x_km", "lambda_t_days")
    description: ClassVar[str] = (
        "λx, λt: smallest wavelength and period resolved (0.5 contour of the PSD score)"
    )

    def compute_fields(self, fields: MappingFields) -> dict[str, Score]:
        """``{"lambda_x_deg": Score, "lambda_x_km": Score, "lambda_t_days": Score}``."""
        units = {"lambda_x_deg": "degree", "lambda_x_km": "km", "lambda_t_days": "day"}
        if not bool(fields.valid.any()):
            return {k: Score.unavailable(_no_valid_reason(), u) for k, u in units.items()}
        try:
            score = _psd_score_fields(fields, self.min_time, self.min_lon)
            lx, lt = resolved_scales(score, self.level, first_path_only=self.first_path_only)
        except ScoreUnavailable as exc:
            return {k: Score.unavailable(str(exc), u) for k, u in units.items()}
        mean_lat = float(np.mean(fields.ref["lat"].values))
        lx_km = lx * self.km_per_degree * float(np.cos(np.deg2rad(mean_lat)))
        return {
            "lambda_x_deg": Score(lx, "degree"),
            "lambda_x_km": Score(lx_km, "km"),
            "lambda_t_days": Score(lt, "day"),
        }


# --------------------------------------------------------------------------- currents


def _currents_reason(fields: MappingFields, min_abs_lat: float) -> str | None:
    """Why currents cannot be derived at all, or None."""
    for dim in ("lat", "lon"):
        if fields.ref.sizes[dim] < 2:
            return (
                f"currents need at least 2 points along {dim} to take a derivative; "
                f"the fields have {fields.ref.sizes[dim]}"
            )
    if bool((np.abs(fields.ref["lat"]) < min_abs_lat).all()):
        return (
            f"every latitude is within {min_abs_lat}° of the equator, where geostrophy "
            f"(u = -g/f dη/dy) does not hold"
        )
    return None


def _undefined_reason(what: str) -> str:
    return (
        f"{what} is undefined at every ocean point (each has a land, gap or "
        f"near-equator neighbour)"
    )


@dataclass(frozen=True)
class GeostrophicVelocityRMSE(_Metric):
    """RMSE (m s-1) of the geostrophic velocity derived from SSH (keys ``rmse_u``, ``rmse_v``).

    u = −(g/f) ∂η/∂y, v = (g/f) ∂η/∂x (:func:`metrics.currents.geostrophic_velocity`),
    over the points where both rec's and ref's velocities are defined; SSH is taken in
    metres unless ``ref``'s ``units`` attribute says cm or mm.

    Attributes
    ----------
    min_abs_lat : points nearer the equator (degrees) are left out.
    """

    min_abs_lat: float = MIN_ABS_LAT
    name: ClassVar[str] = "currents"
    keys: ClassVar[tuple[str, ...]] = ("rmse_u", "rmse_v")
    description: ClassVar[str] = "RMSE of geostrophic velocity u, v derived from SSH (m/s)"

    def compute_fields(self, fields: MappingFields) -> dict[str, Score]:
        """``{"rmse_u": Score, "rmse_v": Score}``."""
        reason = _currents_reason(fields, self.min_abs_lat)
        if reason is not None:
            return {k: Score.unavailable(reason, "m s-1") for k in self.keys}
        u_rec, v_rec = geostrophic_velocity(fields.rec, self.min_abs_lat)
        u_ref, v_ref = geostrophic_velocity(fields.ref, self.min_abs_lat)
        out = {}
        for key, a, b in (("rmse_u", u_rec, u_ref), ("rmse_v", v_rec, v_ref)):
            value, count = _rmse_of(a, b, fields.weights)
            out[key] = (
                Score(value, "m s-1") if count
                else Score.unavailable(_undefined_reason(key[-1]), "m s-1")
            )
        return out


@dataclass(frozen=True)
class VorticityRMSE(_Metric):
    """RMSE of relative vorticity in units of f: ζ/f, dimensionless (key ``rmse_vorticity``).

    ζ = ∂v/∂x − ∂u/∂y of the geostrophic flow (:func:`metrics.currents.relative_vorticity`),
    over the points where it is defined for both rec and ref.

    Attributes
    ----------
    min_abs_lat : points nearer the equator (degrees) are left out.
    """

    min_abs_lat: float = MIN_ABS_LAT
    name: ClassVar[str] = "vorticity"
    keys: ClassVar[tuple[str, ...]] = ("rmse_vorticity",)
    description: ClassVar[str] = "RMSE of relative vorticity ζ/f derived from SSH (units of f)"

    def compute_fields(self, fields: MappingFields) -> dict[str, Score]:
        """``{"rmse_vorticity": Score}``."""
        reason = _currents_reason(fields, self.min_abs_lat)
        if reason is not None:
            return {"rmse_vorticity": Score.unavailable(reason, "1")}
        zeta_rec = relative_vorticity(fields.rec, min_abs_lat=self.min_abs_lat)
        zeta_ref = relative_vorticity(fields.ref, min_abs_lat=self.min_abs_lat)
        value, count = _rmse_of(zeta_rec, zeta_ref, fields.weights)
        if count == 0:
            return {"rmse_vorticity": Score.unavailable(_undefined_reason("vorticity"), "1")}
        return {"rmse_vorticity": Score(value, "1")}


# --------------------------------------------------------------------------- registry

MAPPING_METRICS: dict[str, MappingMetric] = {
    m.name: m
    for m in (
        RMSE(), MuRMSE(), SigmaRMSE(), ResolvedScales(),
        GeostrophicVelocityRMSE(), VorticityRMSE(),
    )
}
"""Mapping metrics by name, for the dashboard to list; each ``compute`` gives Scores."""


def score_mapping(
    rec: xr.DataArray,
    ref: xr.DataArray,
    mask: xr.DataArray | np.ndarray | None = None,
    *,
    area_weighting: str | bool = AREA_WEIGHTING_NONE,
) -> dict[str, float | None | dict[str, str]]:
    """Every mapping score of the data challenge, as a JSON-serialisable dict.

    Parameters
    ----------
    rec : reconstruction ``(time, lat, lon)``, NaN or anything on land.
    ref : truth on the same grid, NaN on land; its ``units`` are the data's units.
    mask : ``(lat, lon)`` bool, True = ocean (DataArray or array); None: all points where
        both fields are finite.
    area_weighting : ``"none"`` (default: plain means, the challenge's), ``"cos(latitude)"``
        or ``"auto"`` (:mod:`metrics.weighting`); see the module docstring for which scores
        it changes. The caller records the resolved value (not a key of the result).

    Returns
    -------
    dict with exactly the keys ``rmse``, ``mu``, ``mu_anomaly``, ``sigma``, ``lambda_x_deg``,
    ``lambda_x_km``, ``lambda_t_days``, ``rmse_u``, ``rmse_v``, ``rmse_vorticity`` (each a
    float or None; definitions and units in the module docstring) and ``notes``:
    ``{key: reason}`` for every score that is None.

    Raises
    ------
    DataError : bad input (not a DataArray, wrong dimensions, mismatched grids or mask).
        A score that merely cannot be computed is None with a note, never an exception.

    Notes
    -----
    Dask-backed inputs are persisted once after masking (held in memory, or on the
    cluster's workers), since the scores read them several times.
    """
    fields = prepare_fields(rec, ref, mask, area_weighting=area_weighting)
    if fields.ref.chunks is not None:
        # The nine scores read the fields several times: evaluate the masking once.
        rec_p, ref_p, valid_p = (x.persist() for x in (fields.rec, fields.ref, fields.valid))
        fields = MappingFields(rec=rec_p, ref=ref_p, valid=valid_p, units=fields.units,
                               weights=fields.weights)
    scores: dict[str, Score] = {}
    for metric in MAPPING_METRICS.values():
        scores.update(metric.compute_fields(fields))
    out: dict[str, float | None | dict[str, str]] = {k: scores[k].value for k in SCORE_KEYS}
    out["notes"] = {k: scores[k].reason for k in SCORE_KEYS if scores[k].value is None}
    return out
