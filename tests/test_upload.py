"""Uploading a file on the Data page (issue 11): stored under a generated name in the
workspace's uploads/ folder, with a stated and enforced size limit; refused files leave
nothing behind; the stored file opens like any dataset under the data roots."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend import paths
from data.synthetic import mock_field
from oceanlab_errors import DataError

PAGE = Path(__file__).resolve().parents[1] / "app" / "pages" / "1_Data.py"


@pytest.fixture
def netcdf_bytes(tmp_path) -> bytes:
    path = tmp_path / "mine.nc"
    mock_field(n_time=6, n_lat=10, n_lon=12, land=True, seed=1).drop_vars("mask").to_netcdf(path)
    return path.read_bytes()


def test_save_upload_generates_the_name_and_keeps_one_copy(workspace, netcdf_bytes):
    a = paths.save_upload(io.BytesIO(netcdf_bytes), "../../etc/evil name.nc")
    b = paths.save_upload(io.BytesIO(netcdf_bytes), "other.nc")
    assert a == b and a.parent == paths.uploads_dir().resolve()
    assert a.name.startswith("upload-") and a.suffix == ".nc" and "evil" not in a.name
    assert a.read_bytes() == netcdf_bytes
    assert paths.check_user_path(str(a)) == str(a)  # accepted like a file under a root
    assert sorted(p.name for p in paths.uploads_dir().iterdir()) == [a.name]


@pytest.mark.parametrize("content, limit, message", [
    (b"CDF\x01" + b"\0" * (2 * 2**20), 1, "larger than the upload limit of 1 MB"),
    (b"", 5, "the uploaded file is empty"),
    (b"<html>not data</html>", 5, "not a NetCDF or HDF5 file"),
])
def test_refused_uploads_leave_nothing(workspace, content, limit, message):
    with pytest.raises(DataError, match=message) as info:
        paths.save_upload(io.BytesIO(content), "bad.nc", limit_mb=limit)
    assert str(info.value).startswith("bad.nc: ") and "\n" not in str(info.value)
    assert list(paths.uploads_dir().iterdir()) == []


def test_upload_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv(paths.UPLOAD_MAX_ENV, "12")
    assert paths.upload_limit_mb() == 12
    monkeypatch.setenv(paths.UPLOAD_MAX_ENV, "lots")
    assert paths.upload_limit_mb() == paths.UPLOAD_MAX_MB


def test_data_page_opens_an_uploaded_file(workspace, netcdf_bytes, monkeypatch):
    monkeypatch.setenv(paths.UPLOAD_MAX_ENV, "5")
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    at.radio(key="data.source").set_value("upload").run()
    assert not at.exception
    assert "at most 5 MB" in " ".join(c.value for c in at.caption)
    at.get("file_uploader")[0].upload("my field.nc", netcdf_bytes, "application/x-netcdf")
    at.run()
    assert not at.exception and not at.error, at.error
    stored = list(paths.uploads_dir().iterdir())
    assert len(stored) == 1 and stored[0].name.startswith("upload-")
    assert any("12" in str(m.value) and "10" in str(m.value) for m in at.metric)  # 10 × 12 grid
    from app.ui import DATASET_KEY

    assert at.session_state[DATASET_KEY] == str(stored[0].resolve())  # the other pages


def test_data_page_refuses_a_file_that_is_not_netcdf(workspace):
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    at.radio(key="data.source").set_value("upload").run()
    at.get("file_uploader")[0].upload("notes.nc", b"just text", "text/plain")
    at.run()
    assert not at.exception
    shown = re.sub(r"\\(.)", r"\1", " ".join(e.value for e in at.error))  # Markdown escapes
    assert "notes.nc: not a NetCDF or HDF5 file" in shown
    assert not paths.uploads_dir().exists() or list(paths.uploads_dir().iterdir()) == []
