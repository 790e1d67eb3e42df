"""``python -m app evaluate``: external reconstructions scored against a reference (issue 10).

Values are checked against hand-derived ones: a perfect prediction has RMSE 0 and µ 1; a
prediction offset by a constant c has RMSE |c| (every valid point is off by exactly c).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from app.cli import main
from backend.evaluate import evaluate
from data.synthetic import mock_field
from oceanlab_errors import DataError

C = 0.05  # metres


@pytest.fixture
def ref_ds():
    return mock_field(n_time=30, n_lat=20, n_lon=24, land=True, seed=1).drop_vars("mask")


@pytest.fixture
def files(tmp_path, ref_ds):
    """The reference and predictions of it: exact, offset by C, offset by C on a grid twice
    as coarse, offset by C on a larger grid of the same spacing, and one a year later."""
    out = {"ref": tmp_path / "ref.nc", "same": tmp_path / "same.nc",
           "offset": tmp_path / "offset.nc", "coarse": tmp_path / "coarse.nc",
           "larger": tmp_path / "larger.nc", "late": tmp_path / "late.nc"}
    ref_ds.to_netcdf(out["ref"])
    ref_ds.rename(ssh="ssh_rec").to_netcdf(out["same"])
    (ref_ds + C).to_netcdf(out["offset"])
    (ref_ds + C).isel(lat=slice(None, None, 2), lon=slice(None, None, 2)).to_netcdf(out["coarse"])
    big = mock_field(n_time=30, n_lat=24, n_lon=28, lat0=33.0 - 0.5, lon0=-65.0 - 0.5,
                     seed=5).drop_vars("mask")
    big["ssh"].loc[{"lat": ref_ds["lat"], "lon": ref_ds["lon"]}] = ref_ds["ssh"].values + C
    big.to_netcdf(out["larger"])
    late = ref_ds.assign_coords(time=ref_ds["time"].values + np.timedelta64(365, "D"))
    late.to_netcdf(out["late"])
    return out


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_perfect_prediction_scores_rmse_0_and_mu_1(files):
    ev = evaluate(files["ref"], files["same"])
    assert ev.var_ref == "ssh" and ev.var_pred == "ssh_rec"  # the only variable of each
    assert ev.regridded is False and "regridded" not in ev.notes
    assert ev.scores["rmse"] == pytest.approx(0.0, abs=1e-9)
    assert ev.scores["mu"] == pytest.approx(1.0, abs=1e-9)
    assert ev.period == ("2012-10-01", "2012-10-30") and ev.n_times == 30


def test_constant_offset_gives_rmse_c_with_the_run_keys(files, capsys):
    code, out, err = _run(capsys, "evaluate", "--ref", files["ref"], "--pred",
                          files["offset"], "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["rmse"] == pytest.approx(C, rel=1e-5)
    assert result["scores"]["rmse"] == result["rmse"]
    # µ = 1 − RMSE / RMS(truth), the RMS taken over the same (ocean) points
    ref = xr.open_dataset(files["ref"])["ssh"].values
    rms = np.sqrt(np.nanmean(ref.astype(np.float64) ** 2))
    assert result["mu"] == pytest.approx(1 - C / rms, rel=1e-4)
    # the keys of a run's metrics.json: the mapping scores and the physics residual
    for key in ("rmse", "mu", "mu_anomaly", "sigma", "lambda_x_deg", "lambda_t_days",
                "physics_residual", "physics_residual_truth"):
        assert key in result["scores"] and key in result
    assert result["physics_residual"] is None and "physics_residual" in result["notes"]
    assert result["regridded"] is False
    assert result["period"] == ["2012-10-01", "2012-10-30"]
    assert result["run_id"] is None


def test_coarser_prediction_is_regridded_and_scores_close(files, capsys):
    same = evaluate(files["ref"], files["offset"])
    coarse = evaluate(files["ref"], files["coarse"])
    assert coarse.regridded is True
    assert "interpolated linearly" in coarse.notes["regridded"]
    assert "regridded" in coarse.scores["notes"]
    assert coarse.scores["rmse"] == pytest.approx(same.scores["rmse"], abs=0.01)
    assert coarse.scores["mu"] == pytest.approx(same.scores["mu"], abs=0.05)
    # the scores are on the reference's grid
    assert coarse.prediction.sizes == same.prediction.sizes
    code, out, err = _run(capsys, "evaluate", "--ref", files["ref"], "--pred", files["coarse"])
    assert code == 0, err
    assert "regridded:" in out and "interpolated linearly" in out


def test_larger_grid_of_the_same_points_is_not_regridded(files):
    ev = evaluate(files["ref"], files["larger"])
    assert ev.regridded is False
    assert ev.scores["rmse"] == pytest.approx(C, rel=1e-5)


def test_no_common_period_is_one_line_exit_2(files, capsys):
    code, out, err = _run(capsys, "evaluate", "--ref", files["ref"], "--pred", files["late"])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert str(files["ref"]) in err and str(files["late"]) in err
    assert "no common time step" in err
    code, out, err = _run(capsys, "evaluate", "--ref", files["ref"], "--pred", "missing.nc")
    assert (code, out, err) == (2, "", "error: --pred missing.nc: no such file\n")


def test_partial_overlap_scores_only_common_times(files, tmp_path, ref_ds):
    part = tmp_path / "part.nc"
    (ref_ds + C).isel(time=slice(10, 40)).to_netcdf(part)
    ev = evaluate(files["ref"], part)
    assert ev.n_times == 20 and ev.period == ("2012-10-11", "2012-10-30")
    assert ev.scores["rmse"] == pytest.approx(C, rel=1e-5)
    assert "period" in ev.notes


def test_no_common_area_is_a_data_error(files, tmp_path, ref_ds):
    away = tmp_path / "away.nc"
    ref_ds.assign_coords(lon=ref_ds["lon"].values + 40.0).to_netcdf(away)
    with pytest.raises(DataError, match="no common area"):
        evaluate(files["ref"], away)


def test_ambiguous_variable_lists_the_candidates(files, tmp_path, ref_ds, capsys):
    two = tmp_path / "two.nc"
    ref_ds.assign(err=ref_ds["ssh"] * 0 + 0.1, ssh2=ref_ds["ssh"] + C).to_netcdf(two)
    with pytest.raises(DataError, match=r"ssh, .*err.*--var-pred"):
        evaluate(files["ref"], two)
    ev = evaluate(files["ref"], two, var_pred="ssh2")
    assert ev.scores["rmse"] == pytest.approx(C, rel=1e-5)
    code, _, err = _run(capsys, "evaluate", "--ref", files["ref"], "--pred", two,
                        "--var-pred", "nope")
    assert code == 2 and "nope" in err and err.count("\n") == 1
    # the reference's attribute names its truth variable
    ref_ds.assign(sst=ref_ds["ssh"] * 2).assign_attrs(oceanlab_truth_var="ssh").to_netcdf(
        tmp_path / "ref2.nc")
    assert evaluate(tmp_path / "ref2.nc", files["offset"]).var_ref == "ssh"


def test_import_creates_a_done_run_listed_with_the_same_rmse(files, tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    code, out, err = _run(capsys, "evaluate", "--ref", files["ref"], "--pred",
                          files["coarse"], "--json", "--import", "--runs-dir", runs_dir)
    assert code == 0, err
    result = json.loads(out)
    run_id = result["run_id"]
    code, out, err = _run(capsys, "runs", "--runs-dir", runs_dir, "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["id"] for r in rows] == [run_id]
    assert rows[0]["status"] == "done" and rows[0]["model"] == "external"
    assert rows[0]["rmse"] == pytest.approx(result["rmse"], rel=1e-9)

    from app.ui import reconstruction_name
    from backend.store import RunStore

    run = RunStore(runs_dir).get(run_id)
    info = run.info()
    assert info["config"]["model"]["path"] == str(files["coarse"].resolve())
    assert info["config"]["model"]["fingerprint"].startswith("sha256:")
    assert info["periods"]["test"] == result["period"]
    pred = run.prediction()
    assert reconstruction_name(pred) == "ssh"
    assert {"ssh", "truth", "mask"} <= set(pred.data_vars)
    assert pred.sizes["lat"] == 20 and pred.sizes["lon"] == 24
    assert run.metrics()["notes"]["regridded"].startswith("the prediction")
    assert "rmse_t" in run.diagnostics()
