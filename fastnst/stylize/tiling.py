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

from fastnst.backends.base import Backend
from fastnst.models.transformer_net import InstanceNorm, pad_to_multiple


class _Stop(Exception):
    """Ends a statistics pass at the norm layer being measured (the rest of the network is not needed)."""


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
    backend: Backend,
    images: torch.Tensor,
    tile: int = 512,
    halo: int = TILE_HALO,
    progress: Callable[[], None] | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Stylize with whole-image instance-norm statistics, tile by tile.

    The statistics are applied through ``backend.norm_statistics`` (scoped to this call and
    thread): the network itself is never modified.

    Args:
        backend: a backend whose capabilities include ``norm_statistics`` (torch) and with ``net``.
        images: float in [0, 1], kept where they are (CPU memory for huge images).
        tile: core tile side in pixels (rounded up to a multiple of 4).
        halo: overlap on each side in pixels (rounded up to a multiple of 4).
        progress: called once per tile pass, for progress bars.
        weights: (B, S) style weights of a multi-style network.

    Returns:
        float32 images in [0, 1] on the input's device.

    Shape:
        - images: (B, 3, H, W); output the same.
    """
    tile, halo = _up4(tile), _up4(halo)
    h, w = images.shape[-2:]
    images = pad_to_multiple(images, 4)
    boxes = tile_boxes(*images.shape[-2:], tile, halo)
    fixed = _whole_image_statistics(backend, images, boxes, weights, progress)
    out = torch.empty(images.shape[0], 3, *images.shape[-2:], dtype=torch.float32, device=images.device)
    with backend.norm_statistics(lambda module, x: fixed[id(module)]):
        for core, window in boxes:
            y = backend.run(_window(images, window, backend.device), weights)  # (B, 3, window_h, window_w)
            top, left = core[0] - window[0], core[1] - window[1]
            out[..., core[0] : core[2], core[1] : core[3]] = y[
                ..., top : top + core[2] - core[0], left : left + core[3] - core[1]
            ].to(out.device)
            if progress:
                progress()
    return out[..., :h, :w]


def _window(images: torch.Tensor, box, device) -> torch.Tensor:
    top, left, bottom, right = box
    return images[..., top:bottom, left:right].to(device, torch.float32)


def _whole_image_statistics(backend: Backend, images: torch.Tensor, boxes, weights, progress) -> dict:
    """id(norm) -> the whole image's (mean, var) at that instance norm, gathered exactly, tile by tile: a pass
    per norm that stops at it (every earlier norm already uses the whole image's statistics)."""
    b, device = images.shape[0], backend.device
    fixed: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for norm in [m for m in backend.net.modules() if isinstance(m, InstanceNorm)]:
        sums, count, box = 0, 0, {}  # box: the tile being measured (its core and window)

        def choose(module, x, norm=norm, box=box):
            nonlocal sums, count
            if module is not norm:
                return fixed[id(module)]
            core, window = box["core"], box["window"]
            scale = (window[2] - window[0]) // x.shape[-2]
            top, left = (core[0] - window[0]) // scale, (core[1] - window[1]) // scale
            bottom, right = (core[2] - window[0]) // scale, (core[3] - window[1]) // scale
            region = x[..., top:bottom, left:right].float()
            sums = sums + torch.stack([region.sum((2, 3)), region.pow(2).sum((2, 3))]).double().cpu()  # (2, B, C)
            count += region.shape[-2] * region.shape[-1]
            raise _Stop

        with backend.norm_statistics(choose):
            for core, window in boxes:
                box.update(core=core, window=window)
                try:
                    backend.run(_window(images, window, device), weights)
                except _Stop:
                    pass
                if progress:
                    progress()
        mean = sums[0] / count
        var = (sums[1] / count - mean.pow(2)).clamp_min(0)
        fixed[id(norm)] = (mean.float().view(b, -1, 1, 1).to(device), var.float().view(b, -1, 1, 1).to(device))
    return fixed


def num_tile_passes(height: int, width: int, tile: int, halo: int, net: torch.nn.Module) -> int:
    """How many tile forwards :func:`stylize_tiled` makes (for progress bars)."""
    n_norms = sum(isinstance(m, InstanceNorm) for m in net.modules())
    return len(tile_boxes(_up4(height), _up4(width), _up4(tile), _up4(halo))) * (n_norms + 1)
