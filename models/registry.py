"""One registry of models: a short name maps to a :class:`models.base.Mapper` subclass.

Adding a model is one file with a ``@register("name")`` class and one import line in
:func:`_load_builtin`; the CLI and the dashboard list :func:`available` without other edits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oceanlab_errors import ConfigError

if TYPE_CHECKING:
    from models.base import Mapper

_REGISTRY: dict[str, type[Mapper]] = {}


def register(name: str):
    """Class decorator registering a :class:`Mapper` under ``name``."""

    def deco(cls):
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_builtin() -> None:
    # One line per built-in model; importing the module runs its @register.
    import models.autoencoder  # noqa: F401
    import models.bicubic  # noqa: F401
    import models.climatology  # noqa: F401
    import models.contour  # noqa: F401
    import models.convlstm  # noqa: F401
    import models.eof  # noqa: F401
    import models.oi  # noqa: F401
    import models.okubo_weiss  # noqa: F401
    import models.persistence  # noqa: F401
    import models.pinn  # noqa: F401
    import models.unet  # noqa: F401


def available(task: str | None = None) -> list[str]:
    """Names of the registered models, optionally only those supporting ``task``."""
    _load_builtin()
    return sorted(n for n, c in _REGISTRY.items() if task is None or task in c.tasks)


def get(name: str) -> type[Mapper]:
    """The model class registered under ``name``; ConfigError listing the choices otherwise."""
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}"
        ) from None
