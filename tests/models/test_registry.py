"""Checkpoints carry their architecture; new families load through the same load_network."""

from dataclasses import asdict, dataclass

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from fastnst.checkpoint import CheckpointError, load_network, save_network
from fastnst.models.registry import architectures, build_network, register_architecture


@dataclass(frozen=True)
class PixelNetConfig:
    channels: int = 3

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**data)


@register_architecture("test_pixel", PixelNetConfig)
class PixelNet(nn.Module):
    """A test-only family: one 1x1 convolution."""

    def __init__(self, config=None):
        super().__init__()
        self.config = config or PixelNetConfig()
        self.conv = nn.Conv2d(3, self.config.channels, 1)

    def forward(self, x):
        return torch.sigmoid(self.conv(x))


def test_another_architecture_loads_through_load_network(tmp_path):
    net = PixelNet()
    path = save_network(net, tmp_path / "pixel.safetensors", {"style": "px"})
    loaded = load_network(path)
    assert isinstance(loaded.net, PixelNet) and loaded.style == "px"
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(loaded.net(x), net(x))
    assert "johnson" in architectures() and "test_pixel" in architectures()


def test_a_file_without_its_architecture_is_refused_in_one_line(tmp_path, tiny_net):
    path = save_network(tiny_net, tmp_path / "old.safetensors")
    with safe_open(str(path), "pt") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    del meta["fastnst_arch"]
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="without fastnst metadata") as info:
        load_network(path)
    assert "\n" not in str(info.value)


def test_unknown_architecture_is_one_line(tmp_path, tiny_net):
    path = save_network(tiny_net, tmp_path / "future.safetensors")
    with safe_open(str(path), "pt") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    meta["fastnst_arch"] = "hypernet"
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match=r"unknown network architecture 'hypernet'.*a newer fastnst") as info:
        load_network(path)
    assert "\n" not in str(info.value)
    with pytest.raises(KeyError):
        build_network("hypernet", {})
