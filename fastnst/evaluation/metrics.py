"""How close a stylized image is to the painting and to the photo: the classic VGG distances,
colour kept and SSIM (:class:`Judge`). Evaluation, the int8 check and the benchmark share them.

Measure and show stylization quality: the classic per-layer distances, colour, timing, contact sheets.

Distances are relative, so they read the same for any photo and any painting:

- style, per layer (``relu1_1`` ... ``relu5_1``): the MSE between the Gram matrices (F Fᵀ / CHW,
  as in :mod:`fastnst.losses`) of the image and of the painting, divided by the same distance of
  the unstylized photo (1: no closer to the painting than the photo; 0: the painting's texture).
  ``style`` is the sum over layers over the photo's sum (relu4_1, the largest, dominates it).
- content: MSE of the ``relu4_2`` features against the photo's, over the photo's feature energy.
- colour kept: Pearson correlation between the image's and the photo's CIELAB a* and b* fields
  after a Gaussian blur (sigma 4 px) that removes texture, averaged over a* and b*: 1 when every
  region keeps its colour relative to the others, 0 for one wash (a global palette shift costs nothing).
- SSIM between the luminance of the output and of the photo (torchmetrics).
- objective: the classic loss itself (content + style:content x style + TV, at the Gatys
  settings of the run, 8.5 unless told), over the photo's own: what Gatys minimises from the
  photo, so the network and Gatys are compared on the very number one of them optimises (lower
  is better; 1 is the photo). A network that paints less well than Gatys scores higher here,
  wherever on the style/content curve it sits.
- Gatys steps matched: how many L-BFGS steps Gatys needs, from the photo, to reach the network's
  objective on that photo (Johnson et al. 2016 compare their networks the same way): what one
  forward pass is worth in optimisation, read from Gatys' objective after every step.

Gatys results take minutes per photo on a CPU, so they are cached (see
:func:`cached_gatys`): scoring a second network on the same photos reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from fastnst.losses import content_loss, gram_matrix, style_loss, tv_loss
from fastnst.models.vgg import VGGFeatures
from fastnst.optimize import GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS, GatysConfig
from fastnst.stylize.color import rgb_to_yuv


@dataclass
class Scores:
    """Quality numbers of one stylized image (see the module docstring)."""

    style_distance: float
    content_distance: float
    color_kept: float
    ssim: float
    ms: float
    layers: dict[str, float] = field(default_factory=dict)
    objective: float = float("nan")


def _srgb_to_lab(images: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] to CIELAB (D65). Shape: (B, 3, H, W) -> (B, 3, H, W) as L*, a*, b*."""
    linear = torch.where(images > 0.04045, ((images + 0.055) / 1.055) ** 2.4, images / 12.92)
    matrix = images.new_tensor([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = torch.einsum("ij,bjhw->bihw", matrix, linear) / images.new_tensor([0.9505, 1.0, 1.089]).view(1, 3, 1, 1)
    f = torch.where(xyz > (6 / 29) ** 3, xyz.clamp_min(1e-12) ** (1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def _blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    padded = torch.nn.functional.pad(images, (radius, radius, radius, radius), mode="reflect")
    out = torch.nn.functional.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return torch.nn.functional.conv2d(out, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def color_kept(image: torch.Tensor, photo: torch.Tensor, sigma: float = 4.0) -> float:
    """Mean Pearson correlation of the blurred a* and b* fields of ``image`` and ``photo`` (1: colours kept).

    Shape: image, photo (1, 3, H, W) in [0, 1].
    """
    a, b = (_blur(_srgb_to_lab(t.float().clamp(0, 1))[:, 1:], sigma) for t in (image, photo))
    scores = []
    for channel in range(2):
        x, y = a[:, channel].flatten(), b[:, channel].flatten()
        x, y = x - x.mean(), y - y.mean()
        denominator = (x.norm() * y.norm()).clamp_min(1e-12)
        scores.append(float((x @ y) / denominator))
    return sum(scores) / len(scores)


class Judge:
    """Scores images against one painting with a fixed VGG (the classic layers, weighted equally)."""

    def __init__(self, style: torch.Tensor, vgg: VGGFeatures | None = None, objective: GatysConfig | None = None):
        self.vgg = vgg or VGGFeatures([*GATYS_STYLE_LAYERS, *GATYS_CONTENT_LAYERS])
        self.objective = objective or GatysConfig()  # the weights the objective column is taken at
        with torch.no_grad():
            feats = self.vgg(style)
        self.grams = {name: gram_matrix(feats[name]) for name in GATYS_STYLE_LAYERS}
        self._photo: tuple[torch.Tensor, dict, dict, float] | None = None

    def _photo_terms(self, photo: torch.Tensor) -> tuple[dict, dict, float]:
        """The photo's features, its own Gram distances to the painting and its objective (cached per photo)."""
        if self._photo is None or self._photo[0] is not photo:
            feats = self.vgg(photo)
            distances = {n: float(style_loss({n: feats[n]}, {n: self.grams[n]})) for n in GATYS_STYLE_LAYERS}
            self._photo = (photo, feats, distances, self._objective(photo, distances, 0.0))
        return self._photo[1:]

    def _objective(self, image: torch.Tensor, distances: dict[str, float], content_raw: float) -> float:
        o = self.objective
        style = sum(o.style_layers.get(n, 0.0) * d for n, d in distances.items())
        return o.content_weight * content_raw + o.style_weight * style + o.tv_weight * float(tv_loss(image))

    @torch.no_grad()
    def score(self, image: torch.Tensor, photo: torch.Tensor, ms: float) -> Scores:
        """Shape: image and photo (1, 3, H, W) in [0, 1]."""
        from torchmetrics.functional.image import structural_similarity_index_measure

        photo_feats, photo_distances, photo_objective = self._photo_terms(photo)
        feats = self.vgg(image)
        distances = {n: float(style_loss({n: feats[n]}, {n: self.grams[n]})) for n in GATYS_STYLE_LAYERS}
        layers = {n: distances[n] / max(photo_distances[n], 1e-30) for n in GATYS_STYLE_LAYERS}
        style = sum(distances.values()) / max(sum(photo_distances.values()), 1e-30)
        raw = {n: float(content_loss(feats[n], photo_feats[n])) for n in GATYS_CONTENT_LAYERS}
        content = sum(raw[n] / max(float(photo_feats[n].float().pow(2).mean()), 1e-12) for n in GATYS_CONTENT_LAYERS)
        objective = self._objective(image, distances, sum(raw.values())) / max(photo_objective, 1e-30)
        luma = rgb_to_yuv(image)[:, :1], rgb_to_yuv(photo)[:, :1]
        ssim = structural_similarity_index_measure(luma[0], luma[1], data_range=1.0)
        return Scores(style, content, color_kept(image, photo), float(ssim), ms, layers, objective)


@torch.no_grad()
def precision_change(triples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                     vgg: VGGFeatures | None = None) -> tuple[float, float]:  # fmt: skip
    """How far a lower precision moved the pictures, in the classic VGG terms, over (photo, reference,
    output) triples (each (1, 3, H, W)): (texture change, content change).

    - texture change: the Gram distance (``relu1_1`` ... ``relu5_1``, summed) of the output to the
      reference, over the photo's distance to the reference: how far the precision moved the texture,
      as a share of how far stylizing moved it;
    - content change: the relative change of the ``relu4_2`` content distance to the photo.
    """
    vgg = vgg or VGGFeatures([*GATYS_STYLE_LAYERS, *GATYS_CONTENT_LAYERS])
    style_num = style_den = content_ref = content_out = 0.0
    for photo, reference, output in triples:
        batch = vgg(torch.cat([photo, reference, output]))  # one VGG pass for the three
        f_photo, f_ref, f_out = ({k: v[i : i + 1] for k, v in batch.items()} for i in range(3))
        for layer in GATYS_STYLE_LAYERS:
            g_ref = gram_matrix(f_ref[layer])
            style_num += float((gram_matrix(f_out[layer]) - g_ref).pow(2).mean())
            style_den += float((gram_matrix(f_photo[layer]) - g_ref).pow(2).mean())
        for layer in GATYS_CONTENT_LAYERS:
            content_ref += float(content_loss(f_ref[layer], f_photo[layer]))
            content_out += float(content_loss(f_out[layer], f_photo[layer]))
    return style_num / max(style_den, 1e-30), abs(content_out - content_ref) / max(content_ref, 1e-30)
