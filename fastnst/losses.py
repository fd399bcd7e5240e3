"""Perceptual losses: content, Gram-matrix style and total variation.

Normalisation (the loss weights in ``configs/loss`` depend on it):

- ``gram_matrix(F)`` for features of shape (B, C, H, W) is ``F F^T / (C H W)``,
  so a Gram entry is a mean over positions, independent of the image size.
- ``content_loss`` is the mean squared error of the features, averaged over
  every element (B C H W).
- ``style_loss`` is the weighted sum over layers of the mean squared error
  between Gram matrices, averaged over B C C.
- ``tv_loss`` is the mean squared difference between neighbouring pixels,
  averaged over both directions, for images in [0, 1].
- ``color_loss`` is the mean squared error between the chroma (YUV U and V)
  of the output and of the photo, each averaged over ``block`` x ``block``
  pixel blocks and with its own mean removed (a palette shift is free).

Gram matrices are always computed in float32, also from bf16/fp16 features.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.models.vgg import VGGFeatures


def _loss_dtype(t: torch.Tensor) -> torch.dtype:
    """float64 stays float64 (for gradcheck); everything else is computed in float32."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix normalised by the number of elements per sample.

    Args:
        features: activations.

    Returns:
        ``F F^T / (C H W)`` in float32 (float64 stays float64).

    Shape:
        - Input: (B, C, H, W).
        - Output: (B, C, C).
    """
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w).to(_loss_dtype(features))
    with torch.autocast(device_type=features.device.type, enabled=False):
        return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between feature maps of the same shape."""
    dtype = _loss_dtype(features)
    return F.mse_loss(features.to(dtype), target.to(dtype))


def style_loss(
    features: Mapping[str, torch.Tensor],
    target_grams: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float] | None = None,
    per_image: bool = False,
) -> torch.Tensor:
    """Weighted sum over layers of the MSE between Gram matrices.

    Args:
        features: tap name to (B, C, H, W) activations of the stylized images.
        target_grams: tap name to (1, C, C) or (B, C, C) Gram matrices of the style.
        layer_weights: tap name to weight; 1.0 for every layer when omitted.
        per_image: one loss per image (B,) instead of their mean.

    Returns:
        Scalar loss, or (B,) with ``per_image``.
    """
    total = None
    for name, target in target_grams.items():
        gram = gram_matrix(features[name])
        term = (gram - target.to(gram.dtype).expand_as(gram)).pow(2).mean(dim=(1, 2))
        weight = 1.0 if layer_weights is None else layer_weights[name]
        total = weight * term if total is None else total + weight * term
    if total is None:
        raise ValueError("style_loss needs at least one layer")
    return total if per_image else total.mean()


def relative_style_loss(
    features: Mapping[str, torch.Tensor],
    photo_features: Mapping[str, torch.Tensor],
    target_grams: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """Each image's :func:`style_loss` over its photo's own, averaged: the evaluation's texture distance.

    A painting whose Grams are large (bright, busy) no longer outweighs a quiet one: every image
    counts by how much of the way from its photo to its painting it went.

    Args:
        photo_features: tap name to (B, C, H, W) activations of the unstylized photos.

    Returns:
        Scalar loss (1: no closer to the painting than the photo).
    """
    with torch.no_grad():
        own = style_loss(photo_features, target_grams, layer_weights, per_image=True)
    return (style_loss(features, target_grams, layer_weights, per_image=True) / own.clamp_min(1e-12)).mean()


def tv_loss(images: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference of vertical and horizontal neighbours.

    Shape:
        - Input: (B, C, H, W).
    """
    images = images.to(_loss_dtype(images))
    dh = images[..., 1:, :] - images[..., :-1, :]
    dw = images[..., :, 1:] - images[..., :, :-1]
    return 0.5 * (dh.pow(2).mean() + dw.pow(2).mean())


# RGB -> the U and V rows of YUV (BT.601): colour without brightness.
_CHROMA = ((-0.14713, -0.28886, 0.436), (0.615, -0.51499, -0.10001))


def color_loss(stylized: torch.Tensor, content: torch.Tensor, block: int = 16) -> torch.Tensor:
    """How far the output's colour layout is from the photo's, brushwork and palette aside.

    Each image's chroma (U, V) is averaged over ``block`` x ``block`` pixel blocks, which removes
    the strokes, and its mean over the picture is removed, so a global palette shift (the painting's
    colours) costs nothing while every region keeping its colour relative to the others is rewarded.

    Shape:
        - stylized, content: (B, 3, H, W) in [0, 1].
    """
    dtype = _loss_dtype(stylized)
    matrix = torch.tensor(_CHROMA, dtype=dtype, device=stylized.device)

    def field(images: torch.Tensor) -> torch.Tensor:
        chroma = torch.einsum("kc,bchw->bkhw", matrix, images.to(dtype))
        pooled = F.avg_pool2d(chroma, block, ceil_mode=True)
        return pooled - pooled.mean(dim=(2, 3), keepdim=True)

    return F.mse_loss(field(stylized), field(content).detach())


class PerceptualLoss(nn.Module):
    """Content + style + total variation loss against one style image.

    The style Grams are computed once, at construction, and kept as buffers.
    One VGG pass covers the stylized images and the content images together.

    Args:
        vgg: the frozen feature network; must tap every content and style layer.
        style_image: (1, 3, H, W) RGB in [0, 1]; None when every call gives its own ``style_grams``
            (a network that takes any painting).
        content_layers: taps for the content loss.
        style_layers: tap name to per-layer weight.
        content_weight, style_weight, tv_weight: weights of the three terms.
        color_weight: weight of :func:`color_loss` (0: off, the classic objective).
        style_relative: the style term is :func:`relative_style_loss` (each image against its own
            photo's distance to its painting) instead of the plain Gram distance.
    """

    def __init__(
        self,
        vgg: VGGFeatures,
        style_image: torch.Tensor | None,
        content_layers: list[str],
        style_layers: Mapping[str, float],
        content_weight: float = 1.0,
        style_weight: float = 5.0,
        tv_weight: float = 1e-6,
        color_weight: float = 0.0,
        style_relative: bool = False,
    ):
        super().__init__()
        self.vgg = vgg
        self.content_layers = list(content_layers)
        self.style_layers = dict(style_layers)
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight
        self.color_weight, self.style_relative = color_weight, style_relative
        if style_image is not None:
            with torch.no_grad():
                feats = vgg(style_image)
            for name in self.style_layers:
                self.register_buffer(f"gram_{name}", gram_matrix(feats[name]), persistent=False)

    def style_grams(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, f"gram_{name}") for name in self.style_layers}

    @torch.no_grad()
    def painting_grams(self, paintings: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Each painting's Grams at the style layers (B, C, C), and its features (for a style predictor)."""
        feats = self.vgg(paintings)
        return {name: gram_matrix(feats[name]) for name in self.style_layers}, feats

    def forward(
        self, stylized: torch.Tensor, content: torch.Tensor, style_grams: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """Return the weighted terms and their sum.

        Shape:
            - stylized, content: (B, 3, H, W) in [0, 1].
            - style_grams: tap name to (B, C, C), one painting per image (default: the style image's).

        Returns:
            dict with ``content_loss``, ``style_loss``, ``tv_loss``, ``color_loss`` when its
            weight is not 0 (each already weighted) and ``loss`` (their sum).
        """
        b = stylized.shape[0]
        feats = self.vgg(torch.cat([stylized, content]))
        with torch.no_grad():
            content_targets = {name: feats[name][b:] for name in self.content_layers}
        out_feats = {name: f[:b] for name, f in feats.items()}
        c_loss = sum(content_loss(out_feats[n], content_targets[n].detach()) for n in self.content_layers)
        grams = style_grams or self.style_grams()
        if self.style_relative:
            photo_feats = {name: f[b:] for name, f in feats.items()}
            s_loss = relative_style_loss(out_feats, photo_feats, grams, self.style_layers)
        else:
            s_loss = style_loss(out_feats, grams, self.style_layers)
        t_loss = tv_loss(stylized)
        terms = {
            "content_loss": self.content_weight * c_loss,
            "style_loss": self.style_weight * s_loss,
            "tv_loss": self.tv_weight * t_loss,
        }
        if self.color_weight:
            terms["color_loss"] = self.color_weight * color_loss(stylized, content)
        terms["loss"] = sum(terms.values())
        return terms
