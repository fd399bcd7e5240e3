"""Kept for code written against earlier versions: the Stylizer now lives in :mod:`fastnst.stylize`."""

from fastnst.backends.torch_backend import default_precision, pick_device
from fastnst.stylize.color import preserve_color, rgb_to_yuv, yuv_to_rgb
from fastnst.stylize.stylizer import Stylizer, cpu_has_fast_bf16

__all__ = [
    "Stylizer",
    "cpu_has_fast_bf16",
    "default_precision",
    "pick_device",
    "preserve_color",
    "rgb_to_yuv",
    "yuv_to_rgb",
]
