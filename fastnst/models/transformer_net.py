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
        input_skip: add a learnt share of the photo to the output (before the sigmoid, per RGB
            channel, starting at 0), so keeping the photo's structure costs the network nothing
            and its layers spend themselves on the strokes.
    """

    width: float = 1.0
    num_residual_blocks: int = 5
    input_skip: bool = False

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


# The input skip's share is this times its parameter: Adam moves a parameter about one learning rate
# a step whatever its gradient, so without a gain the share would need thousands of steps to open.
SKIP_GATE_GAIN = 25.0

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
        if self.config.input_skip:  # at 0 the network draws what one without the skip draws
            self.skip_gate = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward_aligned(self, x: torch.Tensor) -> torch.Tensor:
        """Forward for H and W that are multiples of 4 (no padding; used by exports)."""
        logits = self.decoder(self.residuals(self.encoder(x)))  # (B, 3, H, W)
        if self.config.input_skip:
            photo = x.clamp(1e-3, 1 - 1e-3)
            gate = SKIP_GATE_GAIN * self.skip_gate
            logits = logits + gate * (torch.log(photo) - torch.log(1 - photo))  # the photo's logit
        return torch.sigmoid(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]  # (B, 3, H, W)
        return self.forward_aligned(pad_to_multiple(x, 4))[..., :h, :w]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def conv_levels(self) -> list[tuple[str, int | None, int | None]]:
        """Every convolution as (state-dict prefix, input level, output level): level 1-3 is the
        32/64/128-channel stage (times the width), None the RGB image. Its instance norm, when it
        has one, is the next index of the same layer (``encoder.0.1`` -> ``encoder.0.2``)."""
        layout: list[tuple[str, int | None, int | None]] = [
            ("encoder.0.1", None, 1), ("encoder.1.1", 1, 2), ("encoder.2.1", 2, 3),
        ]  # fmt: skip
        for i in range(len(self.residuals)):
            layout += [(f"residuals.{i}.body.0.1", 3, 3), (f"residuals.{i}.body.1.1", 3, 3)]
        return [*layout, ("decoder.0.conv.1", 3, 2), ("decoder.1.conv.1", 2, 1), ("decoder.2.1", 1, None)]

    def load_smaller(self, state: dict[str, torch.Tensor], seed: int = 0) -> tuple[int, float]:
        """Start from a smaller network of this architecture (fewer residual blocks, a smaller width,
        no input skip, or any of these) so that this one draws exactly what ``state``'s did until
        training moves it.

        Each block ``state`` lacks starts as the identity (its last instance norm's scale and shift
        at 0: the zero-initialised residual of Goyal et al. 2017). Each channel ``state`` lacks copies
        one of its channels of the same stage (Net2WiderNet, Chen et al. 2016): same incoming
        weights, so the same instance-norm statistics, and the copies share the original's outgoing
        weights in random fractions that sum to 1, so the sum is unchanged but their gradients
        differ and the copies part ways. Returns (blocks added, width ratio).

        Raises:
            ValueError: ``state`` is not a smaller network of this architecture.
        """
        have = len({k.split(".")[1] for k in state if k.startswith("residuals.")})  # its residual blocks
        ours = self.state_dict()
        old = [state.get(f"{prefix}.weight") for prefix, *_ in self.conv_levels()[:3]]
        problems = [k for k in ours if k not in state and not k.startswith("residuals.") and k != "skip_gate"]
        problems += [k for k in state if k not in ours]
        if problems or have > len(self.residuals) or any(w is None for w in old):
            raise ValueError(
                f"not a smaller network of this architecture ({have} residual blocks for "
                f"{len(self.residuals)}; differing tensors: {problems[:3]})"
            )
        small = [w.shape[0] for w in old]  # channels of stages 1-3
        big = list(self.config.channels())
        if any(s > b for s, b in zip(small, big)):
            raise ValueError(f"not a smaller network of this architecture: channels {small} for {big}")
        gen = torch.Generator().manual_seed(seed)
        source, share = {None: torch.arange(3)}, {None: torch.ones(3)}
        for level, (s, b) in enumerate(zip(small, big), start=1):
            pick = torch.cat([torch.arange(s), torch.randint(0, s, (b - s,), generator=gen)])
            fraction = 1 + 0.1 * torch.rand(b, generator=gen)  # random shares of each original's weights
            total = torch.zeros(s).index_add_(0, pick, fraction)
            source[level], share[level] = pick, fraction / total[pick]
        grown = dict(ours)
        for prefix, level_in, level_out in self.conv_levels():
            if f"{prefix}.weight" not in state:
                continue  # an added block: its own initialisation, silenced below
            rows, cols = source[level_out], source[level_in]
            weight = state[f"{prefix}.weight"].float()[rows][:, cols] * share[level_in].view(1, -1, 1, 1)
            grown[f"{prefix}.weight"] = weight
            grown[f"{prefix}.bias"] = state[f"{prefix}.bias"].float()[rows]
            head, index = prefix.rsplit(".", 1)
            norm = f"{head}.{int(index) + 1}"  # the conv's instance norm, where it has one
            for name in ("weight", "bias"):
                if f"{norm}.{name}" in state:
                    grown[f"{norm}.{name}"] = state[f"{norm}.{name}"].float()[rows]
        self.load_state_dict(grown)
        with torch.no_grad():
            for block in list(self.residuals)[have:]:
                last_norm = block.body[1][2]
                last_norm.weight.zero_()
                last_norm.bias.zero_()
        return len(self.residuals) - have, big[2] / small[2]
