"""Compatibility alias: the error types live in :mod:`oceanlab_errors` (shared by every room)."""

from oceanlab_errors import ConfigError, DataError, OceanLabError, ResourceError, RunError

__all__ = ["ConfigError", "DataError", "OceanLabError", "ResourceError", "RunError"]
