"""Stylize images of any size in bounded memory, with no seams.

Instance norm normalises each feature map by its own mean and variance, so
naive tiles disagree in brightness and texture. Here every tile uses the
whole image's statistics, gathered exactly, one norm layer at a time:

1. For norm layer k (in network order), run every tile up to layer k, with
   layers before k already fixed to their whole-image statistics, and add up
   the sums and sums of squares over each tile's own (core) region.
2. Fix layer k to the resulting mean and variance; go on with k + 1.
3. Run every tile through the whole network and paste the cores.

Tiles overlap by ``halo`` pixels on each side (more than the network's
receptive-field radius, about 54 px), and tile origins are multiples of 4 so
the strided layers sample the same grid as on the whole image: with the
statistics fixed, each core then comes out as on the whole image.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from fastnst.models.transformer_net import InstanceNorm, TransformerNet


class _Stop(Exception):
    """Raised by an observer to end a forward pass early."""


def _up4(n: int) -> int:
    """``n`` rounded up to a multiple of 4 (the network downsamples twice by 2)."""
    return -(-n // 4) * 4


# Overlap (px) on each side of a tile: context for the convolutions near its edges
# (starry_night, fp32: tiled output within 3e-4/255 of the whole image).
TILE_HALO = 64


def tile_boxes(
    height: int, width: int, tile: int, halo: int
) -> list[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """(core, window) boxes as (top, left, bottom, right); both aligned to 4."""
    boxes = []
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            core = (top, left, min(top + tile, height), min(left + tile, width))
            window = (max(0, top - halo), max(0, left - halo), min(height, core[2] + halo), min(width, core[3] + halo))
            boxes.append((core, window))
    return boxes


@torch.no_grad()
def stylize_tiled(
    net: TransformerNet,
    images: torch.Tensor,
    tile: int = 512,
    halo: int = TILE_HALO,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: torch.device | None = None,
    progress: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Stylize with whole-image instance-norm statistics, tile by tile.

    Args:
        net: the network (its norm layers are temporarily fixed, then restored).
        images: float in [0, 1], kept where they are (CPU memory for huge images).
        tile: core tile side in pixels (rounded up to a multiple of 4).
        halo: overlap on each side in pixels (rounded up to a multiple of 4).
        forward: how to run ``net`` on a window (autocast, memory format);
            defaults to ``net`` itself.
        device: where tiles are computed; defaults to the network's device.
        progress: called once per tile pass, for progress bars.

    Returns:
        float32 images in [0, 1] on the input's device.

    Shape:
        - images: (B, 3, H, W); output the same.
    """
    forward = forward or net
    device = device or next(net.parameters()).device
    tile, halo = _up4(tile), _up4(halo)
    b, _, h, w = images.shape
    pad_h, pad_w = _up4(h) - h, _up4(w) - w
    if pad_h or pad_w:
        images = F.pad(images, (0, pad_w, 0, pad_h), mode="reflect" if min(h, w) > 4 else "replicate")
    hp, wp = images.shape[-2:]
    boxes = tile_boxes(hp, wp, tile, halo)
    norms = [m for m in net.modules() if isinstance(m, InstanceNorm)]

    def window_of(box):
        top, left, bottom, right = box
        return images[..., top:bottom, left:right].to(device, torch.float32)

    try:
        for norm in norms:
            totals: dict[str, torch.Tensor] = {}

            def observe(module, x, core, window, totals):
                scale = (window[2] - window[0]) // x.shape[-2]
                top, left = (core[0] - window[0]) // scale, (core[1] - window[1]) // scale
                bottom, right = (core[2] - window[0]) // scale, (core[3] - window[1]) // scale
                region = x[..., top:bottom, left:right].float()
                sums = torch.stack([region.sum((2, 3)), region.pow(2).sum((2, 3))]).double().cpu()  # (2, B, C)
                totals["sums"] = totals.get("sums", 0) + sums
                totals["count"] = totals.get("count", 0) + region.shape[-2] * region.shape[-1]
                raise _Stop

            for core, window in boxes:
                norm.observer = lambda m, x, core=core, window=window, totals=totals: observe(
                    m, x, core, window, totals
                )
                try:
                    forward(window_of(window))
                except _Stop:
                    pass
                if progress:
                    progress()
            norm.observer = None
            mean = totals["sums"][0] / totals["count"]
            var = (totals["sums"][1] / totals["count"] - mean.pow(2)).clamp_min(0)
            norm.stats = (mean.float().view(b, -1, 1, 1).to(device), var.float().view(b, -1, 1, 1).to(device))

        out = torch.empty(b, 3, hp, wp, dtype=torch.float32, device=images.device)
        for core, window in boxes:
            y = forward(window_of(window)).float()  # (B, 3, window_h, window_w)
            top, left = core[0] - window[0], core[1] - window[1]
            out[..., core[0] : core[2], core[1] : core[3]] = y[
                ..., top : top + core[2] - core[0], left : left + core[3] - core[1]
            ].to(out.device)
            if progress:
                progress()
    finally:
        for norm in norms:
            norm.stats, norm.observer = None, None
    return out[..., :h, :w]


def num_tile_passes(height: int, width: int, tile: int, halo: int, net: TransformerNet) -> int:
    """How many tile forwards :func:`stylize_tiled` makes (for progress bars)."""
    n_norms = sum(isinstance(m, InstanceNorm) for m in net.modules())
    return len(tile_boxes(_up4(height), _up4(width), _up4(tile), _up4(halo))) * (n_norms + 1)
