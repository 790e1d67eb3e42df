"""Where a queued run executes: local worker processes, or an existing Dask cluster.

``backend.executor`` of the config (``--executor`` on the command line) chooses:

``local`` (the default)
    the slot workers of :mod:`backend.jobs`, started on this machine when needed; nothing to
    install or start.
``dask``
    an existing `Dask distributed <https://distributed.dask.org>`_ cluster, given by its
    scheduler address (``backend.scheduler`` / ``--scheduler tcp://host:8786``): started by
    hand (``dask scheduler``, ``dask worker ADDRESS``) or by dask-jobqueue on an HPC site.

**The run folder travels, not the result.** The client makes a queued run folder in the run
store (:meth:`backend.store.RunStore.create`) and sends the cluster one small task: "execute
the run in this folder" (:func:`execute_on_worker`, which calls
:func:`backend.jobs.run_queued`). The worker that takes the task writes everything —
``run.json``, ``metrics.json``, ``prediction.nc``, heartbeat, events, weights — into that
folder exactly as a local worker does, holding the run's writer lock to the end; the task's
own result is only the final status text. Nothing large goes through the scheduler, a run
survives the client going away (:func:`dask_submit` uses ``fire_and_forget``), and every
reader (``python -m app runs``, the dashboard, ``cancel``) works on the folder as for a
local run: progress, liveness (the heartbeat names the worker's host) and cancellation
(``cancel.request``, polled by the executing thread) need no connection to the cluster.

**Hence a shared path.** The run store (``OCEANLAB_HOME``, or ``--runs-dir``) must be on a
filesystem every machine sees **at the same path**: the submitting machine, every Dask
worker, and wherever the dashboard runs. So must the data file (``data.path``) and, for the
built-in dataset, ``OCEANLAB_HOME/datasets``. The worker checks it sees the run folder and
otherwise fails with a one-line error naming its host; the client checks the same on the
workers present before submitting. The writer lock is a ``flock`` on ``writer.lock``, which
must work across machines: NFSv4 (or v3 with ``lockd``), GPFS, Lustre mounted with ``flock``.

The client records nothing in ``run.json`` (only the process executing a run writes it); it
leaves ``executor.json`` (executor, scheduler, task key, submission time) beside it. A task
that fails before the run starts (no worker sees the folder) leaves the run ``queued``:
:func:`dask_run` raises the task's error, :func:`dask_submit` cannot see it.

**Threads and GPUs.** A Dask worker runs tasks in threads; torch's thread pool is set, in the
executing thread, to the worker's cores divided by its task threads, overriding the
``OMP_NUM_THREADS=1`` a Dask nanny sets (start workers with ``--nthreads 1`` to give each run
all cores of its worker). A run whose config asks for ``train.device: cuda`` requests the
Dask resource ``GPU: 1`` (``GPU: n`` with ``train.devices: n``), but only when some worker of
the cluster declares that resource (``dask worker ADDRESS --nthreads 1 --resources GPU=1``);
on a cluster whose workers declare none, the run is submitted without it (and fails on a
worker without a GPU with the usual one-line device error). ``device: auto`` never requests
a GPU.
"""

from __future__ import annotations

import inspect
import os
import re
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

from backend.store import ACTIVE, RUN_FILE, Run, atomic_write_json, now_iso
from oceanlab_errors import ConfigError, OceanLabError, RunError

if TYPE_CHECKING:  # pragma: no cover
    import distributed

#: The values of ``backend.executor``.
EXECUTORS = ("local", "dask")
#: File the client writes into a run folder submitted to Dask (run.json stays the worker's).
EXECUTOR_FILE = "executor.json"
#: Dask resource a run with ``train.device: cuda`` asks for, when workers declare it.
GPU_RESOURCE = "GPU"
#: Prefix of the Dask task key, followed by the run id.
KEY_PREFIX = "oceanlab-run-"

_ADDRESS = re.compile(
    r"(?:(?:tcp|tls|ucx|ws|wss)://(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):\d{1,5}"
    r"|inproc://\S+)")


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ConfigError(
            f"--executor dask needs the Python package 'distributed' (Dask distributed), "
            f"which cannot be imported here ({exc}); install it with "
            f"`pip install distributed` (it is pinned in requirements.txt)") from None
    return distributed


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _refused(address: str, reason: str) -> ConfigError:
    return ConfigError(f"--scheduler {address}: cannot connect to a Dask scheduler there "
                       f"({reason})")


def check_address(address: object) -> str:
    """``address`` if it looks like a Dask scheduler address (``tcp://host:port``,
    ``tls://host:port``, ``inproc://…``), else ConfigError (one line)."""
    text = str(address).strip() if address is not None else ""
    if not _ADDRESS.fullmatch(text):
        raise _refused(text or repr(address),
                       "not a scheduler address; expected tcp://host:port, e.g. "
                       "tcp://node01:8786")
    return text


def connect(address: str, timeout_s: float = 10) -> distributed.Client:
    """A client of the Dask scheduler at ``address``; ConfigError (one line) when the address
    is malformed, nothing answers within ``timeout_s`` seconds, or ``distributed`` is not
    installed. The caller closes it."""
    address = check_address(address)
    distributed = _distributed()
    try:
        return distributed.Client(address, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        if "timed out" in str(exc).lower():
            reason = f"no answer within {timeout_s:g} s"
            cause = _root_os_error(exc)
            if cause is not None:
                reason += f": {cause}"
        else:
            reason = _one_line(exc)
        raise _refused(address, reason) from None
    except Exception as exc:  # noqa: BLE001 (a bad TLS setup, a version clash, …: one line)
        raise _refused(address, f"{type(exc).__name__}: {_one_line(exc)}") from None


def _root_os_error(exc: BaseException) -> str | None:
    """The text of the innermost OS error behind ``exc`` ("Connection refused", "Name or
    service not known"), if any."""
    found, seen = None, set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc) is not OSError and isinstance(exc, OSError) and exc.strerror:
            found = exc.strerror
        exc = exc.__cause__ or exc.__context__
    return found


def task_key(run_id: str) -> str:
    """The Dask task key of a run (``oceanlab-run-<run id>``): resubmitting a run that is
    still on the cluster joins its task instead of starting a second one."""
    return f"{KEY_PREFIX}{run_id}"


# ------------------------------------------------------------------------ worker side

def _thread_budget() -> int | None:
    """Torch threads for a run in this Dask worker: its cores over its task threads."""
    try:
        from distributed import get_worker

        nthreads = get_worker().state.nthreads
    except Exception:  # noqa: BLE001 (not in a Dask worker, or an older distributed)
        return None
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, int(nthreads or 1)))


def not_visible_message(run_dir: str | os.PathLike) -> str:
    return (f"run folder {run_dir} is not visible from the Dask worker on "
            f"{socket.gethostname()}: put OCEANLAB_HOME (or --runs-dir) on a path shared by "
            f"all machines")


def execute_on_worker(run_dir: str) -> str:
    """The Dask task: execute the queued run in ``run_dir`` here (a worker's thread) with
    :func:`backend.jobs.run_queued` and return its final status. RunError when this machine
    does not see the run folder (the run store is not on a shared path)."""
    path = Path(run_dir)
    if not (path / RUN_FILE).is_file():
        raise RunError(not_visible_message(run_dir))
    budget = _thread_budget()
    if budget is not None:
        import torch

        torch.set_num_threads(budget)  # set in the thread that runs the run
    from backend import jobs

    if "executor" in inspect.signature(jobs.run_queued).parameters:
        run = jobs.run_queued(path, executor="dask")  # recorded in run.json by the worker
    else:
        run = jobs.run_queued(path)
    return final_status(run)


def final_status(run: Run) -> str:
    """The status recorded in run.json; a run left running without a live worker (its
    worker died, and Dask retried the task elsewhere) is recorded lost first."""
    status = str(run.info().get("status"))
    if status in ACTIVE:
        from backend.liveness import refresh

        status = str(refresh(run).get("status"))
    return status


# ------------------------------------------------------------------------ client side

def _gpus_requested(run: Run) -> int:
    """GPUs the run's config asks for: ``train.devices`` (1 when absent) with
    ``train.device: cuda``, else 0."""
    train = (run.info().get("config") or {}).get("train") or {}
    if not isinstance(train, dict) or train.get("device") != "cuda":
        return 0
    devices = train.get("devices")
    return devices if isinstance(devices, int) and not isinstance(devices, bool) \
        and devices >= 1 else 1


def _workers(client) -> dict[str, dict]:
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # an older distributed
        info = client.scheduler_info()
    return dict(info.get("workers") or {})


def _resources(client, run: Run) -> dict[str, float] | None:
    """``{"GPU": n}`` for a run asking for ``cuda`` (n: ``train.devices``, default 1) when
    some worker declares GPUs; None otherwise."""
    gpus = _gpus_requested(run)
    if not gpus:
        return None
    declared = max([float((w.get("resources") or {}).get(GPU_RESOURCE, 0) or 0)
                    for w in _workers(client).values()] or [0.0])
    if declared <= 0:
        return None
    if declared < gpus:
        raise ConfigError(f"run {run.id} asks for {gpus} GPUs (train.devices) but no Dask "
                          f"worker declares more than {declared:g} (--resources GPU=N)")
    return {GPU_RESOURCE: gpus}


def _check_visible(client, run_dir: Path) -> None:
    """RunError when workers are connected and none of them sees ``run_dir``; nothing to
    check on a cluster that has no worker yet (an adaptive one): the task checks again."""
    if not _workers(client):
        return
    try:
        seen = client.run(os.path.isfile, str(run_dir / RUN_FILE), on_error="return")
    except Exception:  # noqa: BLE001 (the workers could not be asked: leave it to the task)
        return
    if seen and not any(v is True for v in seen.values()):
        hosts = sorted({_host_of(w) for w in seen})
        raise RunError(f"run folder {run_dir} is not visible from the Dask workers on "
                       f"{', '.join(hosts)}: put OCEANLAB_HOME (or --runs-dir) on a path "
                       f"shared by all machines")


def _host_of(worker_address: str) -> str:
    host = worker_address.split("://", 1)[-1].rsplit(":", 1)[0]
    return host.strip("[]") or worker_address


def _submit(client, run_dir: Path, address: str):
    """Check the run folder, record ``executor.json`` and submit the task; its future."""
    distributed = _distributed()
    run_dir = Path(run_dir).resolve()
    if not (run_dir / RUN_FILE).is_file():
        raise RunError(f"{run_dir}: not a run folder (no {RUN_FILE})")
    run = Run(run_dir)
    _check_visible(client, run_dir)
    key = task_key(run.id)
    resources = _resources(client, run)
    atomic_write_json(run_dir / EXECUTOR_FILE, {
        "executor": "dask", "scheduler": address, "key": key, "submitted": now_iso(),
        **({"resources": resources} if resources else {})})
    future = client.submit(execute_on_worker, str(run_dir), key=key, pure=False,
                           resources=resources)
    distributed.fire_and_forget(future)  # runs on even when this client disconnects
    return future


def dask_submit(run_dir: Path, address: str) -> str:
    """Send the queued run in ``run_dir`` to the Dask cluster at ``address`` and return at
    once with the task key; the run goes on after this client disconnects. Follow it in the
    run store. ConfigError for an unreachable scheduler; RunError when ``run_dir`` is not a
    run folder or no connected worker sees it."""
    client = connect(address)
    try:
        return _submit(client, Path(run_dir), address).key
    finally:
        client.close()


def dask_run(run_dir: Path, address: str) -> str:
    """Like :func:`dask_submit`, then wait for the run's end; its final status (done, failed
    or cancelled). Interrupted while waiting (Ctrl-C), it asks the run to stop through its
    cancel request and re-raises. An error of the task itself (the run folder not visible
    on the worker, the worker killed again and again) is raised as one line."""
    client = connect(address)
    run = Run(Path(run_dir).resolve())
    try:
        future = _submit(client, Path(run_dir), address)
        try:
            return str(future.result())
        except (KeyboardInterrupt, SystemExit):
            _stop(run, "cancelled (the waiting client was interrupted)")
            raise
        except OceanLabError:
            raise
        except Exception as exc:  # noqa: BLE001 (KilledWorker, CancelledError, …)
            status = _status_or_none(run)
            if status is not None and status not in ACTIVE:
                return status  # the run recorded its end; the task's return was lost
            raise RunError(f"run {run.id}: the Dask task {future.key} failed "
                           f"({type(exc).__name__}: {_one_line(exc)})") from None
    finally:
        client.close()


def _stop(run: Run, reason: str) -> None:
    try:
        if run.info().get("status") in ACTIVE:
            run.request_cancel(reason)
    except (RunError, OSError):
        pass


def _status_or_none(run: Run) -> str | None:
    try:
        return final_status(run)
    except RunError:
        return None


def wait_for_end(run_dir: Path, timeout_s: float, every_s: float = 0.2) -> str | None:
    """Poll the run's status until it ends (done, failed, cancelled) or ``timeout_s`` passes;
    the final status, or None on timeout."""
    run = Run(Path(run_dir))
    deadline = time.monotonic() + timeout_s
    while True:
        status = _status_or_none(run)
        if status is not None and status not in ACTIVE:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(every_s)


__all__ = ["EXECUTORS", "EXECUTOR_FILE", "check_address", "connect", "dask_run",
                      "dask_submit", "execute_on_worker", "task_key", "wait_for_end"]
