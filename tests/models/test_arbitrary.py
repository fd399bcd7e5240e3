"""The any-painting network: a style predictor whose embedding maps linearly to every norm's (γ, β)."""

import pytest
import torch

from fastnst.checkpoint import load_network, save_network
from fastnst.models.arbitrary import ArbitraryStyleNet, ArbitraryStyleNetConfig, prepare_painting
from fastnst.models.multi_style import MultiStyleNet, MultiStyleNetConfig, mix_weights

TINY = {"width": 0.25, "num_residual_blocks": 1, "embedding_dim": 8, "hidden_dim": 16, "encoder_channel_scale": 0.125}


def tiny_arbitrary(styles=("a", "b")) -> ArbitraryStyleNet:
    torch.manual_seed(0)
    return ArbitraryStyleNet(ArbitraryStyleNetConfig(**TINY, styles=styles)).eval()


def test_shapes_and_every_trained_parameter_gets_a_gradient():
    net = tiny_arbitrary().train()
    x, paintings = torch.rand(2, 3, 28, 36), torch.rand(2, 3, 40, 40)
    from fastnst.models.arbitrary import painting_statistics

    stats = painting_statistics(net.style_encoder(paintings))
    embedding = net.embed_statistics(stats)
    assert stats.shape == (2, 2 * (8 + 16 + 32 + 64)) and embedding.shape == (2, 8)
    y = net(x, embedding)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    y.mean().backward()
    trained = [n for n, p in net.named_parameters() if p.requires_grad]
    assert trained and all(net.get_parameter(n).grad is not None for n in trained)
    assert not any(p.requires_grad for p in net.style_encoder.parameters())  # the VGG layers stay frozen


def test_different_embeddings_paint_differently_and_mixing_is_linear():
    net = tiny_arbitrary()
    with torch.no_grad():
        for norm in net.conditional_norms():
            norm.weight.add_(torch.randn_like(norm.weight))
        x = torch.rand(1, 3, 24, 24)
        a, b = torch.randn(8), torch.randn(8)
        assert (net(x, a) - net(x, b)).abs().max() > 1e-3
        # (γ, β) are linear in the embedding: the network run at a mix equals the one whose norms are mixed
        gamma = lambda e: torch.cat([e, torch.ones(1)]) @ net.conditional_norms()[0].weight  # noqa: E731
        assert torch.allclose(gamma(0.3 * a + 0.7 * b), 0.3 * gamma(a) + 0.7 * gamma(b), atol=1e-5)


def test_starts_from_a_multi_style_network_painting_its_styles():
    torch.manual_seed(1)
    multi = MultiStyleNet(MultiStyleNetConfig(width=0.25, num_residual_blocks=1, styles=("a", "b", "c"))).eval()
    with torch.no_grad():
        for module in multi.modules():
            if hasattr(module, "weight") and module.weight is not None and module.weight.dim() == 2:
                module.weight.add_(torch.randn_like(module.weight) * 0.5)
                module.bias.add_(torch.randn_like(module.bias) * 0.5)
    net = tiny_arbitrary(styles=("a", "b", "c"))
    paintings = [torch.rand(1, 3, 48, 64) * scale for scale in (0.2, 0.6, 1.0)]  # unlike statistics
    embeddings = torch.cat([net.embed(prepare_painting(p, 48)) for p in paintings])
    net.init_from_multi_style(multi, embeddings, ridge=1e-6)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        for i, name in enumerate(multi.styles):
            assert torch.allclose(net(x, embeddings[i]), multi(x, mix_weights(multi.styles, name)), atol=2e-3)


def test_export_and_load_keep_the_stored_styles(tmp_path):
    net = tiny_arbitrary()
    net.style_embeddings.copy_(torch.randn(2, 8))
    path = save_network(net, tmp_path / "arbitrary.safetensors", {"style": "arbitrary"})
    loaded = load_network(path).net
    assert loaded.styles == ("a", "b") and torch.equal(loaded.stored("b"), net.stored("b"))
    with pytest.raises(ValueError, match="unknown style 'c'; this network stores a, b"):
        loaded.stored("c")
    x = torch.rand(1, 3, 20, 20)
    assert torch.allclose(loaded(x, loaded.stored("a")), net(x, net.stored("a")))


def test_the_predictor_skip_starts_at_zero_adds_a_linear_read_and_survives_a_save(tmp_path):
    plain = tiny_arbitrary()
    torch.manual_seed(0)
    net = ArbitraryStyleNet(ArbitraryStyleNetConfig(**TINY, styles=("a", "b"), predictor_skip=True)).eval()
    net.load_state_dict(plain.state_dict(), strict=False)
    paintings = prepare_painting(torch.rand(1, 3, 48, 64), 48)
    assert torch.equal(net.embed(paintings), plain.embed(paintings))  # a new skip changes nothing
    with torch.no_grad():
        net.style_predictor.skip.bias.copy_(torch.arange(8.0))
    assert torch.allclose(net.embed(paintings), plain.embed(paintings) + torch.arange(8.0))
    loaded = load_network(save_network(net, tmp_path / "skip.safetensors", {"style": "arbitrary"})).net
    assert loaded.config.predictor_skip and torch.equal(loaded.embed(paintings), net.embed(paintings))
    assert not load_network(save_network(plain, tmp_path / "plain.safetensors")).net.config.predictor_skip


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_exported_graph_takes_the_embedding_as_an_input(tmp_path, backend):
    pytest.importorskip(backend)
    from fastnst.stylize.stylizer import Stylizer

    net = tiny_arbitrary()
    with torch.no_grad():
        for norm in net.conditional_norms():
            norm.weight.add_(torch.randn_like(norm.weight))
    path = save_network(net, tmp_path / "arbitrary.safetensors", {"style": "arbitrary"})
    reference = Stylizer.from_checkpoint(path, backend="torch", cache_dir=tmp_path)
    other = Stylizer.from_checkpoint(path, backend=backend, cache_dir=tmp_path)
    painting = tmp_path / "painting.png"
    from conftest import write_photo

    write_photo(painting, size=(64, 48), seed=3)
    x = torch.rand(1, 3, 36, 44)
    for style in ("a", "a=0.5,b=0.5", reference.embed(painting)):  # stored, mixed and a new painting: one graph
        want = reference.stylize_tensor(x, style=style)
        assert (other.stylize_tensor(x, style=style) - want).abs().max() < 1e-4


def test_openvino_folds_a_style_used_again_into_the_model(tmp_path):
    pytest.importorskip("openvino")
    from fastnst.backends.onnxruntime import cached_onnx
    from fastnst.backends.openvino import FOLDED_KEPT, OpenVinoBackend

    net = tiny_arbitrary()
    with torch.no_grad():
        for norm in net.conditional_norms():
            norm.weight.add_(torch.randn_like(norm.weight))
    path = save_network(net, tmp_path / "arbitrary.safetensors", {"style": "arbitrary"})
    backend = OpenVinoBackend(cached_onnx(net, path, tmp_path))
    x, a, b = torch.rand(2, 3, 36, 44), net.stored("a").reshape(1, -1), net.stored("b").reshape(1, -1)

    def check(weights):
        with torch.no_grad():
            want = net(x, weights.expand(2, -1))
        assert (backend.run(x, weights) - want).abs().max() < 1e-4

    check(a)  # a style's first pass: the model as it is
    assert not backend.folded
    check(a)  # its second: compiled with the style as a constant
    (request,) = backend.folded.values()
    compiled = request.get_compiled_model()
    assert len(compiled.inputs) == 1  # the images only
    layers = {op.get_rt_info()["layerType"].astype(str) for op in compiled.get_runtime_model().get_ordered_ops()}
    assert "FullyConnected" not in layers  # (γ, β) are no longer computed per pass
    check(a.expand(2, -1))  # a batch in one style uses it too
    check(torch.cat([a, b]))  # two styles in a batch: the model as it is
    assert len(backend.folded) == 1
    for i in range(FOLDED_KEPT + 1):  # the least recently used folded model goes
        check(a + i + 1)
        check(a + i + 1)
    assert len(backend.folded) == FOLDED_KEPT and a.numpy().tobytes() not in backend.folded
    backend.fold(b)  # at once (how `--backend auto` times a conditioned network)
    assert b.numpy().tobytes() in backend.folded
    check(b)
    assert b.numpy().tobytes() not in backend.uses  # its first pass ran folded


def test_a_batch_paints_as_its_images_one_by_one():
    net = tiny_arbitrary()  # a batch folds its samples into the norms' channels; one image does not
    x, embeddings = torch.rand(2, 3, 24, 28), torch.randn(2, 8)
    with torch.no_grad():
        one_by_one = torch.cat([net(x[i : i + 1], embeddings[i]) for i in range(2)])
        assert torch.allclose(net(x, embeddings), one_by_one, atol=1e-6)


def test_int8_is_calibrated_and_checked_over_the_stored_styles(arbitrary_ckpt, tmp_path):
    pytest.importorskip("openvino")
    from fastnst.backends.openvino import cached_openvino, int8_verdict, style_conditions
    from fastnst.stylize.stylizer import Stylizer

    net = load_network(arbitrary_ckpt).net
    conditions = style_conditions(net)
    assert len(conditions) == 2 and conditions[1].shape == (1, 8)  # one per stored style: its embedding
    verdict = int8_verdict(cached_openvino(net, arbitrary_ckpt, tmp_path, int8=True))
    assert set(verdict) >= {"style_change", "content_change", "passed"}
    int8 = Stylizer.from_checkpoint(arbitrary_ckpt, backend="openvino", precision="int8", cache_dir=tmp_path)
    out = int8.stylize_tensor(torch.rand(1, 3, 32, 32), style="a")
    assert out.shape == (1, 3, 32, 32) and int8.precision == "int8"


def test_a_painting_is_read_at_its_short_side_and_a_scroll_at_no_more_pixels():
    from fastnst.models.arbitrary import PAINTING_PIXELS, PAINTING_SIZE

    assert prepare_painting(torch.rand(1, 3, 600, 800)).shape[-2:] == (PAINTING_SIZE, 341)
    h, w = prepare_painting(torch.rand(1, 3, 1200, 300)).shape[-2:]  # a 4:1 scroll
    assert h * w <= PAINTING_PIXELS * 1.01 and w < PAINTING_SIZE and abs(h / w - 4) < 0.05
    assert prepare_painting(torch.rand(1, 3, 1200, 300), max_pixels=None).shape[-2:] == (
        4 * PAINTING_SIZE,
        PAINTING_SIZE,
    )


def test_painting_statistics_are_channel_means_and_deviations_in_any_memory_format():
    from fastnst.models.arbitrary import STYLE_TAPS, painting_statistics

    torch.manual_seed(0)
    features = {tap: torch.rand(2, 3 + i, 5, 7) * 50 for i, tap in enumerate(STYLE_TAPS)}
    expected = torch.cat([t for f in features.values() for t in (f.mean((2, 3)), f.std((2, 3), unbiased=False))], 1)
    for layout in (torch.contiguous_format, torch.channels_last):
        got = painting_statistics({k: v.contiguous(memory_format=layout) for k, v in features.items()})
        assert torch.allclose(got, expected, atol=1e-4)
