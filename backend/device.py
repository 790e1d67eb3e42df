"""Device choice: the GPU when there is one and the user did not ask otherwise."""

from __future__ import annotations

import torch

from oceanlab_errors import ConfigError


def choose_device(preference: str = "auto") -> torch.device:
    """``"auto"`` → cuda if available else cpu; ``"cuda"`` without a GPU is a ConfigError."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device 'cuda' requested but no CUDA GPU is visible "
                              f"(torch {torch.__version__}); use --device auto or cpu")
        return torch.device("cuda")
    if preference == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"unknown device {preference!r}; choose auto, cpu or cuda")


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
