import pytest
import torch

from fastnst.models.transformer_net import TransformerNet, TransformerNetConfig


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (1, 3, 37, 50), (1, 3, 9, 13)])
def test_output_shape_dtype_and_range(tiny_net, shape):
    x = torch.rand(shape)
    y = tiny_net(x)
    assert y.shape == x.shape
    assert y.dtype == torch.float32
    assert y.min() >= 0 and y.max() <= 1


def test_input_not_modified(tiny_net):
    x = torch.rand(1, 3, 30, 30)
    before = x.clone()
    tiny_net(x)
    assert torch.equal(x, before)


def test_every_parameter_gets_a_gradient():
    net = TransformerNet(TransformerNetConfig(width=0.25, num_residual_blocks=2))
    net(torch.rand(2, 3, 24, 24)).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing


def test_paper_architecture():
    net = TransformerNet()
    assert net.config.channels() == (32, 64, 128)
    assert len(net.residuals) == 5
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size[0] for c in (convs[0], convs[-1])] == [9, 9]
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())
    assert any(isinstance(m, torch.nn.ReflectionPad2d) for m in net.modules())
    assert 1.6e6 < net.num_parameters() < 1.8e6


def test_light_variant_is_half_width():
    light = TransformerNet(TransformerNetConfig(width=0.5))
    assert light.config.channels() == (16, 32, 64)
    assert light.num_parameters() < TransformerNet().num_parameters() / 3


def test_config_round_trip_and_rejects_unknown_keys():
    cfg = TransformerNetConfig(width=0.5, num_residual_blocks=3)
    assert TransformerNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown TransformerNet config keys"):
        TransformerNetConfig.from_dict({"width": 1.0, "depth": 3})
    with pytest.raises(ValueError, match="width"):
        TransformerNetConfig(width=0)
