import pytest
import torch
from torch.autograd import gradcheck

from fastnst.losses import PerceptualLoss, color_loss, content_loss, gram_matrix, style_loss, tv_loss
from fastnst.models.vgg import VGGFeatures


def test_gram_normalisation():
    features = torch.ones(2, 3, 4, 5)
    gram = gram_matrix(features)
    assert gram.shape == (2, 3, 3)
    assert torch.allclose(gram, torch.full((2, 3, 3), 20 / 60))  # sum over H W of 1*1 / (C H W)


def test_gram_is_float32_from_bf16():
    features = torch.randn(1, 8, 6, 6)
    gram = gram_matrix(features.bfloat16())
    assert gram.dtype == torch.float32
    assert torch.allclose(gram, gram_matrix(features), rtol=2e-2, atol=2e-2)


def test_gradcheck_gram_content_style_tv():
    torch.manual_seed(0)
    f = torch.randn(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    target = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    grams = {"a": gram_matrix(torch.randn(1, 3, 4, 4, dtype=torch.float64))}
    assert gradcheck(gram_matrix, (f,))
    assert gradcheck(lambda x: content_loss(x, target), (f,))
    assert gradcheck(lambda x: style_loss({"a": x}, grams, {"a": 0.7}), (f,))
    assert gradcheck(tv_loss, (f,))


def test_losses_vanish_at_their_targets():
    x = torch.rand(2, 4, 5, 5)
    assert content_loss(x, x) == 0
    assert style_loss({"a": x}, {"a": gram_matrix(x)}) == 0
    assert tv_loss(torch.full((1, 3, 8, 8), 0.3)) == 0
    assert tv_loss(torch.rand(1, 3, 8, 8)) > 0


def test_style_loss_layer_weights():
    x, y = torch.rand(1, 2, 3, 3), torch.rand(1, 2, 3, 3)
    grams = {"a": gram_matrix(y), "b": gram_matrix(y * 2)}
    feats = {"a": x, "b": x}
    separate = style_loss(feats, {"a": grams["a"]}) * 2 + style_loss(feats, {"b": grams["b"]}) * 0.5
    assert torch.allclose(style_loss(feats, grams, {"a": 2.0, "b": 0.5}), separate)


def test_perceptual_loss_module_equals_functions():
    torch.manual_seed(0)
    vgg = VGGFeatures(["relu1_2", "relu2_2"], weights="random", channel_scale=0.125)
    style = torch.rand(1, 3, 24, 24)
    module = PerceptualLoss(vgg, style, ["relu2_2"], {"relu1_2": 1.0, "relu2_2": 0.5}, 2.0, 3.0, 4.0)
    out, content = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    terms = module(out, content)
    f_out, f_content, f_style = vgg(out), vgg(content), vgg(style)
    grams = {k: gram_matrix(f_style[k]) for k in ("relu1_2", "relu2_2")}
    assert torch.allclose(terms["content_loss"], 2.0 * content_loss(f_out["relu2_2"], f_content["relu2_2"]))
    assert torch.allclose(terms["style_loss"], 3.0 * style_loss(f_out, grams, {"relu1_2": 1.0, "relu2_2": 0.5}))
    assert torch.allclose(terms["tv_loss"], 4.0 * tv_loss(out))
    assert torch.allclose(terms["loss"], terms["content_loss"] + terms["style_loss"] + terms["tv_loss"])


def test_perceptual_loss_needs_a_style_layer():
    vgg = VGGFeatures(["relu1_2"], weights="random", channel_scale=0.125)
    with pytest.raises(ValueError):
        PerceptualLoss(vgg, torch.rand(1, 3, 8, 8), ["relu1_2"], {})(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))


def test_color_loss_ignores_palette_and_strokes_but_not_layout():
    torch.manual_seed(0)
    regions = torch.nn.functional.interpolate(torch.rand(2, 3, 4, 4), scale_factor=16)  # coloured patches
    photo = regions * 0.5 + 0.25
    assert color_loss(photo, photo) == 0
    shifted = photo + torch.tensor([0.1, -0.05, 0.08]).view(1, 3, 1, 1)  # the painting's palette, everywhere
    assert color_loss(shifted, photo) < 1e-12
    checker = (torch.arange(64).view(1, 1, 64, 1) + torch.arange(64).view(1, 1, 1, 64)) % 2 * 0.2 - 0.1
    assert color_loss(photo + checker * torch.tensor([1.0, 0.0, -1.0]).view(1, 3, 1, 1), photo) < 1e-12  # strokes
    swapped = photo.clone()
    swapped[..., :32, :] = photo[..., :32, :][:, [2, 1, 0]]  # the top half turns another colour
    assert color_loss(swapped, photo) > 1e-4
    grey = photo.mean(1, keepdim=True).expand_as(photo)  # one wash
    assert color_loss(grey, photo) > color_loss(0.5 * photo + 0.5 * grey, photo) > 0
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda y: color_loss(y, photo[:1, :, :16, :16].double(), block=4), (x,))


def test_perceptual_loss_adds_the_color_term_only_when_weighted():
    vgg = VGGFeatures(["relu1_2"], weights="random", channel_scale=0.125)
    out, content, style = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.rand(1, 3, 24, 24)
    assert "color_loss" not in PerceptualLoss(vgg, style, ["relu1_2"], {"relu1_2": 1.0})(out, content)
    terms = PerceptualLoss(vgg, style, ["relu1_2"], {"relu1_2": 1.0}, color_weight=7.0)(out, content)
    assert torch.allclose(terms["color_loss"], 7.0 * color_loss(out, content))
    parts = terms["content_loss"] + terms["style_loss"] + terms["tv_loss"] + terms["color_loss"]
    assert torch.allclose(terms["loss"], parts)


def test_relative_style_loss_weighs_every_painting_by_its_photos_distance():
    from fastnst.losses import gram_matrix, relative_style_loss, style_loss

    torch.manual_seed(0)
    vgg = VGGFeatures(["relu1_2", "relu2_2"], channel_scale=0.125, weights="random")
    layers = {"relu1_2": 1.0, "relu2_2": 0.5}
    photos, out = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    paintings = torch.stack([torch.rand(3, 16, 16) * 0.05, torch.rand(3, 16, 16)])  # a quiet one, a busy one
    with torch.no_grad():
        grams = {n: gram_matrix(f) for n, f in vgg(paintings).items()}
        photo_feats, out_feats = vgg(photos), vgg(out)
    assert relative_style_loss(photo_feats, photo_feats, grams, layers).item() == pytest.approx(1.0)  # the photo: 1
    each = style_loss(out_feats, grams, layers, per_image=True)
    own = style_loss(photo_feats, grams, layers, per_image=True)
    assert each.shape == (2,) and each.mean().item() == pytest.approx(style_loss(out_feats, grams, layers).item())
    assert relative_style_loss(out_feats, photo_feats, grams, layers).item() == pytest.approx(
        (each / own).mean().item()
    )
    scaled = {n: g * 100 for n, g in grams.items()}  # a painting 100x as loud, photos and outputs too: same ratio
    loud = {n: f * 10 for n, f in out_feats.items()}, {n: f * 10 for n, f in photo_feats.items()}
    assert relative_style_loss(*loud, scaled, layers).item() == pytest.approx(
        relative_style_loss(out_feats, photo_feats, grams, layers).item(), rel=1e-4
    )
    module = PerceptualLoss(vgg, None, ["relu2_2"], layers, style_weight=3.0, style_relative=True)
    stylized = out.clone().requires_grad_(True)
    terms = module(stylized, photos, grams)
    assert terms["style_loss"].item() == pytest.approx(
        3 * relative_style_loss(out_feats, photo_feats, grams, layers).item(), rel=1e-5
    )
    terms["loss"].backward()
    assert stylized.grad.abs().sum() > 0
