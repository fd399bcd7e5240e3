import subprocess
import sys

import pytest
import torch
from PIL import Image

from fastnst import Stylizer
from fastnst.inference import cpu_has_fast_bf16, preserve_color, rgb_to_yuv
from fastnst.tiling import num_tile_passes, stylize_tiled


def test_import_is_light():
    code = (
        "import sys, fastnst, fastnst.inference, fastnst.cli; from fastnst import Stylizer; "
        "heavy = [m for m in ('lightning', 'pytorch_lightning', 'hydra', 'omegaconf', 'tensorboard') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pil_in_pil_out_same_size(tiny_ckpt):
    stylizer = Stylizer.from_checkpoint(tiny_ckpt, device="cpu")
    assert stylizer.style == "tiny" and stylizer.precision == ("bf16" if cpu_has_fast_bf16() else "fp32")
    out = stylizer.stylize(Image.new("L", (33, 21), 128))
    assert out.mode == "RGB" and out.size == (33, 21)


def test_tensor_api_strength_and_input_untouched(tiny_ckpt):
    stylizer = Stylizer.from_checkpoint(tiny_ckpt, device="cpu", precision="fp32")
    x = torch.rand(2, 3, 16, 20)
    before = x.clone()
    full = stylizer.stylize_tensor(x)
    assert torch.equal(x, before)
    assert torch.allclose(stylizer.stylize_tensor(x, strength=0.0), x)
    half = stylizer.stylize_tensor(x, strength=0.5)
    assert torch.allclose(half, (x + full) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="strength"):
        stylizer.stylize_tensor(x, strength=1.5)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        stylizer.stylize_tensor(torch.rand(3, 8, 8))


def test_bf16_close_to_fp32(tiny_ckpt):
    x = torch.rand(1, 3, 24, 24)
    fp32 = Stylizer.from_checkpoint(tiny_ckpt, device="cpu").stylize_tensor(x)
    bf16 = Stylizer.from_checkpoint(tiny_ckpt, device="cpu", precision="bf16").stylize_tensor(x)
    assert (fp32 - bf16).abs().mean() < 0.02


def test_preserve_color_keeps_chroma_takes_luminance():
    content, stylized = torch.rand(1, 3, 8, 8) * 0.2 + 0.4, torch.rand(1, 3, 8, 8) * 0.2 + 0.4  # in gamut
    out = preserve_color(stylized, content)
    assert torch.allclose(rgb_to_yuv(out)[:, 0], rgb_to_yuv(stylized)[:, 0], atol=1e-5)
    assert torch.allclose(rgb_to_yuv(out)[:, 1:], rgb_to_yuv(content)[:, 1:], atol=1e-5)


def test_tiled_matches_untiled_and_naive_tiles_do_not(tiny_ckpt):
    stylizer = Stylizer.from_checkpoint(tiny_ckpt, device="cpu", precision="fp32")
    torch.manual_seed(0)
    x = torch.rand(1, 3, 150, 203)
    whole = stylizer.stylize_tensor(x)
    calls = []
    tiled = stylize_tiled(stylizer.net, x, tile=64, halo=32, progress=lambda: calls.append(1))
    assert len(calls) == num_tile_passes(150, 203, 64, 32, stylizer.net)  # the progress bar ends full
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() < 1e-4
    naive = torch.cat([stylizer.stylize_tensor(x[..., :, :100]), stylizer.stylize_tensor(x[..., :, 100:])], -1)
    assert (naive - whole).abs().max() > 1e-2
    assert all(m.stats is None for m in stylizer.net.modules() if hasattr(m, "stats"))


def test_tiled_matches_untiled_in_bf16(tiny_ckpt):
    stylizer = Stylizer.from_checkpoint(tiny_ckpt, device="cpu", precision="bf16")
    torch.manual_seed(1)
    x = torch.rand(1, 3, 120, 150)
    whole = stylizer.stylize_tensor(x)
    tiled = stylize_tiled(stylizer.net, x, tile=64, halo=32, forward=stylizer.forward)
    diff = (tiled - whole).abs() * 255
    assert diff.mean() < 0.5 and diff.max() < 8
