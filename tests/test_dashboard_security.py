"""The dashboard is closed to strangers (issue 5 §6) and survives damaged run folders (§3).

- Paths typed in a page are opened only under the data roots (:func:`backend.paths.
  check_user_path`), with one message that does not tell whether a refused file exists.
- Text from files and run.json reaches Markdown-rendering elements escaped
  (:func:`app.ui.plain`), so it can neither format, link nor inject HTML.
- Run folders whose run.json or metrics.json cannot be read do not break any page, and the
  Results page's ``?run=`` never reaches a file outside the run store.
- The server listens on 127.0.0.1 unless told otherwise (config.toml and the Makefile).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.ui import plain
from backend import paths
from backend.store import RunStore
from oceanlab_errors import DataError
from tests.test_app_pages import METRICS, make_run, page, texts

REPO = Path(__file__).resolve().parents[1]
REFUSED = "{path}: not an accessible dataset under the data roots ({roots})"
EVIL = "**bold** <script>alert(1)</script> [link](http://x) $x^2$ :red[red] www.evil.example"


# --------------------------------------------------------------------------- check_user_path


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A data root with files, links and a FIFO, next to a folder outside every root."""
    root = tmp_path / "root"
    out = tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    out.mkdir()
    (root / "a.nc").write_bytes(b"CDF\x01")
    (root / "b.nc").write_bytes(b"CDF\x01")
    (root / "sub" / "c.nc").write_bytes(b"CDF\x01")
    (out / "secret.nc").write_bytes(b"CDF\x01")
    (root / "escape.nc").symlink_to(out / "secret.nc")
    (root / "alias.nc").symlink_to(root / "a.nc")
    (root / "outdir").symlink_to(out, target_is_directory=True)
    (root / "null.nc").symlink_to("/dev/null")
    os.mkfifo(root / "pipe.nc")
    monkeypatch.setenv(paths.DATA_ROOTS_ENV, str(root))
    return {"root": root.resolve(), "out": out.resolve(), "tmp": tmp_path.resolve()}


#: (case, text typed with {root}/{out} placeholders, expected: "refused" or the result).
CASES = [
    ("file inside the root", "{root}/a.nc", "{root}/a.nc"),
    ("file in a sub-folder", "{root}/sub/c.nc", "{root}/sub/c.nc"),
    ("'..' that stays inside", "{root}/sub/../a.nc", "{root}/a.nc"),
    ("link to a file inside", "{root}/alias.nc", "{root}/a.nc"),
    ("blanks around the path", "  {root}/a.nc \t", "{root}/a.nc"),
    ("glob inside the root", "{root}/?.nc", "{root}/?.nc"),
    ("glob with a class", "{root}/[ab].nc", "{root}/[ab].nc"),
    ("glob in sub-folders", "{root}/s*/*.nc", "{root}/s*/*.nc"),
    ("file outside the root", "{out}/secret.nc", "refused"),
    ("missing file outside", "{out}/nothing.nc", "refused"),
    ("missing file inside", "{root}/nothing.nc", "refused"),
    ("'..' traversal out of the root", "{root}/../outside/secret.nc", "refused"),
    ("deep '..' traversal", "{root}/sub/../../../../../../etc/passwd", "refused"),
    ("link escaping the root", "{root}/escape.nc", "refused"),
    ("file under a linked folder", "{root}/outdir/secret.nc", "refused"),
    ("link to a device", "{root}/null.nc", "refused"),
    ("FIFO inside the root", "{root}/pipe.nc", "refused"),
    ("directory inside the root", "{root}/sub", "refused"),
    ("the root itself", "{root}", "refused"),
    ("glob also matching an escaping link", "{root}/*.nc", "refused"),
    ("glob escaping through */../..", "{root}/*/../../outside/*.nc", "refused"),
    ("glob starting outside", "{out}/*.nc", "refused"),
    ("glob above the root", "{root}/../*/secret.nc", "refused"),
    ("glob through a linked folder", "{root}/outdir/*.nc", "refused"),
    ("glob matching a FIFO", "{root}/p*", "refused"),
    ("glob matching a directory", "{root}/su?", "refused"),
    ("glob matching nothing", "{root}/*.zarr", "refused"),
    ("relative path outside", "secret.nc", "refused"),
    ("absolute system file", "/etc/passwd", "refused"),
    ("proc file", "/proc/self/environ", "refused"),
]


@pytest.mark.parametrize(("case", "typed", "expected"), CASES, ids=[c[0] for c in CASES])
def test_check_user_path_catalogue(tree, case: str, typed: str, expected: str):
    text = typed.format(root=tree["root"], out=tree["out"])
    if expected != "refused":
        assert paths.check_user_path(text) == expected.format(root=tree["root"])
        return
    with pytest.raises(DataError) as err:
        paths.check_user_path(text)
    assert str(err.value) == REFUSED.format(path=text.strip(), roots=tree["root"])


def test_missing_and_outside_files_get_the_same_message(tree):
    """Whether a refused file exists cannot be told from the message."""
    messages = []
    for typed in (f"{tree['out']}/secret.nc", f"{tree['out']}/nothing.nc",
                  f"{tree['root']}/nothing.nc", f"{tree['root']}/escape.nc",
                  f"{tree['root']}/pipe.nc", f"{tree['root']}/*/../../outside/*.nc"):
        with pytest.raises(DataError) as err:
            paths.check_user_path(typed)
        messages.append(str(err.value).replace(typed, "PATH"))
    assert len(set(messages)) == 1, messages


def test_unreadable_file_is_refused(tree):
    target = tree["root"] / "locked.nc"
    target.write_bytes(b"CDF\x01")
    target.chmod(0)
    expected = REFUSED.format(path=target, roots=tree["root"])
    try:
        if os.geteuid() != 0:
            with pytest.raises(DataError) as err:
                paths.check_user_path(str(target))
            assert str(err.value) == expected
            return
        # Root reads any file; a child without the capabilities that bypass file modes
        # sees what another user would.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: file modes cannot be enforced")
        code = ("from backend import paths\nfrom oceanlab_errors import DataError\n"
                "try:\n    print('accepted', paths.check_user_path(%r))\n"
                "except DataError as exc:\n    print(exc)\n" % str(target))
        proc = subprocess.run([setpriv, "--bounding-set", "-dac_override,-dac_read_search",
                               sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120, env={**os.environ})
        assert proc.stdout.strip() == expected, proc.stderr
    finally:
        target.chmod(0o600)


def test_relative_and_home_paths_are_resolved(tree, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tree["root"] / "sub")
    assert paths.check_user_path("c.nc") == str(tree["root"] / "sub" / "c.nc")
    assert paths.check_user_path("../a.nc") == str(tree["root"] / "a.nc")
    with pytest.raises(DataError):
        paths.check_user_path("../../outside/secret.nc")
    monkeypatch.setenv("HOME", str(tree["tmp"]))
    assert paths.check_user_path("~/root/a.nc") == str(tree["root"] / "a.nc")
    with pytest.raises(DataError):
        paths.check_user_path("~/outside/secret.nc")


@pytest.mark.parametrize("typed", ["", "   ", None])
def test_empty_path(tree, typed):
    with pytest.raises(DataError) as err:
        paths.check_user_path(typed)
    assert str(err.value) == ("no dataset path given: type a NetCDF file or glob under the "
                              f"data roots ({tree['root']})")


def test_control_characters_are_refused_and_quoted(tree):
    typed = f"{tree['root']}/a.nc\x00"
    with pytest.raises(DataError) as err:
        paths.check_user_path(typed)
    assert str(err.value) == REFUSED.format(path=repr(typed), roots=tree["root"])


def test_several_roots_from_the_environment(tree, tmp_path: Path, monkeypatch):
    second = tmp_path / "second"
    second.mkdir()
    (second / "d.nc").write_bytes(b"CDF\x01")
    monkeypatch.setenv(paths.DATA_ROOTS_ENV,
                       os.pathsep.join([str(tree["root"]), "", f"  {second}  ", str(second)]))
    assert paths.data_roots() == [tree["root"], second.resolve()]  # blanks and repeats dropped
    assert paths.check_user_path(str(second / "d.nc")) == str(second.resolve() / "d.nc")
    assert paths.check_user_path(str(tree["root"] / "a.nc")) == str(tree["root"] / "a.nc")
    with pytest.raises(DataError) as err:
        paths.check_user_path(str(tree["out"] / "secret.nc"))
    assert str(err.value) == REFUSED.format(path=tree["out"] / "secret.nc",
                                            roots=f"{tree['root']}, {second.resolve()}")


def test_default_root_is_the_workspace_datasets(monkeypatch, workspace: Path):
    monkeypatch.delenv(paths.DATA_ROOTS_ENV, raising=False)
    assert paths.data_roots() == [paths.datasets_dir().resolve()]
    monkeypatch.setenv(paths.DATA_ROOTS_ENV, " ")
    assert paths.data_roots() == [paths.datasets_dir().resolve()]
    inside = paths.datasets_dir() / "x.nc"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(b"CDF\x01")
    assert paths.check_user_path(str(inside)) == str(inside.resolve())


def test_builtin_dataset_is_always_allowed(tree, workspace: Path):
    builtin = paths.builtin_dataset_path()
    builtin.parent.mkdir(parents=True, exist_ok=True)
    builtin.write_bytes(b"CDF\x01")
    assert not builtin.resolve().is_relative_to(tree["root"])  # not under the roots
    assert paths.check_user_path(str(builtin)) == str(builtin.resolve())
    with pytest.raises(DataError):  # its neighbours are not
        (builtin.parent / "other.nc").write_bytes(b"CDF\x01")
        paths.check_user_path(str(builtin.parent / "other.nc"))


# --------------------------------------------------------------------------- plain text


def test_plain_escapes_every_markdown_construct():
    escaped = plain(EVIL)
    punctuation = r"[!-/:-@\[-`{-~]"
    # every ASCII punctuation character appears only behind a backslash
    assert re.fullmatch(rf"(?:\\{punctuation}|(?!{punctuation}).)*", escaped), escaped
    for raw in ("**", "<script>", "](", ":red[", "www.evil"):
        assert raw not in escaped
    assert re.sub(r"\\(.)", r"\1", escaped) == EVIL  # nothing lost but the backslashes
    assert plain("a\nb") == "a  \nb"  # line breaks kept as hard breaks
    assert plain(None) == "" and plain(3) == "3"


MARKDOWN_KINDS = ("markdown", "caption", "error", "warning", "info", "success", "metric",
                  "subheader", "title", "toast")


def _markdown_values(at: AppTest) -> list[str]:
    """Every string shown through a Markdown-rendering element."""
    values: list[str] = []
    for kind in MARKDOWN_KINDS:
        for el in getattr(at, kind, []):
            values += [str(el.value), str(getattr(el, "label", ""))]
    for widget in (*at.checkbox, *at.selectbox, *at.multiselect, *at.radio, *at.text_input,
                   *at.button):
        values += [str(widget.label), str(widget.help or "")]
    return values


def _assert_nothing_renders(at: AppTest) -> None:
    for value in _markdown_values(at):
        assert "<script>" not in value, value
        assert "**bold**" not in value, value
        assert "](http" not in value, value


@pytest.fixture
def evil_run(workspace: Path) -> str:
    store = RunStore(workspace / "runs")
    run = make_run(store, "20240101-000000-oi-evil", status="failed", model="oi")
    run.update(error=EVIL, traceback=f"Traceback (most recent call last):\n  {EVIL}\n")
    return run.id


def test_runs_page_shows_run_errors_as_plain_text(evil_run: str):
    at = page("4_Runs.py").run()
    assert not at.exception
    assert any(plain(EVIL) in m.value for m in at.markdown)
    assert EVIL in texts(at.markdown)  # what the reader sees: the text itself
    _assert_nothing_renders(at)


def test_experiment_page_shows_run_error_as_plain_text(evil_run: str):
    at = page("2_Experiment.py")
    at.session_state["current_run"] = evil_run
    at.run()
    assert not at.exception
    assert at.error[0].value == plain(EVIL)
    assert EVIL in at.code[-1].value  # the traceback is a code block (never rendered)
    _assert_nothing_renders(at)


def test_file_attributes_are_plain_text(workspace: Path):
    """Variable names, notes and units from a user's file cannot format the page."""
    import numpy as np
    import pandas as pd
    import xarray as xr

    t = pd.date_range("2012-10-01", periods=3)
    field = np.random.default_rng(0).normal(size=(3, 4, 5)).astype("float32")
    name = "ssh_[x](y)"
    ds = xr.Dataset(
        {name: (("time", "lat", "lon"), field, {"units": "$\\frac{$", "long_name": EVIL}),
         "obs_*b*": (("time", "lat", "lon"), field, {"units": "m"})},
        coords={"time": t, "lat": np.linspace(30, 34, 4), "lon": np.linspace(-60, -56, 5)},
        attrs={"oceanlab_notes": EVIL, "oceanlab_obs_var": "obs_*b*"})
    path = paths.datasets_dir() / "evil.nc"
    path.parent.mkdir(parents=True)
    ds.to_netcdf(path)
    at = page("1_Data.py").run()
    at.radio(key="data.source").set_value("path").run()
    at.text_input(key="data.path").input(str(path)).run()
    assert not at.exception  # the "$\frac{$" units would break matplotlib's mathtext
    assert not at.error
    assert EVIL in texts(at.markdown)  # "What the loader changed", one line per note
    assert "observations of obs_*b*" in texts(at.caption)
    _assert_nothing_renders(at)
    assert not any("[x](y)" in v or "*b*" in v for v in _markdown_values(at))


# --------------------------------------------------------------------------- data roots


def test_data_page_refuses_paths_outside_the_roots(workspace: Path, tmp_path: Path):
    from tests.test_app_pages import _mock

    outside = tmp_path / "outside.nc"
    _mock().drop_vars("mask").to_netcdf(outside)  # a valid file, outside the roots
    roots = str(paths.datasets_dir().resolve())
    at = page("1_Data.py").run()
    at.radio(key="data.source").set_value("path").run()
    assert roots in texts(at.caption)  # the page names the roots
    shown = []
    for typed in (str(outside), str(tmp_path / "missing.nc"), "/etc/passwd",
                  f"{paths.datasets_dir()}/../../outside.nc", f"{tmp_path}/*.nc"):
        at.text_input(key="data.path").input(typed).run()
        assert not at.exception
        assert [e.value for e in at.error] == [
            plain(REFUSED.format(path=typed, roots=roots))]
        assert not at.metric  # nothing of the file is shown
        shown.append(texts(at.error).replace(typed, "PATH"))
    assert len(set(shown)) == 1  # an existing and a missing file look the same


def test_data_page_lists_every_root(monkeypatch, workspace: Path, tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.setenv(paths.DATA_ROOTS_ENV, f"{first}{os.pathsep}{second}")
    at = page("1_Data.py").run()
    at.radio(key="data.source").set_value("path").run()
    assert not at.exception
    shown = texts(at.caption)
    assert str(first.resolve()) in shown and str(second.resolve()) in shown
    assert paths.DATA_ROOTS_ENV in shown
    home = page("Home.py").run()
    assert str(first.resolve()) in texts(home.markdown)


def test_experiment_never_launches_outside_the_roots(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from backend import jobs
    from tests.test_app_pages import _mock

    launched: list = []
    monkeypatch.setattr(jobs, "submit", lambda config, store: launched.append(config))
    outside = tmp_path / "outside.nc"
    _mock().drop_vars("mask").to_netcdf(outside)
    at = page("2_Experiment.py").run()
    at.radio(key="exp.source").set_value("path").run()
    at.text_input(key="exp.path").input(str(outside)).run()
    assert not at.exception
    assert "not an accessible dataset" in texts(at.error)
    assert at.button(key="exp.launch").disabled
    assert launched == []


# --------------------------------------------------------------------------- damaged runs


def _write_damaged(runs: Path, kind: str) -> str:
    run_id = f"20240105-000000-oi-{kind}"
    folder = runs / run_id
    folder.mkdir(parents=True)
    good = {"id": run_id, "status": "done", "config": {"model": {"name": "oi"},
                                                        "task": {"name": "interpolation"}}}
    content: bytes
    if kind == "list":
        content = b"[1, 2]"
    elif kind == "utf8":
        content = b'{"id": "\xff\xfe", "status": "done"}'
    elif kind == "notjson":
        content = b'{"status": '
    elif kind == "configstr":
        content = json.dumps({**good, "config": "unet"}).encode()
    elif kind == "oddtypes":
        content = json.dumps({**good, "status": {"a": 1}, "device": ["cpu"],
                              "timings": {"total_s": "slow"}, "periods": {"test": "x"},
                              "data": "x", "error": ["e"]}).encode()
    elif kind == "running":
        content = json.dumps({**good, "status": "running", "config": {"model": "unet"},
                              "progress": {"epoch": "one", "epochs": [3]}}).encode()
    elif kind == "metricslist":
        content = json.dumps(good).encode()
        (folder / "metrics.json").write_text("[1, 2]")
        (folder / "prediction.nc").write_bytes(b"not netcdf")
    elif kind == "empty":
        content = b""
    elif kind == "failednoerror":
        content = json.dumps({**good, "status": "failed"}).encode()
    else:
        raise ValueError(kind)
    (folder / "run.json").write_bytes(content)
    return run_id


DAMAGED = ["list", "utf8", "notjson", "configstr", "oddtypes", "running", "metricslist",
           "empty", "failednoerror"]


@pytest.fixture
def damaged(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A store holding one good finished run and one run folder of every damaged kind."""
    from app import ui

    monkeypatch.setattr(ui, "worker_alive", lambda run: False)
    store = RunStore(workspace / "runs")
    make_run(store, "20240101-000000-unet-good")
    return [_write_damaged(workspace / "runs", kind) for kind in DAMAGED]


def test_runs_page_lists_damaged_runs(damaged: list[str]):
    at = page("4_Runs.py").run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("id")
    assert "20240101-000000-unet-good" in table.index
    for run_id in damaged:
        assert run_id in table.index
    for kind in ("list", "utf8", "notjson", "empty"):
        assert table.loc[f"20240105-000000-oi-{kind}", "status"] == "unreadable"
    assert "unreadable" in at.multiselect(key="runs.status").options
    at.multiselect(key="runs.status").set_value(["unreadable"]).run()
    assert not at.exception
    at.multiselect(key="runs.status").set_value([]).run()  # every run again
    for run_id in damaged:  # every run can still be picked for deletion
        at.selectbox(key="runs.delete_id").set_value(run_id).run()
        assert not at.exception


@pytest.mark.parametrize("name", ["Home.py", "3_Results.py", "4_Runs.py", "2_Experiment.py"])
def test_pages_survive_damaged_runs(damaged: list[str], name: str):
    at = page(name).run()
    assert not at.exception, at.exception
    if name == "3_Results.py":  # the good run can still be shown
        good = "20240101-000000-unet-good"
        assert f"{good} · unet · done" in at.selectbox(key="results.run").options
        at.selectbox(key="results.run").set_value(good).run()
        assert not at.exception, at.exception
        assert at.dataframe[0].value.set_index("key").loc["mu", "value"] == "0.91"
    if name == "Home.py":
        assert {m.label: m.value for m in at.metric}["Runs"] == str(len(damaged) + 1)


@pytest.mark.parametrize("kind", DAMAGED)
def test_damaged_run_as_current_or_linked_run(damaged: list[str], kind: str):
    run_id = f"20240105-000000-oi-{kind}"
    at = page("2_Experiment.py")
    at.session_state["current_run"] = run_id
    at.run()
    assert not at.exception, at.exception
    at = page("3_Results.py")
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception, at.exception
    assert run_id in texts(at.warning) or at.selectbox(key="results.run").value == run_id


def test_results_survives_damaged_metrics_of_a_done_run(workspace: Path):
    store = RunStore(workspace / "runs")
    run = make_run(store, "20240101-000000-unet-aaaa")
    (run.path / "metrics.json").write_text(json.dumps(
        {**METRICS, "notes": "not a dict", "lambda_x_deg": "wide", "lambda_t_days": [1]}))
    (run.path / "history.csv").write_bytes(b"\xff\xfe\x00garbage")
    at = page("3_Results.py").run()
    assert not at.exception, at.exception
    (run.path / "metrics.json").write_text("[1, 2]")
    at = page("3_Results.py").run()
    assert not at.exception, at.exception
    assert "metrics.json" in texts(at.warning)


# --------------------------------------------------------------------------- ?run= ids


BAD_IDS = ["..", "../x", "../../etc", "../runs/../x", "/etc", "./", ".", "x/../..",
           "../" * 8 + "etc/passwd", "%2e%2e", "20240101-000000-unet-aaaa/../../x"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_results_query_never_leaves_the_store(workspace: Path, bad: str):
    store = RunStore(workspace / "runs")
    make_run(store, "20240101-000000-unet-aaaa")
    # decoys a traversal would find: run.json files just outside the store
    for decoy in (workspace / "run.json", workspace / "x" / "run.json"):
        decoy.parent.mkdir(parents=True, exist_ok=True)
        decoy.write_text(json.dumps({"status": "decoy-status", "error": "decoy"}))
    touched: list[str] = []
    runs_root = (workspace / "runs").resolve()

    def spy(real):
        def wrapper(target, *args, **kwargs):
            if isinstance(target, str | os.PathLike):
                touched.append(os.fspath(target))
            return real(target, *args, **kwargs)
        return wrapper

    at = page("3_Results.py")
    at.query_params["run"] = bad
    with pytest.MonkeyPatch.context() as spying:
        for name in ("stat", "lstat", "listdir", "scandir"):
            spying.setattr(os, name, spy(getattr(os, name)))
        at.run()
    assert not at.exception
    assert "decoy" not in "\n".join(_markdown_values(at))
    assert len(at.warning) == 1
    assert texts(at.warning) == f"No run {bad} in the run store."
    assert at.selectbox(key="results.run").value == "20240101-000000-unet-aaaa"
    ws = workspace.resolve()
    seen = {Path(os.path.abspath(p)) for p in touched}  # abspath also folds "..": a/../b = b
    outside = [p for p in seen if p.is_relative_to(ws) and p != ws
               and not p.is_relative_to(runs_root)]
    assert outside == [], outside  # nothing in the workspace but the run store was looked at


# --------------------------------------------------------------------------- listening


def test_config_listens_on_localhost_only():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    server = config["server"]
    assert server["address"] == "127.0.0.1"
    assert server.get("enableXsrfProtection", True) is True
    assert server.get("enableCORS", True) is True  # CORS *protection* on
    assert set(server.get("allowedHosts", [])) <= {"localhost", "127.0.0.1", "::1"}
    assert config["browser"]["gatherUsageStats"] is False


def test_makefile_passes_the_address():
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^ADDRESS\s*\?=\s*127\.0\.0\.1\s*$", makefile, re.MULTILINE)
    run = re.search(r"^run:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE).group(1)
    assert "--server.address $(ADDRESS)" in run
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    for extra, address in (([], "127.0.0.1"), (["ADDRESS=0.0.0.0", "HOSTS=box.lan"], "0.0.0.0")):
        out = subprocess.run(["make", "-n", "-s", "run", *extra], cwd=REPO, text=True,
                             capture_output=True, check=True).stdout
        line = next(ln for ln in out.replace("\\\n", " ").splitlines() if "streamlit run" in ln)
        assert f"--server.address {address}" in line
        assert ("--server.allowedHosts 'box.lan'" in line) == bool(extra)


def _handshake(port: int, host: str, address: str = "127.0.0.1") -> bytes:
    """Status line of a WebSocket upgrade to the app stream, sent with a Host header."""
    with socket.create_connection((address, port), timeout=10) as s:
        s.sendall((f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   f"Origin: http://{host}:{port}\r\n\r\n").encode())
        return s.recv(200).split(b"\r\n")[0]


def _outward_address() -> str | None:
    """An address of this machine other than loopback, if it has one."""
    for probe in (lambda: _udp_address(), lambda: socket.gethostbyname(socket.gethostname())):
        try:
            address = probe()
        except OSError:
            continue
        if address and not address.startswith("127."):
            return address
    return None


def _udp_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        return s.getsockname()[0]


@pytest.mark.slow
def test_server_listens_on_loopback_and_refuses_foreign_hosts(workspace: Path, tmp_path):
    """A real server started without --server.address: config.toml keeps it on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(tmp_path / "streamlit.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app/Home.py", "--server.port",
             str(port), "--server.headless", "true"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
        try:
            for _ in range(120):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                                timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    time.sleep(0.5)
            else:
                pytest.fail("no dashboard: " + (tmp_path / "streamlit.log").read_text()[-2000:])
            assert _handshake(port, "localhost").startswith(b"HTTP/1.1 101")
            assert _handshake(port, "127.0.0.1").startswith(b"HTTP/1.1 101")
            # a name re-pointed at 127.0.0.1 by another site (DNS rebinding) is refused
            assert not _handshake(port, "evil.example").startswith(b"HTTP/1.1 101")
            outward = _outward_address()
            if outward is not None:  # nothing listens on the machine's other addresses
                with pytest.raises(OSError):
                    socket.create_connection((outward, port), timeout=3).close()
        finally:
            proc.terminate()
            proc.wait(timeout=20)
