"""Scores of eddy segmentation: pixel classes and matched eddies.

Pixel scores, pooled over every map and ocean cell given (not averaged map by map):

- ``iou_<class>`` = |P ∩ R| / |P ∪ R| and ``dice_<class>`` = 2|P ∩ R| / (|P| + |R|) for the
  cyclonic and anticyclonic classes (P predicted cells, R reference cells; None when both
  are empty);
- ``dice_mean``: the mean Dice of the two eddy classes (background, most of the ocean, is
  left out: its Dice is high whatever the method);
- ``pixel_accuracy``: share of ocean cells whose class is right (background included).

Object scores: the eddies of each map are the 4-connected regions of each class with at
least ``pixel_min`` cells (:func:`data.eddies.mask_objects`; the reference's on the true SSH,
the prediction's on its input SSH). On each map and for each class, predicted and reference
eddies are paired one to one (Hungarian assignment on centroid distance) and a pair counts
when its centroids are closer than ``match_km``. ``eddy_precision`` = matched / predicted,
``eddy_recall`` = matched / reference, ``eddy_f1`` their harmonic mean; ``radius_error_km``
and ``amplitude_error_m`` the mean absolute differences of the matched pairs' equivalent
radius and amplitude.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy.optimize import linear_sum_assignment

from data.eddies import ANTICYCLONIC, CYCLONIC, EARTH_RADIUS_KM, mask_objects

CLASS_NAMES = {CYCLONIC: "cyclonic", ANTICYCLONIC: "anticyclonic"}


def pixel_scores(pred: np.ndarray, ref: np.ndarray, ocean: np.ndarray | None = None) -> dict:
    """IoU and Dice per eddy class, their mean Dice, pixel accuracy (module docstring).

    ``pred``, ``ref``: class masks ``(…, lat, lon)`` (0, 1, 2); ``ocean``: cells to score
    (broadcast against them; default all)."""
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    where = np.ones(pred.shape, bool) if ocean is None else np.broadcast_to(
        np.asarray(ocean, bool), pred.shape)
    out: dict = {}
    dice = []
    for code, name in CLASS_NAMES.items():
        p = (pred == code) & where
        r = (ref == code) & where
        inter = int((p & r).sum())
        union = int((p | r).sum())
        total = int(p.sum() + r.sum())
        out[f"iou_{name}"] = inter / union if union else None
        out[f"dice_{name}"] = 2 * inter / total if total else None
        if out[f"dice_{name}"] is not None:
            dice.append(out[f"dice_{name}"])
    out["dice_mean"] = float(np.mean(dice)) if dice else None
    n = int(where.sum())
    out["pixel_accuracy"] = float(((pred == ref) & where).sum() / n) if n else None
    return out


def _distance_km(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    rad = np.pi / 180
    lat_a, lat_b = a["lat"].values[:, None] * rad, b["lat"].values[None, :] * rad
    dlon = (a["lon"].values[:, None] - b["lon"].values[None, :]) * rad
    x = dlon * np.cos((lat_a + lat_b) / 2)
    return EARTH_RADIUS_KM * np.hypot(x, lat_a - lat_b)


def match_eddies(pred: pd.DataFrame, ref: pd.DataFrame, match_km: float) -> list[tuple[int, int]]:
    """Pairs ``(i_pred, i_ref)`` (positions) of same-kind eddies of one map whose centroids
    are closer than ``match_km`` (one-to-one, smallest total distance)."""
    pairs = []
    for kind in ("cyclonic", "anticyclonic"):
        ip = np.flatnonzero(pred["kind"].values == kind) if len(pred) else np.array([], int)
        ir = np.flatnonzero(ref["kind"].values == kind) if len(ref) else np.array([], int)
        if not ip.size or not ir.size:
            continue
        d = _distance_km(pred.iloc[ip], ref.iloc[ir])
        cost = np.where(d < match_km, d, 1e9)
        rows, cols = linear_sum_assignment(cost)
        pairs += [(int(ip[r]), int(ir[c])) for r, c in zip(rows, cols, strict=True)
                  if d[r, c] < match_km]
    return pairs


def object_scores(pred: np.ndarray, ref: np.ndarray, ssh_pred: np.ndarray, ssh_ref: np.ndarray,
                  lat: np.ndarray, lon: np.ndarray, match_km: float = 50.0,
                  pixel_min: int = 8) -> tuple[dict, pd.DataFrame]:
    """Eddy precision, recall, F1 and the errors of matched eddies over maps ``(time, lat,
    lon)`` (module docstring). Returns the scores and a per-map table (``n_pred``,
    ``n_ref``, ``n_matched``)."""
    pred = np.asarray(pred)
    ref = np.asarray(ref)
    if pred.ndim == 2:
        pred, ref = pred[None], ref[None]
        ssh_pred, ssh_ref = np.asarray(ssh_pred)[None], np.asarray(ssh_ref)[None]
    n_pred = n_ref = n_match = 0
    radius_err, amp_err, per_map = [], [], []
    for t in range(pred.shape[0]):
        op = mask_objects(pred[t], ssh_pred[t], lat, lon, pixel_min)
        orf = mask_objects(ref[t], ssh_ref[t], lat, lon, pixel_min)
        pairs = match_eddies(op, orf, match_km)
        for i, j in pairs:
            radius_err.append(abs(op["radius_km"].iat[i] - orf["radius_km"].iat[j]))
            a, b = op["amplitude_m"].iat[i], orf["amplitude_m"].iat[j]
            if np.isfinite(a) and np.isfinite(b):
                amp_err.append(abs(a - b))
        n_pred += len(op)
        n_ref += len(orf)
        n_match += len(pairs)
        per_map.append((len(op), len(orf), len(pairs)))
    precision = n_match / n_pred if n_pred else None
    recall = n_match / n_ref if n_ref else None
    if precision is not None and recall is not None and precision + recall > 0:
        f1 = 2 * precision * recall / (precision + recall)
    elif precision is not None and recall is not None:
        f1 = 0.0
    else:
        f1 = None
    scores = {"eddy_precision": precision, "eddy_recall": recall, "eddy_f1": f1,
              "radius_error_km": float(np.mean(radius_err)) if radius_err else None,
              "amplitude_error_m": float(np.mean(amp_err)) if amp_err else None,
              "n_eddies_predicted": n_pred, "n_eddies_reference": n_ref,
              "n_eddies_matched": n_match}
    table = pd.DataFrame(per_map, columns=["n_pred", "n_ref", "n_matched"])
    return scores, table


def score_segmentation(pred: xr.DataArray, ref: xr.DataArray, ocean: xr.DataArray,
                       ssh_pred: xr.DataArray | None, ssh_ref: xr.DataArray | None,
                       match_km: float = 50.0, pixel_min: int = 8) -> tuple[dict, xr.Dataset]:
    """Pixel and object scores of class masks ``pred`` against ``ref`` (time, lat, lon) on
    the ``ocean`` cells; the SSH maps give the eddies' amplitudes (metres). Returns the
    scores (``notes`` for None values) and diagnostics (per-map IoU and eddy counts)."""
    pred = pred.transpose("time", "lat", "lon")
    ref = ref.transpose("time", "lat", "lon")
    ocean_v = np.asarray(ocean.values, bool)
    p = np.where(ocean_v[None], pred.values, 0)
    r = np.where(ocean_v[None], ref.values, 0)
    scores = pixel_scores(p, r, ocean_v)
    lat, lon = pred["lat"].values, pred["lon"].values
    nan = np.full(p.shape, np.nan)
    sp = nan if ssh_pred is None else np.asarray(ssh_pred.transpose("time", "lat", "lon").values)
    sr = nan if ssh_ref is None else np.asarray(ssh_ref.transpose("time", "lat", "lon").values)
    objects, per_map = object_scores(p, r, sp, sr, lat, lon, match_km, pixel_min)
    scores.update(objects)
    notes = {k: ("no eddy of this class in the prediction nor the reference" if k.startswith(
        ("iou", "dice")) else "no eddy to match or no matched eddy")
             for k, v in scores.items() if v is None}
    scores["notes"] = notes
    time = pred["time"].values
    diag = xr.Dataset(coords={"time": time})
    for code, name in CLASS_NAMES.items():
        pc, rc = p == code, r == code
        inter = (pc & rc).sum(axis=(1, 2))
        union = (pc | rc).sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            diag[f"iou_t_{name}"] = ("time", np.where(union > 0, inter / union, np.nan),
                                     {"long_name": f"IoU of the {name} class per map"})
    for col in per_map.columns:
        diag[f"eddies_{col[2:]}"] = ("time", per_map[col].values.astype(np.int32))
    return scores, diag


__all__ = ["match_eddies", "object_scores", "pixel_scores", "score_segmentation"]
