"""The image transformation network of Johnson et al. (2016), pure torch.

Reflection padding, affine instance norm, five residual blocks and an
upsample-then-convolve decoder (no transposed convolutions, hence no
checkerboard artefacts). Built from :class:`TransformerNetConfig`, which is
stored beside the weights in every exported checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.models.registry import register_architecture


@dataclass(frozen=True)
class TransformerNetConfig:
    """Architecture of a :class:`TransformerNet`.

    Args:
        width: channel multiplier; 1.0 is the paper's 32-64-128 network, 0.5
            the light variant (16-32-64).
        num_residual_blocks: residual blocks at the bottleneck (paper: 5).
    """

    width: float = 1.0
    num_residual_blocks: int = 5

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise ValueError(f"model width must be > 0, got {self.width}")
        if self.num_residual_blocks < 0:
            raise ValueError(f"num_residual_blocks must be >= 0, got {self.num_residual_blocks}")

    def channels(self) -> tuple[int, int, int]:
        """Channel counts of the three resolution levels."""
        return tuple(max(1, round(c * self.width)) for c in (32, 64, 128))  # type: ignore[return-value]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TransformerNetConfig:
        """Build from a dict, rejecting unknown keys with a clear message."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown TransformerNet config keys {sorted(unknown)}; expected {sorted(known)}")
        return cls(**data)


# (module, input) -> (mean, var) of shape (B, C, 1, 1) to normalise with, or None for the input's own.
NormStatistics = Callable[[nn.Module, torch.Tensor], "tuple[torch.Tensor, torch.Tensor] | None"]
_NORM_STATISTICS: ContextVar[NormStatistics | None] = ContextVar("fastnst_norm_statistics", default=None)


@contextmanager
def norm_statistics(choose: NormStatistics) -> Iterator[None]:
    """Within this block, every :class:`InstanceNorm` asks ``choose(module, x)`` for its statistics.

    Scoped to the calling thread (a context variable): the network itself holds no state, so
    two threads can run one network at once, one tiling a huge image and one stylizing a video
    with smoothed statistics, without seeing each other's choices. Tiling uses it to give every
    tile the whole image's statistics, stable video to smooth them over frames.
    """
    token = _NORM_STATISTICS.set(choose)
    try:
        yield
    finally:
        _NORM_STATISTICS.reset(token)


class InstanceNorm(nn.InstanceNorm2d):
    """Affine instance norm whose statistics can be chosen per call (see :func:`norm_statistics`)."""

    def __init__(self, channels: int):
        super().__init__(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        choose = _NORM_STATISTICS.get()
        stats = choose(self, x) if choose is not None else None
        if stats is None:
            return super().forward(x)
        mean, var = stats
        # In float32, as autocast runs instance_norm, so tiles match the whole image in bf16/fp16 too.
        scale = self.weight.float().view(1, -1, 1, 1) * torch.rsqrt(var.float() + self.eps)
        y = (x.float() - mean.float()) * scale + self.bias.float().view(1, -1, 1, 1)
        return y.to(x.dtype)


def pad_to_multiple(x: torch.Tensor, multiple: int = 4) -> torch.Tensor:
    """Reflection-pad H and W on the bottom and right up to multiples of ``multiple``.

    Shape: (B, C, H, W) -> (B, C, H', W'); replicate padding where a side is too small to reflect.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if not (pad_h or pad_w):
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(h, w) > max(pad_h, pad_w) else "replicate")


class ConvLayer(nn.Sequential):
    """Reflection pad, convolution, then optional instance norm and ReLU."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int = 1, norm: bool = True, relu: bool = True,
        norm_layer: Callable[[int], nn.Module] | None = None,
    ):  # fmt: skip
        layers: list[nn.Module] = [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride)]
        if norm:
            layers.append((norm_layer or InstanceNorm)(c_out))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two 3x3 conv layers with instance norm and an identity shortcut."""

    def __init__(self, channels: int, norm_layer: Callable[[int], nn.Module] | None = None):
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3, norm_layer=norm_layer),
            ConvLayer(channels, channels, 3, relu=False, norm_layer=norm_layer),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleConv(nn.Module):
    """Nearest-neighbour 2x upsampling followed by a conv layer."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, norm_layer: Callable[[int], nn.Module] | None = None):
        super().__init__()
        self.conv = ConvLayer(c_in, c_out, kernel, norm_layer=norm_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


@register_architecture("johnson", TransformerNetConfig)
class TransformerNet(nn.Module):
    """Feed-forward stylization network.

    c9s1-32, d64, d128, R128 x5, u64, u32, c9s1-3 (channels scaled by
    ``config.width``). Any input size works: the input is reflection-padded to
    a multiple of 4 and the output cropped back.

    Args:
        config: architecture; defaults to the paper's network.

    Shape:
        - Input: (B, 3, H, W), float in [0, 1].
        - Output: (B, 3, H, W), float in [0, 1].
    """

    def __init__(
        self, config: TransformerNetConfig | None = None, norm_layer: Callable[[int], nn.Module] | None = None
    ):
        super().__init__()
        self.config = config or TransformerNetConfig()
        c1, c2, c3 = self.config.channels()
        norm = norm_layer or InstanceNorm
        self.encoder = nn.Sequential(
            ConvLayer(3, c1, 9, norm_layer=norm),
            ConvLayer(c1, c2, 3, stride=2, norm_layer=norm),
            ConvLayer(c2, c3, 3, stride=2, norm_layer=norm),
        )
        blocks = self.config.num_residual_blocks
        self.residuals = nn.Sequential(*(ResidualBlock(c3, norm) for _ in range(blocks)))
        self.decoder = nn.Sequential(
            UpsampleConv(c3, c2, norm_layer=norm),
            UpsampleConv(c2, c1, norm_layer=norm),
            ConvLayer(c1, 3, 9, norm=False, relu=False),
        )

    def forward_aligned(self, x: torch.Tensor) -> torch.Tensor:
        """Forward for H and W that are multiples of 4 (no padding; used by exports)."""
        return torch.sigmoid(self.decoder(self.residuals(self.encoder(x))))  # (B, 3, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]  # (B, 3, H, W)
        return self.forward_aligned(pad_to_multiple(x, 4))[..., :h, :w]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
