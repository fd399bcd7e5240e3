"""The image transformation network of Johnson et al. (2016), pure torch.

Reflection padding, affine instance norm, five residual blocks and an
upsample-then-convolve decoder (no transposed convolutions, hence no
checkerboard artefacts). Built from :class:`TransformerNetConfig`, which is
stored beside the weights in every exported checkpoint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


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


class InstanceNorm(nn.InstanceNorm2d):
    """Affine instance norm whose statistics can be fixed from outside.

    With ``stats = (mean, var)`` of shape (B, C, 1, 1) it normalises with those
    instead of the input's own; tiled inference uses this to give every tile
    the whole image's statistics. ``observer`` (if set) sees every input.
    ``smoother`` (if set) maps each input's own (mean, var) to the ones used,
    e.g. smoothed over the frames of a video.
    """

    def __init__(self, channels: int):
        super().__init__(channels, affine=True)
        self.stats: tuple[torch.Tensor, torch.Tensor] | None = None
        self.observer = None
        self.smoother = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observer is not None:
            self.observer(self, x)
        if self.stats is None and self.smoother is None:
            return super().forward(x)
        if self.stats is not None:
            mean, var = self.stats
        else:
            stats = x.float()
            mean, var = self.smoother(
                self, stats.mean((2, 3), keepdim=True), stats.var((2, 3), unbiased=False, keepdim=True)
            )
        # In float32, as autocast runs instance_norm, so tiles match the whole image in bf16/fp16 too.
        scale = self.weight.float().view(1, -1, 1, 1) * torch.rsqrt(var.float() + self.eps)
        y = (x.float() - mean.float()) * scale + self.bias.float().view(1, -1, 1, 1)
        return y.to(x.dtype)


class ConvLayer(nn.Sequential):
    """Reflection pad, convolution, then optional instance norm and ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, norm: bool = True, relu: bool = True):
        layers: list[nn.Module] = [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride)]
        if norm:
            layers.append(InstanceNorm(c_out))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two 3x3 conv layers with instance norm and an identity shortcut."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3),
            ConvLayer(channels, channels, 3, relu=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleConv(nn.Module):
    """Nearest-neighbour 2x upsampling followed by a conv layer."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3):
        super().__init__()
        self.conv = ConvLayer(c_in, c_out, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


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

    def __init__(self, config: TransformerNetConfig | None = None):
        super().__init__()
        self.config = config or TransformerNetConfig()
        c1, c2, c3 = self.config.channels()
        self.encoder = nn.Sequential(
            ConvLayer(3, c1, 9),
            ConvLayer(c1, c2, 3, stride=2),
            ConvLayer(c2, c3, 3, stride=2),
        )
        self.residuals = nn.Sequential(*(ResidualBlock(c3) for _ in range(self.config.num_residual_blocks)))
        self.decoder = nn.Sequential(
            UpsampleConv(c3, c2),
            UpsampleConv(c2, c1),
            ConvLayer(c1, 3, 9, norm=False, relu=False),
        )

    def forward_aligned(self, x: torch.Tensor) -> torch.Tensor:
        """Forward for H and W that are multiples of 4 (no padding; used by exports)."""
        return torch.sigmoid(self.decoder(self.residuals(self.encoder(x))))  # (B, 3, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]  # (B, 3, H, W)
        pad_h, pad_w = -h % 4, -w % 4
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(h, w) > 4 else "replicate")
        return self.forward_aligned(x)[..., :h, :w]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
