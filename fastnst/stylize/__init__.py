"""Stylizing: the :class:`Stylizer` (a network on a backend), the pipeline over files and folders,
tiles for huge images and video files."""

from fastnst.stylize.stylizer import Stylizer

__all__ = ["Stylizer"]
