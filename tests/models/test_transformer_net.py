import pytest
import torch

from fastnst.models.transformer_net import SKIP_GATE_GAIN, TransformerNet, TransformerNetConfig


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


@pytest.mark.parametrize("width, blocks", [(0.25, 3), (0.5, 1), (0.375, 2)])
def test_grown_network_starts_drawing_what_the_smaller_one_did_then_learns(width, blocks):
    torch.manual_seed(0)
    small = TransformerNet(TransformerNetConfig(width=0.25, num_residual_blocks=1))
    for p in small.parameters():  # trained-looking weights, not the default init
        p.data.add_(0.1 * torch.randn_like(p))
    big = TransformerNet(TransformerNetConfig(width=width, num_residual_blocks=blocks))
    assert big.load_smaller(small.state_dict()) == (blocks - 1, width / 0.25)
    x = torch.rand(2, 3, 28, 36)
    assert torch.allclose(big(x), small(x), atol=1e-5)
    big(x).square().mean().backward()
    if blocks > 1:  # an added block is not dead: its scale gets a gradient at once
        assert big.residuals[-1].body[1][2].weight.grad.abs().sum() > 0
    if width > 0.25:  # a copied channel parts from its original: different gradients
        conv = big.encoder[0][1].weight.grad  # (C1, 3, 9, 9); channels 8.. copy channels 0..7
        copy = 8
        original = int(
            torch.nonzero((big.encoder[0][1].weight[:8] == big.encoder[0][1].weight[copy]).all(dim=(1, 2, 3)))[0]
        )
        assert not torch.allclose(conv[copy], conv[original])


def test_grow_refuses_a_bigger_or_other_network():
    small = TransformerNet(TransformerNetConfig(width=0.25, num_residual_blocks=1))
    big = TransformerNet(TransformerNetConfig(width=0.5, num_residual_blocks=3))
    with pytest.raises(ValueError, match="3 residual blocks for 1"):
        small.load_smaller(big.state_dict())
    with pytest.raises(ValueError, match=r"channels \[16, 32, 64\] for \[8, 16, 32\]"):
        small.load_smaller(TransformerNet(TransformerNetConfig(width=0.5, num_residual_blocks=1)).state_dict())
    with pytest.raises(ValueError, match="differing tensors"):
        big.load_smaller({k: v for k, v in small.state_dict().items() if not k.startswith("decoder")})


def test_input_skip_passes_the_photo_through_and_grows_from_a_network_without_it():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 28, 36)
    net = TransformerNet(TransformerNetConfig(width=0.25, num_residual_blocks=1, input_skip=True))
    with torch.no_grad():
        net.decoder[-1][1].weight.zero_()  # the layers add nothing: the output is the photo itself
        net.decoder[-1][1].bias.zero_()
        net.skip_gate.fill_(1.0 / SKIP_GATE_GAIN)
    assert torch.allclose(net(x), x.clamp(1e-3, 1 - 1e-3), atol=1e-5)

    plain = TransformerNet(TransformerNetConfig(width=0.25, num_residual_blocks=1))
    for p in plain.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    skip = TransformerNet(TransformerNetConfig(width=0.25, num_residual_blocks=1, input_skip=True))
    assert skip.load_smaller(plain.state_dict()) == (0, 1.0)
    assert torch.allclose(skip(x), plain(x), atol=1e-6)  # the gate starts at 0
    skip(x).square().mean().backward()
    assert skip.skip_gate.grad.abs().sum() > 0  # and training can open it
    with pytest.raises(ValueError, match="differing tensors"):
        plain.load_smaller(skip.state_dict())
