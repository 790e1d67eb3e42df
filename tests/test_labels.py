"""Names and tags of runs, and deleting them (issue 10): ``train --name/--tag``, ``rename``,
``tag``, ``runs --tag`` and ``delete`` from the command line, and the store's checks."""

from __future__ import annotations

import json

import pytest

from app.cli import main
from backend import record as records
from backend.store import RunStore, check_name, check_tag
from oceanlab_errors import RunError


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def trained(capsys, mock_nc, tmp_path, workspace):
    """A run store with one OI run named and tagged at launch."""
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, "train", "--data", str(mock_nc), "--var", "ssh", "--obs",
                             "ssh_obs", "--model", "oi", "--name", "  first   try ", "--tag",
                             "baseline", "--tag", "week 3", "--tag", "baseline",
                             "--runs-dir", str(runs), "--json")
    assert code == 0, err
    return runs, json.loads(out)["run_id"]


def test_train_records_the_name_and_tags(trained):
    runs, run_id = trained
    info = json.loads((runs / run_id / "run.json").read_text())
    assert info["status"] == "done"
    assert info["name"] == "first try"  # spaces collapsed
    assert info["tags"] == ["baseline", "week 3"]  # a repeated tag once


def test_rename_tag_untag_and_filter(capsys, trained):
    runs, run_id = trained
    d = ["--runs-dir", str(runs)]
    code, out, _ = run_cli(capsys, "rename", run_id, "OI, Lt 7 days", *d, "--json")
    assert code == 0 and json.loads(out) == {"run_id": run_id, "name": "OI, Lt 7 days"}
    code, out, _ = run_cli(capsys, "tag", run_id, "talk", "baseline", *d, "--json")
    assert json.loads(out)["tags"] == ["baseline", "week 3", "talk"]
    code, out, _ = run_cli(capsys, "tag", run_id, "week 3", "--remove", *d, "--json")
    assert json.loads(out)["tags"] == ["baseline", "talk"]

    code, out, _ = run_cli(capsys, "runs", "--tag", "talk", *d, "--json")
    rows = json.loads(out)
    assert [r["id"] for r in rows] == [run_id]
    assert rows[0]["name"] == "OI, Lt 7 days" and rows[0]["tags"] == "baseline, talk"
    code, out, _ = run_cli(capsys, "runs", "--tag", "week 3", *d)
    assert code == 0 and "no run has these tags" in out
    code, out, _ = run_cli(capsys, "runs", *d)
    assert "OI, Lt 7 days" in out and "baseline, talk" in out

    code, out, _ = run_cli(capsys, "rename", run_id, "", *d)
    assert code == 0 and "name removed" in out
    assert "name" not in json.loads((runs / run_id / "run.json").read_text())


@pytest.mark.parametrize("argv, message", [
    (["tag", "{id}", "a,b"], "invalid tag 'a,b'"),
    (["tag", "{id}", "x" * 33], "invalid tag"),
    (["tag", "no-such-run", "x"], "is not a run of"),
    (["rename", "{id}", "x" * 81], "at most 80 characters"),
    (["rename", "{id}", "bad\x07name"], "control characters"),
    (["rename", "../escape", "x"], "invalid run id"),
])
def test_bad_names_and_tags_are_one_line_errors_and_change_nothing(capsys, trained, argv,
                                                                    message):
    runs, run_id = trained
    before = (runs / run_id / "run.json").read_text()
    code, _out, err = run_cli(capsys, *[a.format(id=run_id) for a in argv], "--runs-dir",
                             str(runs))
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert (runs / run_id / "run.json").read_text() == before


def test_delete_needs_yes_and_refuses_an_executing_run(capsys, trained):
    runs, run_id = trained
    store = RunStore(runs)
    busy = store.create({"model": {"name": "oi"}}, run_id="20240101-000000-oi-busy")
    busy.update(status="running")
    assert records.acquire(busy.path)  # this process executes it: the worker is alive
    try:
        code, _, err = run_cli(capsys, "delete", run_id, "--runs-dir", str(runs))
        assert code == 2 and "add --yes" in err
        assert (runs / run_id).is_dir()  # nothing deleted without --yes
        code, out, _ = run_cli(capsys, "delete", busy.id, run_id, "--yes", "--runs-dir",
                               str(runs), "--json")
        result = json.loads(out)
        assert code == 2
        assert result["deleted"] == [run_id]
        assert result["refused"][0]["run_id"] == busy.id
        assert "cancel it first" in result["refused"][0]["reason"]
        assert busy.path.is_dir() and not (runs / run_id).exists()
    finally:
        records.release(busy.path)
    # Once its worker is gone the run is recorded as lost (failed) and can be deleted.
    code, out, _ = run_cli(capsys, "delete", busy.id, "--yes", "--runs-dir", str(runs))
    assert code == 0 and not busy.path.exists()


def test_labels_of_a_queued_submission(workspace, mock_nc, tmp_path):
    from backend import jobs
    from backend.config import build_config

    config = build_config(model="oi", overrides={"data.path": str(mock_nc), "data.var": "ssh",
                                                 "data.obs": "ssh_obs"})
    sub = jobs.submit(config, RunStore(tmp_path / "runs"), start_workers=False,
                      labels={"name": "queued one", "tags": ["x"]})
    info = sub.run.info()
    assert info["status"] == "queued" and info["name"] == "queued one" and info["tags"] == ["x"]


def test_check_name_and_tag():
    assert check_name(None) is None and check_name("   ") is None
    assert check_name(" a\t b ") == "a b"
    assert check_tag(" week  3 ") == "week 3"
    for bad in ("", " ", "a,b", "-" * 33, "bell\x07", "a/b"):
        with pytest.raises(RunError):
            check_tag(bad)
