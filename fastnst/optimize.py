"""The classic optimisation method of Gatys et al. (2016), as a tool and as the quality reference.

The image itself is optimised (L-BFGS by default, Adam as an option),
starting from the content photo: content at ``relu4_2``, style Grams at
``relu1_1`` ... ``relu5_1``, plus total variation. Same VGG sources and loss
normalisation as training (see :mod:`fastnst.losses`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from fastnst.losses import content_loss, gram_matrix, style_loss, tv_loss
from fastnst.models.vgg import VGGFeatures

GATYS_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
GATYS_CONTENT_LAYERS = ("relu4_2",)


@dataclass
class GatysConfig:
    """Settings of :func:`gatys`.

    The classic objective: content at ``relu4_2``, every style layer weighted
    equally on the Gram MSE (``relu4_1``, the largest, carries the most), the same
    as the ``loss=gatys`` training preset. Weighting layers to even out their raw
    magnitudes instead lets ``relu5_1`` dominate once the others are matched,
    which taught networks to stamp motifs.
    """

    steps: int = 500
    optimizer: str = "lbfgs"
    lr: float = 0.02  # Adam only
    content_weight: float = 1.0
    style_weight: float = 8.5
    tv_weight: float = 1.0e3
    style_layers: dict[str, float] = field(default_factory=lambda: dict.fromkeys(GATYS_STYLE_LAYERS, 1.0))
    content_layers: tuple[str, ...] = GATYS_CONTENT_LAYERS
    coarse_to_fine: bool = False


def gatys(
    content: torch.Tensor,
    style: torch.Tensor,
    vgg: VGGFeatures,
    config: GatysConfig | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> torch.Tensor:
    """Optimise an image to carry ``content``'s structure in ``style``'s texture.

    Args:
        content: photo, (1, 3, H, W) in [0, 1].
        style: painting, (1, 3, H', W') in [0, 1] (any size).
        vgg: feature network tapping every content and style layer.
        config: steps, optimiser and weights.
        progress: called as ``progress(step, loss)`` after every step.

    Returns:
        (1, 3, H, W) in [0, 1].
    """
    config = config or GatysConfig()
    if config.coarse_to_fine and min(content.shape[-2:]) >= 128:
        half = F.interpolate(content, scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)
        coarse = GatysConfig(**{**config.__dict__, "coarse_to_fine": False, "steps": config.steps // 2})
        start = F.interpolate(gatys(half, style, vgg, coarse, progress), size=content.shape[-2:], mode="bilinear")
        fine = GatysConfig(**{**config.__dict__, "coarse_to_fine": False, "steps": config.steps - coarse.steps})
        return _optimise(content, style, vgg, fine, start, progress, offset=coarse.steps)
    return _optimise(content, style, vgg, config, content, progress)


def _optimise(content, style, vgg, config, start, progress, offset: int = 0) -> torch.Tensor:
    with torch.no_grad():
        style_feats = vgg(style)
        grams = {name: gram_matrix(style_feats[name]) for name in config.style_layers}
        content_feats = vgg(content)
        targets = {name: content_feats[name] for name in config.content_layers}
    image = start.detach().clone().clamp(0, 1).requires_grad_(True)

    def loss_fn() -> torch.Tensor:
        feats = vgg(image)
        c = sum(content_loss(feats[n], targets[n]) for n in config.content_layers)
        s = style_loss(feats, grams, config.style_layers)
        return config.content_weight * c + config.style_weight * s + config.tv_weight * tv_loss(image)

    if config.optimizer == "lbfgs":
        # One call runs every iteration, so L-BFGS keeps a consistent curvature history;
        # the image is clamped to [0, 1] at the end.
        optimizer = torch.optim.LBFGS(
            [image], max_iter=config.steps, max_eval=config.steps * 2, history_size=50,
            tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe",
        )  # fmt: skip

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = loss_fn()
            loss.backward()
            if progress:
                progress(offset + min(config.steps, optimizer.state[image].get("n_iter", 0) + 1), loss.item())
            return loss

        optimizer.step(closure)
    elif config.optimizer == "adam":
        optimizer = torch.optim.Adam([image], lr=config.lr)
        for step in range(config.steps):
            optimizer.zero_grad()
            loss = loss_fn()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                image.clamp_(0, 1)
            if progress:
                progress(offset + step + 1, loss.item())
    else:
        raise ValueError(f"optimizer {config.optimizer!r}: use lbfgs or adam")
    return image.detach().clamp(0, 1)
