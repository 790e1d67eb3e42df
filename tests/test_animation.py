"""The animation of a run over time (issue 10, "Presenting"): GIF frames, size, timing,
colour scales, forecasts' leads, the CLI and its one-line errors, MP4 without ffmpeg."""

from __future__ import annotations

import io
import itertools
import json
import shutil

import matplotlib.animation as manim
import numpy as np
import pytest
from PIL import Image, ImageSequence

from app import animation
from app.animation import animate_run, animation_bytes, frame_indices
from app.cli import main
from backend.config import build_config
from backend.runner import execute
from backend.store import Run, RunStore
from oceanlab_errors import ConfigError, RunError

#: RdBu_r's middle colour (a zero residual on a symmetric scale) as 8-bit RGB.
ZERO_RGB = (247, 246, 246)
#: The axes' face colour (0.8 grey) where land is masked.
LAND_RGB = (204, 204, 204)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """One finished OI run on mock data (8 test days, a land corner) for the whole module:
    its store and the run (tests copy it to change it, never write in it)."""
    from data.synthetic import add_noise, insert_nan, mock_field

    folder = tmp_path_factory.mktemp("animation")
    ds = mock_field(n_time=60, n_lat=20, n_lon=24, land=True, seed=1)
    ds["ssh_obs"] = add_noise(insert_nan(ds["ssh"], 0.85, seed=2), 0.01, seed=3)
    ds.drop_vars("mask").to_netcdf(folder / "mock.nc")
    store = RunStore(folder / "runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OCEANLAB_HOME", str(folder / "workspace"))
        config = build_config(model="oi", overrides={
            "data.path": str(folder / "mock.nc"), "data.var": "ssh", "data.obs": "ssh_obs"})
        run = execute(config, store)
    assert run.status == "done", run.info().get("error")
    return store, run


@pytest.fixture
def store(base):
    return base[0]


@pytest.fixture
def run(base):
    return base[1]


def copy_run(store: RunStore, run: Run, new_id: str, pred=None) -> Run:
    shutil.copytree(run.path, store.root / new_id)
    copy = store.get(new_id)
    if pred is not None:
        copy.write_prediction(pred)
    return copy


def frames(data) -> tuple[Image.Image, list[np.ndarray]]:
    im = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    return im, [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]


def count(frame: np.ndarray, rgb) -> int:
    return int((frame == np.array(rgb, dtype=frame.dtype)).all(-1).sum())


def test_frame_indices_spread_evenly():
    assert frame_indices(8).tolist() == list(range(8))
    assert frame_indices(9, 5).tolist() == [0, 2, 4, 6, 8]
    assert frame_indices(4, 10).tolist() == [0, 1, 2, 3]
    assert frame_indices(365).tolist() == np.round(np.linspace(0, 364, 60)).astype(int).tolist()
    with pytest.raises(ConfigError):
        frame_indices(5, 0)


def test_colour_limits_by_hand():
    values = np.arange(101.0)  # percentiles 2 and 98 are 2 and 98
    assert animation._limits(values, symmetric=False) == pytest.approx((2.0, 98.0))
    resid = np.concatenate([-values, [np.nan]])  # |r| = 0…100: 98th percentile 98
    assert animation._limits(resid, symmetric=True) == pytest.approx((-98.0, 98.0))
    assert animation._limits(np.full(4, np.nan), symmetric=True) == (-1.0, 1.0)
    lo, hi = animation._limits(np.full(4, 2.0), symmetric=False)
    assert lo < 2.0 < hi


def test_gif_has_the_frames_size_and_timing_asked(run, tmp_path):
    out = tmp_path / "run.gif"
    assert animate_run(run, out, days=5, fps=4, dpi=60) == out
    im, fr = frames(out)
    assert im.n_frames == 5 == len(fr)
    assert im.size == (int(60 * animation.FIGSIZE[0]), int(60 * animation.FIGSIZE[1]))
    assert im.info["duration"] == 250  # ms at 4 frames per second
    # each frame is another day; the land corner is drawn in the land grey
    assert all((a != b).any() for a, b in itertools.pairwise(fr))
    assert count(fr[0], LAND_RGB) > 300
    # a reconstruction that is not perfect: almost no pixel has the zero-residual colour
    assert count(fr[0][:, 480:], ZERO_RGB) < 200
    # nothing left beside the file (written under a temporary name, then renamed)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".gif")) == ["run.gif"]


def test_all_days_by_default_and_bytes_for_a_download(run):
    n_days = run.prediction().sizes["time"]
    im, _ = frames(animation_bytes(run, dpi=40))
    assert im.n_frames == n_days == 8
    assert im.size == (480, 160)


def test_perfect_reconstruction_has_a_zero_residual_panel(run, store):
    pred = run.prediction()
    pred["ssh"] = pred["truth"].copy()
    perfect = copy_run(store, run, "perfect", pred)
    im, fr = frames(animation_bytes(perfect, days=2, dpi=50))
    assert im.n_frames == 2
    # the residual panel (right third) is the middle colour of the symmetric scale on every
    # ocean cell: most of its area
    assert count(fr[0][:, 400:], ZERO_RGB) > 10000
    # truth and reconstruction share one scale: the same colours in the same amounts
    left, middle = fr[0][30:, :200], fr[0][30:, 200:400]
    colours = lambda a: sorted(count(a, c) for c in {tuple(x) for x in a.reshape(-1, 3)[::7]})
    assert count(left, LAND_RGB) == pytest.approx(count(middle, LAND_RGB), rel=0.05)
    assert count(left, LAND_RGB) > 300
    assert colours(left)[-5:-1] == pytest.approx(colours(middle)[-5:-1], rel=0.1)


def test_forecast_leads(run, store):
    """A forecast (time, lead_time, lat, lon): lead 0 is perfect, lead 2 is off."""
    pred = run.prediction()
    truth = pred["truth"].expand_dims(lead_time=[1, 2, 3], axis=1).copy()
    err = np.array([0.0, 0.01, 0.05])[None, :, None, None]
    fc = pred.drop_vars(["ssh", "truth", "obs"])
    fc["truth"] = truth
    fc["ssh"] = truth + err
    forecast = copy_run(store, run, "forecast", fc)
    _, lead0 = frames(animation_bytes(forecast, days=1, dpi=40, lead=0))
    _, lead2 = frames(animation_bytes(forecast, days=1, dpi=40, lead=2))
    assert count(lead0[0][:, 320:], ZERO_RGB) > 4000
    assert count(lead2[0][:, 320:], ZERO_RGB) < 200
    with pytest.raises(ConfigError, match="leads 0 … 2"):
        animation_bytes(forecast, lead=3)
    with pytest.raises(ConfigError, match="no forecast"):
        animation_bytes(run, lead=1)


def test_cli_writes_the_gif(run, store, tmp_path, capsys):
    out = tmp_path / "slides.gif"
    assert main(["animate", run.id, "--out", str(out), "--frames", "5", "--fps", "2", "--dpi", "40",
                 "--runs-dir", str(store.root)]) == 0
    assert str(out) in capsys.readouterr().out
    im, _ = frames(out)
    assert im.n_frames == 5 and im.info["duration"] == 500


def test_cli_errors_are_one_line(run, store, tmp_path, capsys):
    root = str(store.root)

    def error(*args) -> str:
        assert main(["animate", *args, "--runs-dir", root]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        return err

    assert "no-such-run" in error("no-such-run", "--out", str(tmp_path / "a.gif"))
    assert ".gif or .mp4" in error(run.id, "--out", str(tmp_path / "a.avi"))
    assert "does not exist" in error(run.id, "--out", str(tmp_path / "nope" / "a.gif"))
    assert "must be a whole number" in error(run.id, "--out", str(tmp_path / "a.gif"),
                                             "--frames", "0")
    info = json.loads((run.path / "run.json").read_text())
    info["status"] = "running"
    waiting = copy_run(store, run, "waiting")
    (waiting.path / "run.json").write_text(json.dumps(info))
    assert "not done" in error("waiting", "--out", str(tmp_path / "a.gif"))
    assert not list(tmp_path.glob("*.gif")) and not list(tmp_path.glob(".*"))


def test_mp4_without_ffmpeg_says_so(run, store, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(manim.writers, "is_available", lambda name: name != "ffmpeg")
    out = tmp_path / "a.mp4"
    with pytest.raises(RunError, match="ffmpeg is missing.*use .gif"):
        animate_run(run, out)
    assert main(["animate", run.id, "--out", str(out), "--runs-dir", str(store.root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ffmpeg" in err and ".gif" in err
    assert not out.exists()


@pytest.mark.skipif(not manim.writers.is_available("ffmpeg"), reason="ffmpeg not installed")
def test_mp4_with_ffmpeg(run, tmp_path):
    out = animate_run(run, tmp_path / "a.mp4", days=3, dpi=50)
    data = out.read_bytes()
    assert len(data) > 1000 and data[4:8] == b"ftyp"
