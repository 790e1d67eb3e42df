"""One registry of tasks: a short name maps to a :class:`data.tasks.base.Task` subclass.

Adding a task is one file with a ``@register_task("name")`` class and one import line in
:func:`_load_builtin`; the config, the runner, the CLI and the dashboard list
:func:`available_tasks` without other edits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oceanlab_errors import ConfigError

if TYPE_CHECKING:
    from data.tasks.base import Task

_TASKS: dict[str, type[Task]] = {}


def register_task(name: str):
    """Class decorator registering a :class:`Task` under ``name``."""

    def deco(cls):
        cls.name = name
        _TASKS[name] = cls
        return cls

    return deco


def _load_builtin() -> None:
    # One line per built-in task; importing the module runs its @register_task.
    import data.tasks.downscaling  # noqa: F401
    import data.tasks.forecast  # noqa: F401
    import data.tasks.interpolation  # noqa: F401
    import data.tasks.segmentation  # noqa: F401


def available_tasks() -> list[str]:
    """Names of the registered tasks, interpolation first."""
    _load_builtin()
    return sorted(_TASKS, key=lambda n: (n != "interpolation", n))


def get_task(name: str) -> type[Task]:
    """The task class registered under ``name``; ConfigError listing the choices otherwise."""
    _load_builtin()
    try:
        return _TASKS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown task {name!r}; choose one of: "
                          f"{', '.join(available_tasks())}") from None
