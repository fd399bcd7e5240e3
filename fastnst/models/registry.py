"""Network architectures by name, so a checkpoint can say which one it holds (as timm does).

Every exported file stores its architecture's name and config; :func:`build_network` rebuilds
it. A new family (a multi-style network, an imported layout) registers itself here and then
loads through the same :func:`fastnst.checkpoint.load_network`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Architecture:
    """A registered network family: its class and its config dataclass (with ``from_dict``)."""

    name: str
    network_class: type[nn.Module]
    config_class: type


_REGISTRY: dict[str, Architecture] = {}


def register_architecture(name: str, config_class: type) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register ``cls`` under ``name``; instances get ``arch = name``."""

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].network_class is not cls:
            raise ValueError(f"architecture {name!r} is registered twice")
        _REGISTRY[name] = Architecture(name, cls, config_class)
        cls.arch = name
        return cls

    return decorate


def architectures() -> list[str]:
    """Names of every registered architecture."""
    return sorted(_REGISTRY)


def build_network(arch: str, config: dict) -> nn.Module:
    """A freshly initialised network of ``arch`` built from its config dict.

    Raises:
        KeyError: unknown architecture (the message lists the known ones).
        ValueError, TypeError: a config the architecture rejects.
    """
    if arch not in _REGISTRY:
        raise KeyError(f"unknown network architecture {arch!r}; this fastnst knows {', '.join(architectures())}")
    entry = _REGISTRY[arch]
    return entry.network_class(entry.config_class.from_dict(dict(config)))
