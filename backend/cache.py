"""The data cache of a long-lived worker: loaded, normalised tasks kept between jobs.

A slot worker (:mod:`backend.jobs`) runs one job after another in the same process. The
second job on the same data should not open, decode and renormalise the file again: this
cache keeps the built :class:`data.tasks.Task` (its canonical fields, observations, masks
and splits, and the tensors a network cut from it on the device, which the trainer keeps
on the task) under a key of the data's fingerprint and everything that preprocesses it
(the config's ``data`` and ``task`` sections).

Bounded: at most :data:`MAX_ENTRIES` tasks, and none larger than a share of the run's memory
limit; least recently used first out. A task is read-only for the models (they never write
into it), which is what makes sharing it between runs safe.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

#: Tasks kept at most.
MAX_ENTRIES = 2
#: A task is kept only when its fields take at most this share of the memory limit.
MAX_SHARE = 0.25


def task_key(fingerprint: str, data: dict, task: dict) -> str:
    """The key of a built task: data fingerprint and preprocessing (path left out)."""
    data = {k: v for k, v in data.items() if k != "path"}
    return json.dumps({"fp": fingerprint, "data": data, "task": task}, sort_keys=True,
                      default=str)


def nbytes(task: Any) -> int:
    """Bytes of a task's gridded fields (truth, observations and whatever else it holds)."""
    total = 0
    for value in vars(task).values():
        size = getattr(value, "nbytes", None)
        if isinstance(size, int):
            total += size
    return total


class DataCache:
    """LRU of built tasks, shared by the jobs of one process (thread-safe)."""

    def __init__(self, max_entries: int = MAX_ENTRIES):
        self.max_entries = max_entries
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_build(self, key: str, build: Callable[[], Any],
                     limit_bytes: int | None = None) -> tuple[Any, bool]:
        """``(task, hit)``: the cached task of ``key``, or ``build()``'s, kept if it fits."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key], True
        task = build()
        size = nbytes(task)
        with self._lock:
            self.misses += 1
            if limit_bytes is None or size <= MAX_SHARE * limit_bytes:
                self._items[key] = task
                self._items.move_to_end(key)
                while len(self._items) > self.max_entries:
                    self._items.popitem(last=False)
        return task, False

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


#: The cache of this process (a slot worker keeps it between jobs).
CACHE = DataCache()
