"""Scores know themselves: key, label, unit and direction, in one list.

Every score that a task writes into ``metrics.json`` is described here; the CLI's columns,
the dashboard's tables and headline numbers, and any report read :data:`SCORES` instead of
keeping their own labels. A new score is one :class:`ScoreInfo` line.

``unit`` is ``"data"`` for scores in the data's units (metres for SSH), else a unit text
(``"1"`` for dimensionless). ``better`` says which way is better: ``"higher"``,
``"lower"``, or ``None`` when neither is (a bias).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ScoreInfo:
    key: str
    label: str
    unit: str
    better: Literal["higher", "lower"] | None
    description: str = ""
    #: True for list-valued scores (one value per forecast lead).
    per_lead: bool = False

    def unit_text(self, data_units: str = "") -> str:
        if self.unit == "data":
            return data_units or "data units"
        return "" if self.unit == "1" else self.unit

    def is_better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is better than ``b`` for this score."""
        if self.better == "higher":
            return a > b
        if self.better == "lower":
            return a < b
        return False


_ALL = [
    # Mapping scores of the SSH data challenge (metrics.mapping).
    ScoreInfo("rmse", "RMSE", "data", "lower", "root-mean-square error over ocean points"),
    ScoreInfo("mu", "µ(RMSE)", "1", "higher", "1 − RMSE / RMS(truth)"),
    ScoreInfo("mu_anomaly", "µ(RMSE) of the anomaly", "1", "higher",
              "1 − RMSE / RMS(truth − its time mean): the eddy score"),
    ScoreInfo("sigma", "σ(RMSE)", "1", "lower", "standard deviation in time of the normalised RMSE"),
    ScoreInfo("lambda_x_deg", "λx", "degrees", "lower",
              "smallest wavelength resolved (0.5 contour of the PSD score)"),
    ScoreInfo("lambda_x_km", "λx", "km", "lower", "λx in kilometres at the mean latitude"),
    ScoreInfo("lambda_t_days", "λt", "days", "lower", "smallest period resolved"),
    ScoreInfo("rmse_u", "RMSE u (geostrophic)", "m/s", "lower", "zonal geostrophic velocity"),
    ScoreInfo("rmse_v", "RMSE v (geostrophic)", "m/s", "lower", "meridional geostrophic velocity"),
    ScoreInfo("rmse_vorticity", "RMSE ζ/f", "1", "lower", "relative vorticity in units of f"),
    # Along-track scores against independent altimetry (metrics.alongtrack, issue 11):
    # the 2021a SSH mapping OSE data challenge's definitions, at the observations' points.
    ScoreInfo("rmse_alongtrack", "RMSE along track", "data", "lower",
              "root-mean-square of map − observation at the held-out along-track points"),
    ScoreInfo("mu_alongtrack", "µ(RMSE) along track", "1", "higher",
              "mean over days of 1 − RMSE / RMS(observation) along track (days with ≥ 10 "
              "points)"),
    ScoreInfo("sigma_alongtrack", "σ(RMSE) along track", "1", "lower",
              "standard deviation over days of the daily along-track score"),
    ScoreInfo("lambda_x_alongtrack_km", "λx along track", "km", "lower",
              "wavelength where the along-track PSD score 1 − PSD(map − obs) / PSD(obs) "
              "falls to 0.5 (1000 km windows)"),
    ScoreInfo("n_alongtrack", "along-track points", "1", None,
              "number of observations scored (inside the map, off land)"),
    # Downscaling (data.tasks.downscaling).
    ScoreInfo("rmse_bicubic", "RMSE of bicubic", "data", "lower",
              "RMSE of the bicubic interpolation of the coarse field"),
    ScoreInfo("rmse_gain_bicubic", "RMSE gain over bicubic", "1", "higher",
              "1 − RMSE / RMSE of bicubic interpolation"),
    # Forecast (metrics.forecast): means over leads, and per lead.
    ScoreInfo("skill_persistence", "skill vs persistence", "1", "higher",
              "1 − MSE / MSE of persistence, mean over leads"),
    ScoreInfo("skill_climatology", "skill vs climatology", "1", "higher",
              "1 − MSE / MSE of the climatology, mean over leads"),
    ScoreInfo("acc", "ACC", "1", "higher", "anomaly correlation against the climatology, "
                                           "mean over leads"),
    ScoreInfo("rmse_by_lead", "RMSE by lead", "data", "lower", "RMSE per lead step", True),
    ScoreInfo("skill_persistence_by_lead", "skill vs persistence by lead", "1", "higher",
              "per lead step", True),
    ScoreInfo("skill_climatology_by_lead", "skill vs climatology by lead", "1", "higher",
              "per lead step", True),
    ScoreInfo("acc_by_lead", "ACC by lead", "1", "higher", "per lead step", True),
    # Physics (issue 8): the normalised residual of the QG potential-vorticity equation.
    # metrics.physics; computed for every method's run by backend.runner.
    ScoreInfo("physics_residual", "QG PV residual", "1", "lower",
              "RMS of the PV equation's residual / RMS of its advection term"),
    # The same measure on the truth over the same times: the floor a method is compared
    # with (the truth's forcing and dissipation are not in R). Not the method's score, so
    # neither direction is "better" (and a search cannot optimise it).
    ScoreInfo("physics_residual_truth", "QG PV residual of the truth", "1", None,
              "the same residual of the truth over the same times: the floor (forcing and "
              "dissipation are not in the residual)"),
    # Eddy segmentation (data.tasks.segmentation, metrics.eddies, issue 12).
    ScoreInfo("iou_cyclonic", "IoU cyclonic", "1", "higher",
              "intersection over union of the cyclonic class (pooled over maps)"),
    ScoreInfo("iou_anticyclonic", "IoU anticyclonic", "1", "higher",
              "intersection over union of the anticyclonic class (pooled over maps)"),
    ScoreInfo("dice_cyclonic", "Dice cyclonic", "1", "higher", "Dice of the cyclonic class"),
    ScoreInfo("dice_anticyclonic", "Dice anticyclonic", "1", "higher",
              "Dice of the anticyclonic class"),
    ScoreInfo("dice_mean", "mean Dice", "1", "higher",
              "mean Dice of the cyclonic and anticyclonic classes"),
    ScoreInfo("pixel_accuracy", "pixel accuracy", "1", "higher",
              "share of ocean cells of the right class (background included)"),
    ScoreInfo("eddy_precision", "eddy precision", "1", "higher",
              "predicted eddies matched to a reference eddy / predicted eddies"),
    ScoreInfo("eddy_recall", "eddy recall", "1", "higher",
              "reference eddies matched / reference eddies"),
    ScoreInfo("eddy_f1", "eddy F1", "1", "higher", "harmonic mean of eddy precision and recall"),
    ScoreInfo("radius_error_km", "radius error", "km", "lower",
              "mean |radius − reference radius| of matched eddies (equivalent-area radius)"),
    ScoreInfo("amplitude_error_m", "amplitude error", "m", "lower",
              "mean |amplitude − reference amplitude| of matched eddies"),
    ScoreInfo("n_eddies_predicted", "eddies predicted", "1", None,
              "eddies (regions of at least task.pixel_min cells) in the prediction"),
    ScoreInfo("n_eddies_reference", "eddies in the reference", "1", None,
              "eddies in the reference masks"),
    ScoreInfo("n_eddies_matched", "eddies matched", "1", None, "matched pairs"),
]

#: Every known score by key, in display order.
SCORES: dict[str, ScoreInfo] = {s.key: s for s in _ALL}


def info(key: str) -> ScoreInfo:
    """The description of ``key``; an unknown key gets a neutral one (shown as is)."""
    return SCORES.get(key) or ScoreInfo(key, key, "", None)


#: Keys of ``metrics.json`` that are not scores: ``notes`` ({key: why it is None}) and
#: ``area_weighting`` (the weighting of the spatial means, ``"none"`` or
#: ``"cos(latitude)"``, see :mod:`metrics.weighting`).
NOT_SCORES: frozenset[str] = frozenset({"notes", "area_weighting"})


def ordered_keys(metrics: dict, scalar_only: bool = True) -> list[str]:
    """Keys of ``metrics`` in :data:`SCORES` order, unknown keys after; without the keys of
    :data:`NOT_SCORES` (``notes``, ``area_weighting``)."""
    def keep(k):
        v = metrics[k]
        return (k not in NOT_SCORES and not isinstance(v, dict)
                and (not scalar_only or not isinstance(v, list)))
    known = [k for k in SCORES if k in metrics and keep(k)]
    return known + [k for k in metrics if k not in SCORES and keep(k)]
