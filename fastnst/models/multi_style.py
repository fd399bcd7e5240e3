"""Many styles in one network: conditional instance norm (Dumoulin, Shlens and Kudlur, 2017).

The Johnson network with every instance norm's scale and shift (γ, β) kept per style; all the
convolutions are shared. A style costs 2 x (sum of the norm channels) numbers, a few thousand;
styles mix by interpolating their (γ, β). Built from :class:`MultiStyleNetConfig` (the style names
travel with the weights) and registered as ``johnson_multi``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.models.registry import register_architecture
from fastnst.models.transformer_net import (
    _NORM_STATISTICS,
    InstanceNorm,
    TransformerNet,
    TransformerNetConfig,
    pad_to_multiple,
)

_STYLE_WEIGHTS: ContextVar[torch.Tensor | None] = ContextVar("fastnst_style_weights", default=None)


@dataclass(frozen=True)
class MultiStyleNetConfig(TransformerNetConfig):
    """A :class:`TransformerNetConfig` plus the names of its styles (in the order of their (γ, β) rows)."""

    styles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.styles or len(set(self.styles)) != len(self.styles):
            raise ValueError(f"a multi-style network needs distinct style names, got {list(self.styles)}")
        object.__setattr__(self, "styles", tuple(self.styles))

    def to_dict(self) -> dict:
        return {**asdict(self), "styles": list(self.styles)}


@contextmanager
def style_weights(weights: torch.Tensor) -> Iterator[None]:
    """Within this block (this thread only), conditional norms mix their styles by ``weights`` (B, S)."""
    token = _STYLE_WEIGHTS.set(weights)
    try:
        yield
    finally:
        _STYLE_WEIGHTS.reset(token)


class ConditionalInstanceNorm(InstanceNorm):
    """Instance norm with one (γ, β) row per style; a batch's rows are mixed by its style weights."""

    def __init__(self, channels: int, num_styles: int):
        super().__init__(channels)
        self.weight = nn.Parameter(torch.ones(num_styles, channels))
        self.bias = nn.Parameter(torch.zeros(num_styles, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = _STYLE_WEIGHTS.get()
        if weights is None:
            raise RuntimeError("a multi-style network runs with style weights (MultiStyleNet.forward(x, weights))")
        with torch.autocast(x.device.type, enabled=False):  # (γ, β) in float32; x stays in autocast's dtype
            return self._normalize(x, weights.to(torch.float32))

    def _normalize(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        gamma, beta = weights @ self.weight.float(), weights @ self.bias.float()  # (B, C) each
        choose = _NORM_STATISTICS.get()
        stats = choose(self, x) if choose is not None else None
        if stats is None:
            # Like the one-style norm under autocast, x is normalised in its own dtype (bf16 in bf16):
            # casting it to float32 and back made the network 1.2x slower than a one-style one there.
            b, c, h, w = x.shape
            if torch.onnx.is_in_onnx_export():
                # (γ, β) broadcast over the normalised planes: once a style is fixed they are constants,
                # and OpenVINO folds them into the norm as it does a one-style network's (fold_styles_after).
                y = F.instance_norm(x, eps=self.eps)
                return y * gamma.reshape(-1, c, 1, 1).to(y.dtype) + beta.reshape(-1, c, 1, 1).to(y.dtype)
            if b == 1:
                return F.instance_norm(x, weight=gamma[0], bias=beta[0], eps=self.eps)
            # Instance norm treats every (sample, channel) plane alike: fold the batch into the channels so
            # each sample's own (γ, β) go through the fused affine kernel (as fast as the one-style network).
            y = F.instance_norm(
                x.reshape(1, b * c, h, w), weight=gamma.reshape(-1), bias=beta.reshape(-1), eps=self.eps
            )
            return y.reshape(b, c, h, w)
        mean, var = stats  # in float32, so that tiles match the whole image in bf16/fp16 too
        y = (x.float() - mean.float()) * torch.rsqrt(var.float() + self.eps)
        return (y * gamma.view(x.shape[0], -1, 1, 1) + beta.view(x.shape[0], -1, 1, 1)).to(x.dtype)


class ConditionedNet(TransformerNet):
    """A Johnson network whose conditional norms take, beside the photo, a second input that
    :meth:`condition` turns into their (B, S) style weights (the multi-style and any-painting networks).

    Shape:
        - x: (B, 3, H, W) in [0, 1]; the second input: (B, N) or (N,).
        - Output: (B, 3, H, W) in [0, 1].
    """

    def condition(self, x: torch.Tensor, given: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def forward_aligned(self, x: torch.Tensor, given: torch.Tensor | None = None) -> torch.Tensor:
        with style_weights(self.condition(x, given)):
            return super().forward_aligned(x)

    def forward(self, x: torch.Tensor, given: torch.Tensor | None = None) -> torch.Tensor:
        h, w = x.shape[-2:]  # (B, 3, H, W)
        return self.forward_aligned(pad_to_multiple(x, 4), given)[..., :h, :w]


@register_architecture("johnson_multi", MultiStyleNetConfig)
class MultiStyleNet(ConditionedNet):
    """The Johnson network with conditional instance norm: one network, many styles.

    Shape:
        - x: (B, 3, H, W) in [0, 1]; weights: (B, S) or (S,) style weights (rows sum to 1).
        - Output: (B, 3, H, W) in [0, 1].
    """

    def __init__(self, config: MultiStyleNetConfig):
        super().__init__(config, norm_layer=lambda c: ConditionalInstanceNorm(c, len(config.styles)))

    @property
    def styles(self) -> tuple[str, ...]:
        return self.config.styles

    @property
    def condition_size(self) -> int:
        """Numbers a stylizing pass takes beside the photo (one weight per style)."""
        return len(self.config.styles)

    def condition(self, x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        """The (B, S) style weights the norms mix their rows by."""
        if weights is None:
            raise ValueError(f"a multi-style network needs style weights for its styles {list(self.styles)}")
        weights = weights.to(x.device, torch.float32)
        return weights.expand(x.shape[0], -1) if weights.dim() == 1 else weights


def mix_weights(styles: tuple[str, ...], style: str | dict[str, float]) -> torch.Tensor:
    """Style weights (S,) for a name, a ``{"name": weight}`` mix or a ``"a=0.7,b=0.3"`` string, normalised.

    Raises:
        ValueError: an unknown name, a negative weight, or weights summing to 0 (one line).
    """
    if isinstance(style, str):
        if "=" in style:
            parts = {}
            for item in style.split(","):
                name, _, value = item.partition("=")
                try:
                    parts[name.strip()] = float(value)
                except ValueError:
                    raise ValueError(
                        f"style mix {style!r}: {value!r} is not a number; write name=0.7,other=0.3"
                    ) from None
            style = parts
        else:
            style = {style: 1.0}
    unknown = [name for name in style if name not in styles]
    if unknown:
        raise ValueError(f"unknown style {unknown[0]!r}; this network has {', '.join(styles)}")
    total = sum(style.values())
    if any(w < 0 for w in style.values()) or total <= 0:
        raise ValueError(f"style weights must be >= 0 and not all 0, got {style}")
    return torch.tensor([style.get(name, 0.0) / total for name in styles], dtype=torch.float32)
