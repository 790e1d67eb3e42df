"""The backend's figures (issue 9): launch-to-first-progress latency, the data cache's
saving, and what reusing a finished run saves. Ratios are measured in this run.

    python bench/backend.py            # all three, on the built-in OSSE
    python bench/backend.py --repeat 5

1. **Latency.** From :func:`backend.jobs.submit` returning (what the dashboard's Launch
   calls) to the first progress update in the run's ``events.jsonl`` after ``queued``:
   with no worker running (a cold start: a new process) and with an idle slot worker
   (warm: what a second launch finds). Target: under 3 s on this CPU.
2. **Data cache.** Two jobs with the same data and preprocessing through one slot worker:
   the ``load_s`` of the second (a cache hit) against the first.
3. **Reuse.** Submitting a config identical to a finished run: the time to get the
   finished run back against the time the run took.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend import jobs, paths
from backend.config import build_config
from backend.store import RunStore


def first_progress_s(run, t_submitted: float, timeout: float = 120.0,
                     kinds: tuple = ()) -> float:
    """Seconds from ``t_submitted`` to the first event after ``queued`` (of ``kinds``)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        events = [e for e in run.events() if e.get("kind") != "queued"
                  and (not kinds or e.get("kind") in kinds)]
        if events:
            return float(events[0]["unix"]) - t_submitted
        time.sleep(0.01)
    raise TimeoutError(f"no progress from {run.id} in {timeout} s")


def stop_workers(store: RunStore) -> None:
    """Stop the idle slot workers of ``store`` and wait until their slots are free."""
    from backend import record

    for w in jobs.worker_status(store):
        try:
            os.kill(int(w["pid"]), 15)
        except ProcessLookupError:
            pass
    deadline = time.time() + 30
    while jobs.worker_status(store) and time.time() < deadline:
        time.sleep(0.05)
    assert not jobs.worker_status(store), "a slot worker did not stop"
    assert record  # (the slot locks are what worker_status reads)


def wait_done(run, timeout: float = 600.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = run.info()
        if info.get("status") not in ("queued", "running"):
            return info
        time.sleep(0.1)
    raise TimeoutError(run.id)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="oceanlab-bench-backend-"))
    builtin = paths.ensure_builtin_dataset()
    os.environ["OCEANLAB_HOME"] = str(home)
    os.environ["OCEANLAB_WORKER_IDLE_S"] = "20"
    store = RunStore(home / "runs")
    # a quick OI on the built-in OSSE: the latency is about the backend, not the model
    base = {"data.path": str(builtin), "model.max_obs": 1500}

    cold, warm, cold_stage, warm_stage = [], [], [], []
    for k in range(args.repeat):
        for kind in ("cold", "warm"):
            if kind == "cold":  # no worker: stop the one left idle by the last round
                stop_workers(store)
            config = build_config("interpolation", "oi",
                                  overrides={**base, "train.seed": 100 * k + (kind == "warm")})
            t = time.time()
            sub = jobs.submit(config, store, force=True)
            latency = first_progress_s(sub.run, t)
            (cold_stage if kind == "cold" else warm_stage).append(
                first_progress_s(sub.run, t, kinds=("stage",)))
            if kind == "cold":
                assert sub.started_workers == 1, "the cold round found a worker running"
            (cold if kind == "cold" else warm).append(latency)
            wait_done(sub.run)

    # data cache: a fresh worker, then two jobs on the same data and preprocessing
    stop_workers(store)
    loads = []
    for lt in (7.0, 9.0):
        config = build_config("interpolation", "oi",
                              overrides={**base, "model.lt_days": lt})
        sub = jobs.submit(config, store, force=True)
        info = wait_done(sub.run)
        loads.append((info["timings"]["load_s"], info["cache"]["data"]))

    # reuse
    config = build_config("interpolation", "oi", overrides={**base, "model.lt_days": 7.0})
    t = time.perf_counter()
    sub = jobs.submit(config, store)
    reuse_s = time.perf_counter() - t
    total_s = sub.run.info()["timings"]["total_s"]

    figures = {
        "latency_cold_s": round(statistics.median(cold), 3),
        "latency_warm_s": round(statistics.median(warm), 3),
        "first_stage_cold_s": round(statistics.median(cold_stage), 3),
        "first_stage_warm_s": round(statistics.median(warm_stage), 3),
        "latency_cold_all": [round(x, 3) for x in cold],
        "latency_warm_all": [round(x, 3) for x in warm],
        "load_first_s": loads[0][0], "load_second_s": loads[1][0],
        "cache": [loads[0][1], loads[1][1]],
        "load_saving_ratio": round(loads[1][0] / loads[0][0], 3) if loads[0][0] else None,
        "reused": sub.reused, "reuse_s": round(reuse_s, 3), "run_s": total_s,
        "reuse_ratio": round(reuse_s / total_s, 4) if total_s else None,
    }
    print(f"launch -> first progress, cold worker: {figures['latency_cold_s']:.2f} s "
          f"(median of {len(cold)}; target < 3 s)")
    print(f"launch -> first progress, warm worker: {figures['latency_warm_s']:.2f} s")
    print(f"launch -> the run's first stage (data loading), cold worker (after importing "
          f"torch and the models): {figures['first_stage_cold_s']:.2f} s; warm: "
          f"{figures['first_stage_warm_s']:.2f} s")
    print(f"data load, first job: {loads[0][0]:.3f} s ({loads[0][1]}); second job on the same "
          f"data: {loads[1][0]:.3f} s ({loads[1][1]}); ratio {figures['load_saving_ratio']}")
    print(f"reuse of a finished run: {reuse_s:.3f} s instead of {total_s:.1f} s "
          f"(ratio {figures['reuse_ratio']})")
    print(json.dumps(figures))
    stop_workers(store)


if __name__ == "__main__":
    main()
