"""Any painting, one network: a style-prediction network in the manner of Ghiasi et al. (2017).

The painting goes through the first layers of the VGG19 loss network (relu1_1 ... relu4_1); the
mean and standard deviation of every channel (1,920 numbers, the statistics that the Gram losses
are made of) go through a small MLP to a style *embedding* of ``embedding_dim`` numbers. Every
conditional instance norm of the transformer takes its (γ, β) as a linear map of the embedding:
``γ = [e, 1] @ W`` with ``W`` of shape (E + 1, C), which is :class:`ConditionalInstanceNorm` with
the embedding (plus a constant 1) as its style weights. So the transformer is the multi-style
network's, and an exported graph takes the embedding as an input: a new painting needs no export.

Named styles are stored embeddings (``style_embeddings``, names in the config); mixing styles
interpolates embeddings. Built from :class:`ArbitraryStyleNetConfig`, registered as
``johnson_arbitrary``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.models.multi_style import ConditionalInstanceNorm, ConditionedNet
from fastnst.models.registry import register_architecture
from fastnst.models.transformer_net import TransformerNetConfig
from fastnst.models.vgg import CAFFE_MEAN_BGR, build_features, layer_names, run_taps

STYLE_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
STYLE_TAP_CHANNELS = (64, 128, 256, 512)
PAINTING_SIZE = 256  # short side (px) a painting is resized to before the predictor sees it
# ... and at most this many pixels (a 4:3 painting's at that short side): a long scroll is read smaller
# rather than at 3x the cost.
PAINTING_PIXELS = 256 * 342


@dataclass(frozen=True)
class ArbitraryStyleNetConfig(TransformerNetConfig):
    """A :class:`TransformerNetConfig` plus the style predictor's sizes and the names of stored styles.

    Args:
        embedding_dim: numbers in a style embedding.
        hidden_dim: width of the predictor's hidden layer.
        styles: names of the stored embeddings (rows of ``style_embeddings``), may be empty.
        encoder_channel_scale: channel multiplier of the VGG layers the predictor reads (1.0: VGG19's;
            smaller only for tiny test networks on a random loss network of the same scale).
        predictor_skip: the predictor also reads the log statistics linearly, beside its MLP (a
            :class:`StylePredictor` ``skip`` layer, starting at zero; ``scripts/distill_predictor.py``
            learns it from fitted styles).
    """

    embedding_dim: int = 100
    hidden_dim: int = 512
    styles: tuple[str, ...] = ()
    encoder_channel_scale: float = 1.0  # the VGG's channels times this: 1.0, but for tiny test networks
    predictor_skip: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.embedding_dim < 1 or self.hidden_dim < 1:
            raise ValueError(f"embedding_dim and hidden_dim must be >= 1, got {self.embedding_dim}, {self.hidden_dim}")
        if len(set(self.styles)) != len(self.styles):
            raise ValueError(f"stored style names must be distinct, got {list(self.styles)}")
        object.__setattr__(self, "styles", tuple(self.styles))

    def to_dict(self) -> dict:
        return {**asdict(self), "styles": list(self.styles)}


def painting_statistics(features: dict[str, torch.Tensor]) -> torch.Tensor:
    """Channel means and standard deviations at :data:`STYLE_TAPS`: (B, 1920), in float32.

    Shape:
        - features: tap name to (B, C, H, W) VGG activations.
        - Output: (B, 2 * (64 + 128 + 256 + 512)).
    """
    parts = []
    for tap in STYLE_TAPS:
        f = features[tap].float()  # (B, C, H, W), in whatever memory format the encoder left it
        mean = f.mean((2, 3), keepdim=True)  # two passes: 6x faster than torch.var_mean on a CPU, as exact
        std = (f - mean).pow(2).mean((2, 3)).add(1e-5).sqrt()
        parts += [mean.flatten(1), std]
    return torch.cat(parts, dim=1)


class StyleEncoder(nn.Module):
    """VGG19 up to relu4_1 (Caffe weights, copied from the loss network) returning :data:`STYLE_TAPS`.

    Shape:
        - Input: (B, 3, H, W) RGB in [0, 1].
        - Output: dict of tap name to activations.
    """

    def __init__(self, channel_scale: float = 1.0):
        super().__init__()
        names = layer_names("vgg19")
        self.taps = {names.index(tap): tap for tap in STYLE_TAPS}
        self.features = build_features("vgg19", max(self.taps), channel_scale=channel_scale)
        self.register_buffer("mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = images.flip(1) * 255.0 - self.mean  # Caffe's BGR, mean removed
        # channels-last: oneDNN's convolutions and pooling run about 1.2x faster so on a CPU
        return run_taps(self.features, self.taps, x.contiguous(memory_format=torch.channels_last))


class StylePredictor(nn.Module):
    """Painting statistics (B, 1920) -> style embedding (B, E): log, layer norm, a two-layer MLP; with
    ``skip``, plus a linear map of the log statistics (``skip``, zero at the start)."""

    def __init__(self, embedding_dim: int, hidden_dim: int, channel_scale: float = 1.0, skip: bool = False):
        super().__init__()
        size = 2 * sum(max(1, round(c * channel_scale)) for c in STYLE_TAP_CHANNELS)
        self.mlp = nn.Sequential(
            nn.LayerNorm(size), nn.Linear(size, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, embedding_dim)
        )
        self.skip = None
        if skip:  # zeros, drawing no random numbers (the MLP's and the transformer's draws stay as they were)
            self.skip = nn.utils.skip_init(nn.Linear, size, embedding_dim)
            nn.init.zeros_(self.skip.weight)
            nn.init.zeros_(self.skip.bias)

    @staticmethod
    def log_statistics(statistics: torch.Tensor) -> torch.Tensor:
        """What the predictor reads: ``log(1 + statistics)``, (B, 1920) in float32."""
        return torch.log1p(statistics.float().clamp_min(0))

    def forward(self, statistics: torch.Tensor) -> torch.Tensor:
        logs = self.log_statistics(statistics)
        return self.mlp(logs) if self.skip is None else self.mlp(logs) + self.skip(logs)


@register_architecture("johnson_arbitrary", ArbitraryStyleNetConfig)
class ArbitraryStyleNet(ConditionedNet):
    """The Johnson network whose every instance norm's (γ, β) is a linear map of a style embedding.

    ``forward(x, embedding)`` stylizes; :meth:`embed` turns paintings into embeddings;
    :meth:`stored` gives a named style's.

    Shape:
        - x: (B, 3, H, W) in [0, 1]; embedding: (B, E) or (E,).
        - Output: (B, 3, H, W) in [0, 1].
    """

    def __init__(self, config: ArbitraryStyleNetConfig):
        dim = config.embedding_dim
        super().__init__(config, norm_layer=lambda c: ConditionalInstanceNorm(c, dim + 1))
        self.style_encoder = StyleEncoder(config.encoder_channel_scale)
        self.style_predictor = StylePredictor(
            dim, config.hidden_dim, config.encoder_channel_scale, skip=config.predictor_skip
        )
        self.register_buffer("style_embeddings", torch.zeros(len(config.styles), dim))

    @property
    def styles(self) -> tuple[str, ...]:
        return self.config.styles

    def learn_stored_styles(self) -> None:
        """Make the named styles' embeddings trainable (a parameter; same key in the state dict)."""
        if not isinstance(self.style_embeddings, nn.Parameter):
            stored = self._buffers.pop("style_embeddings")
            self.style_embeddings = nn.Parameter(stored.detach().clone())

    @property
    def condition_size(self) -> int:
        """Numbers a stylizing pass takes beside the photo (the embedding)."""
        return self.config.embedding_dim

    def conditional_norms(self) -> list[ConditionalInstanceNorm]:
        return [m for m in self.modules() if isinstance(m, ConditionalInstanceNorm)]

    def embed_statistics(self, statistics: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, E) from :func:`painting_statistics` (B, 1920)."""
        return self.style_predictor(statistics)

    @torch.no_grad()
    def embed(self, paintings: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, E) of paintings (B, 3, H, W) in [0, 1] (any size; see :func:`prepare_painting`)."""
        return self.embed_statistics(painting_statistics(self.style_encoder(paintings.float())))

    def stored(self, name: str) -> torch.Tensor:
        """A named style's stored embedding (E,).

        Raises:
            ValueError: no stored style of that name (the message lists them).
        """
        if name not in self.styles:
            known = ", ".join(self.styles) or "none"
            raise ValueError(f"unknown style {name!r}; this network stores {known} (or give a painting)")
        return self.style_embeddings[self.styles.index(name)]

    def condition(self, x: torch.Tensor, embedding: torch.Tensor | None) -> torch.Tensor:
        """The embedding and a constant 1, (B, E + 1): the norms' style weights, so (γ, β) = [e, 1] @ W."""
        if embedding is None:
            raise ValueError("an any-painting network needs a style embedding (a painting or a stored style)")
        embedding = embedding.to(x.device, torch.float32)
        embedding = embedding.expand(x.shape[0], -1) if embedding.dim() == 1 else embedding
        return torch.cat([embedding, torch.ones_like(embedding[:, :1])], dim=1)

    def load_vgg(self, vgg_features: nn.Sequential) -> None:
        """Copy the loss network's first layers (a VGG19 ``features``) into the style encoder."""
        own = self.style_encoder.features.state_dict()
        self.style_encoder.features.load_state_dict({k: v for k, v in vgg_features.state_dict().items() if k in own})

    @torch.no_grad()
    def init_from_multi_style(self, multi: nn.Module, embeddings: torch.Tensor, ridge: float = 1e-2) -> None:
        """Start from a multi-style network: its convolutions, and norm maps that send each of its
        paintings' ``embeddings`` (S, E) to that style's (γ, β), so the network paints those styles
        from step 0. Ridge regression about the styles' mean (γ, β), which any other painting gets.
        """
        own = self.state_dict()  # the convolutions; the norms' (S, C) rows are fitted below
        shared = {k: v for k, v in multi.state_dict().items() if k in own and own[k].shape == v.shape}
        self.load_state_dict({**own, **shared})
        a = torch.cat([embeddings, torch.ones(len(embeddings), 1)], dim=1).double()  # (S, E + 1)
        gram = a @ a.T
        gram += ridge * gram.diagonal().mean() * torch.eye(len(a), dtype=gram.dtype)
        for ours, theirs in zip(
            self.conditional_norms(), [m for m in multi.modules() if isinstance(m, ConditionalInstanceNorm)]
        ):
            for name in ("weight", "bias"):
                target = getattr(theirs, name).double()  # (S, C)
                base = torch.zeros_like(getattr(ours, name), dtype=torch.float64)
                base[-1] = target.mean(0)  # the constant row: the mean style
                fitted = base + a.T @ torch.linalg.solve(gram, target - a @ base)
                getattr(ours, name).copy_(fitted.float())


def prepare_painting(
    image: torch.Tensor, short_side: int = PAINTING_SIZE, max_pixels: int | None = PAINTING_PIXELS
) -> torch.Tensor:
    """A painting (1, 3, H, W) resized so its short side is ``short_side`` px, as the predictor learnt it,
    or smaller where that would exceed ``max_pixels`` (a panorama or a scroll; None: no limit).

    Shape:
        - Input: (1, 3, H, W) in [0, 1]; Output: (1, 3, H', W').
    """
    h, w = image.shape[-2:]
    scale = short_side / min(h, w)
    if max_pixels:
        scale = min(scale, math.sqrt(max_pixels / (h * w)))
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(image.float(), size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
