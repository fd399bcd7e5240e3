"""The PyTorch backend: eager or compiled, fp32/bf16/fp16, CPU, CUDA or Apple MPS."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from fastnst.backends.base import Backend, Capabilities
from fastnst.models.transformer_net import NormStatistics, norm_statistics

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU."""
    mps = getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available on this machine; use --device cpu or auto")
    if device == "mps" and not mps:
        raise ValueError("--device mps: Apple MPS is not available on this machine; use --device cpu or auto")
    return torch.device(device)


def default_precision(device: torch.device) -> str:
    """fp16 on GPUs (1.1-1.25x over fp32 on an H100, where bf16 was slower at batch 1); fp32 on CPUs.

    On CPUs bf16 is 2x faster on some (AMD Zen 4/5) and 1.3x slower on others (an Intel Xeon with
    AVX512-BF16), so flags cannot decide it: ``--precision auto`` measures instead.
    """
    return "fp16" if device.type in ("cuda", "mps") else "fp32"


class TorchBackend(Backend):
    """Runs the network with PyTorch.

    Args:
        net: the network (put in eval mode, gradients off, moved to ``device``).
        device: a torch device.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast; the norms keep (γ, β) in float32).
        channels_last: run in channels_last memory format.
        compile: ``torch.compile`` the network (dynamic shapes).
    """

    name = "torch"
    capabilities = Capabilities(norm_statistics=True, precisions=tuple(PRECISIONS), devices=("cpu", "cuda", "mps"))

    def __init__(
        self, net: nn.Module, device: torch.device, precision: str = "fp32", channels_last: bool = False,
        compile: bool = False,
    ):  # fmt: skip
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        self.device, self.precision, self.channels_last = device, precision, bool(channels_last)
        self.net = net.eval().requires_grad_(False).to(device)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        self._forward = torch.compile(self.net, dynamic=True) if compile else self.net
        self.styles = getattr(self.net, "styles", None)

    def run(self, images: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        autocast = (
            contextlib.nullcontext()
            if self.precision == "fp32"
            else torch.autocast(self.device.type, dtype=PRECISIONS[self.precision])
        )
        with torch.inference_mode(), autocast:
            out = self._forward(images) if self.styles is None else self._forward(images, weights)
            return out.float()

    def norm_statistics(self, choose: NormStatistics):
        return norm_statistics(choose)
