"""Sharing runs (issue 10): ``export`` / ``import`` round trip of a real OI run, no
overwriting, and crafted archives refused with nothing left in the store."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from app.cli import main
from backend import record as records
from backend.config import build_config
from backend.runner import execute
from backend.share import FORMAT, FORMAT_VERSION, MANIFEST
from backend.store import RunStore


@pytest.fixture
def oi_run(tmp_path, mock_nc):
    store = RunStore(tmp_path / "runs_a")
    config = build_config(model="oi", overrides={"data.path": str(mock_nc), "data.var": "ssh",
                                                 "data.obs": "ssh_obs", "model.lt_days": 3.0})
    run = execute(config, store)
    assert run.info()["status"] == "done"
    return run


@pytest.fixture
def archive(tmp_path, oi_run, capsys):
    out = tmp_path / "share" / "runs.zip"
    code = main(["export", oi_run.id, "--out", str(out), "--runs-dir", str(oi_run.path.parent)])
    _, err = capsys.readouterr()
    assert code == 0, err
    return out


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def store_entries(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_round_trip_keeps_scores_predictions_and_origin(tmp_path, oi_run, archive, capsys):
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read(MANIFEST))
        assert manifest["format"] == FORMAT and manifest["format_version"] == FORMAT_VERSION
        assert manifest["oceanlab_version"] == "0.1.0"
        (entry,) = manifest["runs"]
        assert entry["id"] == oi_run.id and entry["status"] == "done"
        listed = {f["path"]: f for f in entry["files"]}
        # every file of the run folder except the transient ones, each with its sha256
        assert {"run.json", "metrics.json", "prediction.nc", "diagnostics.nc",
                "events.jsonl"} <= set(listed)
        assert not {"writer.lock", "heartbeat.json", "cancel.request"} & set(listed)
        assert names == {MANIFEST} | {f"{oi_run.id}/{p}" for p in listed}
        for path, f in listed.items():
            data = (oi_run.path / path).read_bytes()
            assert f["size"] == len(data)
            assert f["sha256"] == hashlib.sha256(data).hexdigest()
            assert zf.read(f"{oi_run.id}/{path}") == data

    runs_b = tmp_path / "runs_b"
    code, out, err = cli(capsys, "import", str(archive), "--runs-dir", str(runs_b), "--json")
    assert code == 0, err
    assert json.loads(out) == {"imported": [{"run_id": oi_run.id, "original_id": oi_run.id}],
                               "skipped": []}
    assert store_entries(runs_b) == [oi_run.id]  # no temporary folder left
    new = RunStore(runs_b).get(oi_run.id)
    assert (new.path / "metrics.json").read_bytes() == (oi_run.path / "metrics.json").read_bytes()
    assert new.metrics()["rmse"] == oi_run.metrics()["rmse"] and new.metrics()["rmse"] > 0
    a, b = oi_run.prediction(), new.prediction()
    assert set(a.data_vars) == set(b.data_vars) and "ssh" in b
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values)
    xr.testing.assert_identical(a, b)
    info = new.info()
    assert info["status"] == "done" and info["id"] == oi_run.id
    assert info["config"] == oi_run.info()["config"]
    origin = info["imported_from"]
    assert origin["id"] == oi_run.id and origin["archive"] == "runs.zip" and origin["time"]
    # the imported run is listed like any other
    code, out, _ = cli(capsys, "runs", "--runs-dir", str(runs_b), "--json")
    assert code == 0 and [r["id"] for r in json.loads(out)] == [oi_run.id]


def test_import_never_overwrites(tmp_path, oi_run, archive, capsys):
    runs_b = tmp_path / "runs_b"
    assert cli(capsys, "import", str(archive), "--runs-dir", str(runs_b))[0] == 0
    first = (runs_b / oi_run.id / "run.json").read_bytes()
    # twice: the identical run is skipped, nothing written
    code, out, _ = cli(capsys, "import", str(archive), "--runs-dir", str(runs_b), "--json")
    assert code == 0
    assert json.loads(out) == {"imported": [], "skipped": [
        {"original_id": oi_run.id, "run_id": oi_run.id,
         "reason": "an identical run is already in the store"}]}
    assert store_entries(runs_b) == [oi_run.id]
    assert (runs_b / oi_run.id / "run.json").read_bytes() == first
    # back into the workspace it came from: skipped too, the original untouched
    before = {p.name: p.read_bytes() for p in oi_run.path.iterdir() if p.is_file()}
    code, out, _ = cli(capsys, "import", str(archive), "--runs-dir", str(oi_run.path.parent),
                       "--json")
    assert code == 0 and json.loads(out)["imported"] == []
    assert {p.name: p.read_bytes() for p in oi_run.path.iterdir() if p.is_file()} == before
    # a different run under the same id: the import gets a new id, the existing run stays
    (runs_b / oi_run.id / "metrics.json").write_text('{"rmse": 123.0}')
    code, out, _ = cli(capsys, "import", str(archive), "--runs-dir", str(runs_b), "--json")
    assert code == 0
    (item,) = json.loads(out)["imported"]
    assert item["original_id"] == oi_run.id and item["run_id"] != oi_run.id
    assert item["run_id"].startswith(oi_run.id + "-imp")
    assert json.loads((runs_b / oi_run.id / "metrics.json").read_text()) == {"rmse": 123.0}
    renamed = RunStore(runs_b).get(item["run_id"])
    assert renamed.info()["id"] == item["run_id"]
    assert renamed.info()["imported_from"]["id"] == oi_run.id
    assert renamed.metrics() == oi_run.metrics()
    assert sorted(store_entries(runs_b)) == sorted([oi_run.id, item["run_id"]])
    # and once more: the renamed copy is recognised (imported from the same id), skipped
    code, out, _ = cli(capsys, "import", str(archive), "--runs-dir", str(runs_b), "--json")
    assert json.loads(out)["skipped"][0]["run_id"] == item["run_id"]
    assert len(store_entries(runs_b)) == 2


# -- crafted archives -----------------------------------------------------------------------
def rewrite(src: Path, dst: Path, *, extra=(), drop=(), replace=None, manifest_edit=None):
    """A copy of archive ``src`` with entries dropped/replaced/added (ZipInfo, bytes) and
    the manifest edited by ``manifest_edit(manifest)``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        manifest = json.loads(zin.read(MANIFEST))
        if manifest_edit:
            manifest_edit(manifest)
        for info in zin.infolist():
            if info.filename in drop or info.filename == MANIFEST:
                continue
            data = zin.read(info)
            if replace and info.filename in replace:
                data = replace[info.filename]
            zout.writestr(info, data)
        for info, data in extra:
            zout.writestr(info, data)
        zout.writestr(MANIFEST, json.dumps(manifest))
    return dst


def listed(manifest, run_id, path, data: bytes):
    """Add ``path`` with ``data``'s size and sha256 to the manifest's run ``run_id``."""
    run = next(r for r in manifest["runs"] if r["id"] == run_id)
    run["files"].append({"path": path, "size": len(data),
                         "sha256": hashlib.sha256(data).hexdigest()})


def refused(capsys, tmp_path, bad: Path, *words, env=None):
    runs = tmp_path / "runs_c"
    code, out, err = cli(capsys, "import", str(bad), "--runs-dir", str(runs))
    assert code == 2, (out, err)
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    for w in words:
        assert w in err, err
    assert store_entries(runs) == []  # nothing imported, no temporary folder left
    assert not (tmp_path / "evil").exists() and not Path("/tmp/oceanlab-share-evil").exists()


def test_zip_slip_entries_are_refused(tmp_path, oi_run, archive, capsys):
    rid = oi_run.id
    payload = b"owned\n"
    for i, name in enumerate([f"{rid}/../../evil", "/tmp/oceanlab-share-evil", "../evil",
                              f"{rid}/sub/../../evil", f"{rid}\\..\\evil"]):
        bad = rewrite(archive, tmp_path / f"slip{i}.zip", extra=[(zipfile.ZipInfo(name), payload)],
                      manifest_edit=lambda m, n=name: listed(m, rid, n.partition("/")[2] or n,
                                                              payload))
        refused(capsys, tmp_path, bad, "refused")
    # a run folder whose name is not a run id
    bad = rewrite(archive, tmp_path / "badid.zip",
                  manifest_edit=lambda m: m["runs"][0].update(id="a b"))
    refused(capsys, tmp_path, bad, "invalid run id")


def test_symlink_entry_is_refused(tmp_path, oi_run, archive, capsys):
    rid = oi_run.id
    link = zipfile.ZipInfo(f"{rid}/link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    target = b"/etc/passwd"
    bad = rewrite(archive, tmp_path / "link.zip", extra=[(link, target)],
                  manifest_edit=lambda m: listed(m, rid, "link", target))
    refused(capsys, tmp_path, bad, "symbolic link")


def test_tampered_file_is_refused(tmp_path, oi_run, archive, capsys):
    rid = oi_run.id
    fake = json.dumps({"rmse": 0.0}).encode()
    # the size kept equal, so only the sha256 tells
    real = (oi_run.path / "metrics.json").read_bytes()
    fake = fake.ljust(len(real), b" ")
    bad = rewrite(archive, tmp_path / "tampered.zip", replace={f"{rid}/metrics.json": fake})
    refused(capsys, tmp_path, bad, "sha256", "metrics.json")
    # a file not in the manifest, and a listed file missing
    bad = rewrite(archive, tmp_path / "extra.zip", extra=[(zipfile.ZipInfo(f"{rid}/x.txt"), b"x")])
    refused(capsys, tmp_path, bad, "not listed")
    bad = rewrite(archive, tmp_path / "missing.zip", drop={f"{rid}/prediction.nc"})
    refused(capsys, tmp_path, bad, "prediction.nc")
    # not a zip at all
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    refused(capsys, tmp_path, junk, "not a readable zip")


def test_oversized_archives_are_refused(tmp_path, oi_run, archive, capsys, monkeypatch):
    rid = oi_run.id
    # over the stated limit (total uncompressed bytes)
    monkeypatch.setenv("OCEANLAB_IMPORT_MAX_BYTES", "1000")
    refused(capsys, tmp_path, archive, "import limit", "OCEANLAB_IMPORT_MAX_BYTES")
    monkeypatch.setenv("OCEANLAB_IMPORT_MAX_BYTES", "lots")
    refused(capsys, tmp_path, archive, "OCEANLAB_IMPORT_MAX_BYTES")
    monkeypatch.delenv("OCEANLAB_IMPORT_MAX_BYTES")
    # a zip bomb: 8 MiB of zeros deflated to a few KiB
    zeros = bytes(8 * 1024 ** 2)
    bad = rewrite(archive, tmp_path / "bomb.zip", extra=[(_deflated(f"{rid}/zeros.bin"), zeros)],
                  manifest_edit=lambda m: listed(m, rid, "zeros.bin", zeros))
    refused(capsys, tmp_path, bad, "zip bomb")
    # a huge declared size (patched into the central directory, manifest agreeing)
    huge = 0xFFFF0000
    small = b"0123456789"
    bad = rewrite(archive, tmp_path / "huge.zip", extra=[(zipfile.ZipInfo(f"{rid}/huge.bin"), small)],
                  manifest_edit=lambda m: m["runs"][0]["files"].append(
                      {"path": "huge.bin", "size": huge, "sha256": "0" * 64}))
    data = bytearray(bad.read_bytes())
    name = f"{rid}/huge.bin".encode()
    at = data.rfind(b"PK\x01\x02", 0, data.rfind(name))  # its central directory record
    assert struct.unpack_from("<I", data, at + 24)[0] == len(small)
    struct.pack_into("<I", data, at + 24, huge)
    bad.write_bytes(bytes(data))
    with zipfile.ZipFile(bad) as zf:
        assert zf.getinfo(f"{rid}/huge.bin").file_size == huge
    monkeypatch.setenv("OCEANLAB_IMPORT_MAX_BYTES", str(2 * 1024 ** 3))
    refused(capsys, tmp_path, bad, "refused")


def _deflated(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def test_export_refuses_active_runs(tmp_path, oi_run, capsys):
    store = RunStore(oi_run.path.parent)
    out = tmp_path / "out.zip"
    queued = store.create(oi_run.info()["config"], status="queued")
    code, _, err = cli(capsys, "export", oi_run.id, queued.id, "--out", str(out),
                       "--runs-dir", str(store.root))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"run {queued.id} is queued" in err and "only ended runs" in err
    running = store.create(oi_run.info()["config"], status="running")
    assert records.acquire(running.path)  # its worker (this process) holds the writer lock
    try:
        running.update(pid=os.getpid())
        code, _, err = cli(capsys, "export", running.id, "--out", str(out),
                           "--runs-dir", str(store.root))
    finally:
        records.release(running.path)
    assert code == 2 and f"run {running.id} is running" in err
    assert not out.exists() and not list(tmp_path.glob(".out.zip.*"))
    # unknown run: one line, exit 2
    code, _, err = cli(capsys, "export", "no-such-run", "--out", str(out),
                       "--runs-dir", str(store.root))
    assert code == 2 and "no run 'no-such-run'" in err and not out.exists()


def test_active_run_in_archive_is_refused(tmp_path, oi_run, archive, capsys):
    """A run recorded as queued would be started by the new store's workers: refused."""
    rid = oi_run.id
    record = json.loads((oi_run.path / "run.json").read_text())
    record["status"] = "queued"
    data = json.dumps(record).encode()

    def edit(m):
        f = next(f for f in m["runs"][0]["files"] if f["path"] == "run.json")
        f.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())

    bad = rewrite(archive, tmp_path / "queued.zip", replace={f"{rid}/run.json": data},
                  manifest_edit=edit)
    refused(capsys, tmp_path, bad, "only ended runs can be imported")
