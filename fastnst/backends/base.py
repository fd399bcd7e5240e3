"""What a backend is: something that runs a style network on a batch, and says what it supports.

Every way of running a network (PyTorch, ONNX Runtime, OpenVINO ...) implements :class:`Backend`.
The pipeline asks :func:`check_supported` before it starts, so an option a backend cannot honour
(tiling, stable video, a precision, a device) is refused in one place, in one line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from fastnst.models.transformer_net import NormStatistics


class BackendError(ValueError):
    """A backend cannot be used as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do.

    Args:
        norm_statistics: runs the network under :func:`fastnst.models.transformer_net.norm_statistics`
            (needed by ``--tile``, which shares whole-image statistics between tiles, and by
            ``--stable`` video, which smooths them over frames).
        precisions: precisions it runs in.
        devices: device types it runs on.
    """

    norm_statistics: bool
    precisions: tuple[str, ...]
    devices: tuple[str, ...]


class Backend(ABC):
    """Runs one network. ``run`` takes and returns float32 (B, 3, H, W) in [0, 1] on ``device``."""

    name: str = "?"
    capabilities: Capabilities
    device: torch.device
    precision: str

    styles: tuple[str, ...] | None = None  # a multi-style network's styles (None: one style)

    @abstractmethod
    def run(self, images: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Stylize a batch (any H and W); ``weights`` mixes a multi-style network's styles.

        Shape:
            - images: (B, 3, H, W) float32 on ``device``.
            - weights: (B, S) style weights, for a multi-style network only.
            - Output: (B, 3, H, W) float32 on ``device``.
        """

    def norm_statistics(self, choose: NormStatistics) -> AbstractContextManager:
        """A scope in which the network normalises with ``choose``'s statistics (this thread only)."""
        raise BackendError(f"the {self.name} backend cannot share instance-norm statistics; use --backend torch")

    def describe(self) -> str:
        """E.g. ``torch bf16`` (for summary lines)."""
        return f"{self.name} {self.precision}"


def check_supported(
    name: str, capabilities: Capabilities, *, tile: bool = False, stable: bool = False,
    precision: str | None = None, device: str | None = None,
) -> None:  # fmt: skip
    """Refuse, in one line, an option ``name`` cannot honour.

    Raises:
        BackendError: naming the option, why, and the way out.
    """
    if tile and not capabilities.norm_statistics:
        raise BackendError(
            f"--tile needs the torch backend: {name} cannot give every tile the whole image's "
            "instance-norm statistics; drop --backend or use --backend torch"
        )
    if stable and not capabilities.norm_statistics:
        raise BackendError(
            f"--stable needs the torch backend: {name} cannot smooth the network's instance-norm "
            "statistics over frames; drop --backend or use --backend torch"
        )
    if precision not in (None, "auto") and precision not in capabilities.precisions:
        raise BackendError(
            f"the {name} backend runs in {'/'.join(capabilities.precisions)}; "
            f"drop --precision {precision} or use --backend torch"
        )
    if device not in (None, "auto") and device not in capabilities.devices:
        raise BackendError(
            f"the {name} backend runs on {'/'.join(capabilities.devices)}; drop --device {device} or use --backend torch"
        )
