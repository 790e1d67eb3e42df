"""The autoencoder: a real bottleneck, the linear variant is PCA, seamless tiles, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file

from app.cli import main
from models import registry
from models.autoencoder import (
    AutoencoderParams,
    ConvAutoencoder,
    LinearAutoencoder,
    TiledAutoencoder,
    blend_window,
    build_autoencoder,
    fit_linear_autoencoder,
    tile_starts,
    tiled_apply,
)

N_SAMPLES, SIDE, N_MODES = 200, 16, 6


@pytest.fixture(scope="module")
def modal_fields() -> np.ndarray:
    """200 fields 16 × 16: 6 orthonormal spatial modes with standard deviations 8, 4, 2, 1,
    0.5, 0.25, a mean field, and white noise of 0.01."""
    rng = np.random.default_rng(0)
    modes, _ = np.linalg.qr(rng.standard_normal((SIDE * SIDE, N_MODES)))
    amp = 8.0 * 0.5 ** np.arange(N_MODES)
    coef = rng.standard_normal((N_SAMPLES, N_MODES)) * amp
    x = coef @ modes.T + 0.01 * rng.standard_normal((N_SAMPLES, SIDE * SIDE))
    x += 3.0 + rng.standard_normal(SIDE * SIDE)  # a mean field the autoencoder must not need
    return x.reshape(N_SAMPLES, SIDE, SIDE)


def _svd(fields: np.ndarray):
    x = fields.reshape(len(fields), -1)
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    return xc, s, vt


def _reconstruction_error(net: LinearAutoencoder, xc: np.ndarray) -> float:
    with torch.no_grad():
        data = torch.from_numpy(xc.reshape(-1, 1, SIDE, SIDE)).to(net.encoder.weight.dtype)
        rec = net(data).double().numpy().reshape(len(xc), -1)
    return float(((rec - xc) ** 2).sum())


# ------------------------------------------------------------------- linear = PCA / EOF


@pytest.mark.parametrize("latent", [2, 4])
def test_linear_autoencoder_finds_the_leading_eofs(modal_fields, latent):
    net, mean = fit_linear_autoencoder(modal_fields, latent)
    xc, s, vt = _svd(modal_fields)
    np.testing.assert_allclose(mean, modal_fields.mean(axis=0))
    # principal angles between the decoder's columns and the top right singular vectors
    q, _ = np.linalg.qr(net.decoder.weight.detach().numpy())
    v = vt[:latent].T
    largest_sin = np.linalg.norm(q - v @ (v.T @ q), 2)
    assert largest_sin < 1e-2
    # Eckart–Young: the truncated SVD's error, which no rank-`latent` map beats
    svd_error = float((s[latent:] ** 2).sum())
    assert _reconstruction_error(net, xc) == pytest.approx(svd_error, rel=1e-3)


def test_a_rank_k_bottleneck_cannot_beat_the_truncated_svd(modal_fields):
    xc, s, _ = _svd(modal_fields)
    latent = 3
    svd_error = float((s[latent:] ** 2).sum())
    trained, _ = fit_linear_autoencoder(modal_fields, latent, iterations=50)
    nets = [trained]
    for seed in range(3):  # random weights: other rank-3 linear maps
        torch.manual_seed(seed)
        nets.append(LinearAutoencoder(1, 1, SIDE, latent).double())
    for net in nets:
        assert _reconstruction_error(net, xc) >= svd_error * (1 - 1e-9)
    # and the data are not rank 3: a full-rank map would do far better
    assert svd_error > 20 * float((s[N_MODES:] ** 2).sum())


def test_the_registered_linear_variant_is_the_same_network():
    net = build_autoencoder(5, 1, 12, AutoencoderParams(linear=True, latent=7))
    assert isinstance(net.core, LinearAutoencoder)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    # two linear maps, no bias, no normalisation layer
    assert shapes == {"core.encoder.weight": (7, 5 * 12 * 12), "core.decoder.weight": (12 * 12, 7)}
    assert not [m for m in net.modules() if not isinstance(m, (TiledAutoencoder,
                                                                LinearAutoencoder,
                                                                torch.nn.Linear))]


# --------------------------------------------------------------------------- bottleneck


def test_the_conv_autoencoder_passes_everything_through_the_latent_vector():
    torch.manual_seed(0)
    net = ConvAutoencoder(2, 1, side=8, latent=3, base=4, depth=2).double().eval()
    x = torch.randn(4, 2, 8, 8, dtype=torch.float64)
    z = net.encode(x)
    assert z.shape == (4, 3)
    torch.testing.assert_close(net(x), net.decode(z))
    # the Jacobian of the output (64 values) with respect to the input (128) has rank 3
    jac = torch.autograd.functional.jacobian(lambda v: net(v[None])[0].flatten(), x[0])
    sv = torch.linalg.svdvals(jac.reshape(64, 128))
    assert sv[2] > 1e-6 * sv[0]
    assert sv[3] < 1e-10 * sv[0]


def test_conv_network_sizes():
    net = build_autoencoder(59, 1, 64, AutoencoderParams())
    assert isinstance(net.core, ConvAutoencoder)
    assert net.core.side == 64 and net.core.small == (256, 8, 8)
    assert net.core.to_latent.out_features == 256 == net.core.latent_norm.num_features
    # a patch side that is not a multiple of 2**depth is padded inside
    odd = build_autoencoder(3, 2, 12, AutoencoderParams(depth=3, base_channels=4, latent=5))
    assert odd.core.side == 16
    with torch.no_grad():
        assert odd.eval()(torch.randn(2, 3, 12, 12)).shape == (2, 2, 12, 12)


def test_one_sample_batch_trains_with_the_running_statistics():
    """The batch-normalised latent has no batch statistics for one sample: it uses the
    running ones (as in evaluation) instead of failing."""
    net = ConvAutoencoder(3, 1, 16, 4, base=4, depth=2)
    net.train()
    x = torch.randn(1, 3, 16, 16)
    norm = net.latent_norm
    with torch.no_grad():
        norm.running_mean.fill_(0.5)
        norm.running_var.fill_(4.0)
    raw = net.to_latent(net.encoder(x).flatten(1))
    z = net.encode(x)
    assert torch.isfinite(net(x)).all()
    torch.testing.assert_close(z, (raw - 0.5) / torch.sqrt(torch.tensor(4.0) + norm.eps)
                               * norm.weight + norm.bias)
    assert torch.equal(norm.running_mean, torch.full((4,), 0.5))  # not updated by one sample


# ------------------------------------------------------------------------------- tiles


def test_tile_starts_cover_the_domain_inside_it():
    assert tile_starts(100, 64) == [0, 32, 36]
    assert tile_starts(45, 16) == [0, 8, 16, 24, 29]
    assert tile_starts(16, 16) == [0] and tile_starts(10, 16) == [0]


def test_blending_weights_are_a_partition_of_unity():
    w = blend_window(16, dtype=torch.float64)
    assert bool((w > 0).all())
    torch.testing.assert_close(w[:8] + w[8:], torch.ones(8, dtype=torch.float64))


def test_tiled_identity_is_exact():
    x = torch.randn(2, 3, 45, 37, dtype=torch.float64)
    out = tiled_apply(lambda t: t, x, (16, 16), max_tiles=5)
    torch.testing.assert_close(out, x)


def test_tiled_blending_has_no_seams():
    """Each tile replaced by its mean: stitched side by side that would jump by a tile's
    stride times the slope at every border; blended it stays within a few slopes."""
    H, W, slope = 64, 40, 0.1
    ramp = slope * torch.arange(H, dtype=torch.float64)[:, None].expand(H, W)
    x = (ramp + 0.05 * torch.arange(W, dtype=torch.float64)[None])[None, None]

    def tile_mean(t):
        return t.mean(dim=(-2, -1), keepdim=True).expand_as(t)

    out = tiled_apply(tile_mean, x, (16, 16))[0, 0]
    jump_lat = (out[1:] - out[:-1]).abs().max()
    assert jump_lat < 0.3 * slope * 8  # a hard seam: 8 points (the stride) of slope


def test_one_tile_domain_is_direct_and_corners_are_the_corner_tile():
    torch.manual_seed(0)
    net = build_autoencoder(2, 1, 16, AutoencoderParams(latent=4, base_channels=4, depth=2))
    net.eval()
    x = torch.randn(3, 2, 40, 33)
    with torch.no_grad():
        # a domain of one tile: the core itself
        torch.testing.assert_close(net(x[..., :16, :16]), net.core(x[..., :16, :16]))
        whole = net(x)
        # points that only the first tile covers get exactly its output
        corner = net.core(x[..., :16, :16])
        torch.testing.assert_close(whole[..., :8, :8], corner[..., :8, :8])
        # a domain smaller than the tile is padded with zeros, as training patches are
        small = x[..., :10, :16]
        padded = torch.nn.functional.pad(small, (0, 0, 0, 6))
        torch.testing.assert_close(net(small), net.core(padded)[..., :10, :])
    assert whole.shape == (3, 1, 40, 33) and torch.isfinite(whole).all()


# ---------------------------------------------------------------------- params, tuning


def test_params_and_search_space():
    import optuna

    with pytest.raises(ValidationError, match="odd"):
        AutoencoderParams(window=4)
    space = AutoencoderParams.search_space(optuna.trial.FixedTrial({"latent": 16}))
    assert space == {"latent": 16}
    assert AutoencoderParams(**space).latent == 16
    for task in ("interpolation", "forecast", "downscaling"):
        assert "autoencoder" in registry.available(task)


# ------------------------------------------------------------------------ end to end

TINY = ["--set", "model.base_channels=4", "--set", "model.depth=2", "--set", "model.latent=8",
        "--set", "train.patch_size=12", "--set", "train.steps_per_epoch=3",
        "--set", "train.batch_size=4", "--epochs", "1", "--device", "cpu"]


@pytest.mark.parametrize("task, extra", [
    ("interpolation", ["--obs", "ssh_obs", "--set", "model.window=3"]),
    ("forecast", ["--set", "task.history=3", "--set", "task.horizon=4"]),
    ("interpolation", ["--obs", "ssh_obs", "--set", "model.window=3",
                       "--set", "model.linear=true"]),
])
def test_cli_trains_a_tiny_autoencoder(capsys, mock_nc, tmp_path, task, extra):
    runs = tmp_path / "runs"
    code = main(["train", "--data", str(mock_nc), "--task", task, "--model", "autoencoder",
                 "--runs-dir", str(runs), "--json", *TINY, *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "done"
    assert np.isfinite(result["metrics"]["rmse"]) and result["metrics"]["rmse"] > 0
    weights = load_file(runs / result["run_id"] / "model.safetensors")
    key = "core.encoder.weight" if "model.linear=true" in extra else "core.to_latent.weight"
    assert weights[key].shape[0] == 8  # the latent size
    if task == "forecast":
        assert len(result["metrics"]["rmse_by_lead"]) == 4


def test_experiment_page_lists_the_autoencoder(mock_nc):
    from streamlit.testing.v1 import AppTest

    from tests.test_app_pages import APP

    at = AppTest.from_file(str(APP / "pages" / "2_Experiment.py"), default_timeout=30).run()
    assert not at.exception
    at.radio(key="exp.source").set_value("path").run()
    at.text_input(key="exp.path").input(str(mock_nc)).run()
    assert "autoencoder" in at.selectbox(key="exp.model").options
    at.selectbox(key="exp.model").set_value("autoencoder").run()
    assert not at.exception
    fields = AutoencoderParams.model_fields
    latent = at.number_input(key="exp.model.autoencoder.latent")
    assert latent.value == fields["latent"].default
    assert latent.help.startswith(fields["latent"].description)
    assert at.checkbox(key="exp.model.autoencoder.linear").value is False
