"""Exception types whose messages are written for the user, shared by every room.

Every message names the file (or the setting) and the problem in one line. The CLI prints
``str(exc)`` and exits 2; dashboard pages show it with ``st.error``.
"""

from __future__ import annotations


class OceanLabError(Exception):
    """Base class of every error a user can cause with bad input."""


class DataError(OceanLabError):
    """A data file cannot be used: missing, unreadable, wrong shape or content."""


class ConfigError(OceanLabError):
    """An experiment configuration is invalid (the message lists the valid choices)."""


class RunError(OceanLabError):
    """A run cannot be found, read or written."""


class ResourceError(OceanLabError):
    """A run would need more memory (or another resource) than the configured limit."""
