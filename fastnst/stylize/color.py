"""Colour helpers: BT.601 YUV and luminance-only transfer (``--preserve-color``)."""

from __future__ import annotations

import torch


def rgb_to_yuv(images: torch.Tensor) -> torch.Tensor:
    """BT.601 RGB to YUV. Shape: (B, 3, H, W) -> (B, 3, H, W)."""
    r, g, b = images.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return torch.stack([y, 0.492 * (b - y), 0.877 * (r - y)], 1)


def yuv_to_rgb(images: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_yuv`."""
    y, u, v = images.unbind(1)
    r = y + v / 0.877
    b = y + u / 0.492
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return torch.stack([r, g, b], 1)


def preserve_color(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance of ``stylized`` with the chrominance of ``content`` (Gatys et al. 2016)."""
    yuv = rgb_to_yuv(content)
    return yuv_to_rgb(torch.cat([rgb_to_yuv(stylized)[:, :1], yuv[:, 1:]], 1)).clamp(0, 1)
