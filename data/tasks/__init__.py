"""Tasks: what goes in, what must come out, how time is split and how it is scored.

The registry (:func:`get_task`, :func:`available_tasks`, :func:`register_task`) maps names
to task classes: ``interpolation`` (:mod:`data.tasks.interpolation`), ``forecast``
(:mod:`data.tasks.forecast`), ``downscaling`` (:mod:`data.tasks.downscaling`),
``segmentation`` (:mod:`data.tasks.segmentation`: eddy masks).
"""

from data.tasks.base import NetworkIO, Task, TaskContext, TaskParams, auto_periods
from data.tasks.interpolation import (
    InterpolationParams,
    InterpolationTask,
    build_interpolation_task,
)
from data.tasks.registry import available_tasks, get_task, register_task

__all__ = [
    "InterpolationParams",
    "InterpolationTask",
    "NetworkIO",
    "Task",
    "TaskContext",
    "TaskParams",
    "auto_periods",
    "available_tasks",
    "build_interpolation_task",
    "get_task",
    "register_task",
]
