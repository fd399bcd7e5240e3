import subprocess
import sys

import pytest
import torch
from PIL import Image

from fastnst import Stylizer
from fastnst.stylize.color import preserve_color, rgb_to_yuv
from fastnst.stylize.tiling import num_tile_passes, stylize_tiled


def test_import_is_light():
    code = (
        "import sys, fastnst, fastnst.stylize.pipeline, fastnst.stylize.video, fastnst.cli, fastnst.dataset; "
        "from fastnst import Stylizer; from fastnst.backends import BACKENDS; "
        "heavy = [m for m in ('lightning', 'pytorch_lightning', 'hydra', 'omegaconf', 'tensorboard', 'onnxruntime', "
        "'openvino', 'fastapi', 'uvicorn', 'av', 'ray', 'pyarrow') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pil_in_pil_out_same_size(tiny_ckpt):
    stylizer = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cpu")
    assert stylizer.style == "tiny" and stylizer.precision == "fp32"  # never bf16 from CPU flags alone
    out = stylizer.stylize(Image.new("L", (33, 21), 128))
    assert out.mode == "RGB" and out.size == (33, 21)


def test_tensor_api_strength_and_input_untouched(tiny_ckpt):
    stylizer = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cpu", precision="fp32")
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
    fp32 = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cpu", precision="fp32")
    bf16 = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cpu", precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    a, b = fp32.stylize_tensor(x), bf16.stylize_tensor(x)
    assert 0 < (a - b).abs().mean() < 0.02  # bf16 really ran (not equal), and stayed close


def test_preserve_color_keeps_chroma_takes_luminance():
    content, stylized = torch.rand(1, 3, 8, 8) * 0.2 + 0.4, torch.rand(1, 3, 8, 8) * 0.2 + 0.4  # in gamut
    out = preserve_color(stylized, content)
    assert torch.allclose(rgb_to_yuv(out)[:, 0], rgb_to_yuv(stylized)[:, 0], atol=1e-5)
    assert torch.allclose(rgb_to_yuv(out)[:, 1:], rgb_to_yuv(content)[:, 1:], atol=1e-5)


def test_tiled_matches_untiled_and_naive_tiles_do_not(tiny_ckpt):
    stylizer = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cpu", precision="fp32")
    torch.manual_seed(0)
    x = torch.rand(1, 3, 150, 203)
    whole = stylizer.stylize_tensor(x)
    calls = []
    tiled = stylize_tiled(stylizer.backend, x, tile=64, halo=32, progress=lambda: calls.append(1))
    assert len(calls) == num_tile_passes(150, 203, 64, 32, stylizer.backend.net)  # the progress bar ends full
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() < 1e-4
    naive = torch.cat([stylizer.stylize_tensor(x[..., :, :100]), stylizer.stylize_tensor(x[..., :, 100:])], -1)
    assert (naive - whole).abs().max() > 1e-2
    assert torch.equal(stylizer.stylize_tensor(x), whole)  # nothing of the tiling stayed in the network


def test_tiled_matches_untiled_in_bf16(tiny_ckpt):
    stylizer = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cpu", precision="bf16")
    torch.manual_seed(1)
    x = torch.rand(1, 3, 120, 150)
    whole = stylizer.stylize_tensor(x)
    tiled = stylize_tiled(stylizer.backend, x, tile=64, halo=32)
    diff = (tiled - whole).abs() * 255
    assert diff.mean() < 0.5 and diff.max() < 8


def test_two_threads_share_one_network(tiny_ckpt):
    """One thread tiles with fixed statistics while another stylizes plainly: neither sees the other's."""
    import threading

    stylizer = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cpu", precision="fp32")
    torch.manual_seed(2)
    big, small = torch.rand(1, 3, 96, 120), torch.rand(1, 3, 40, 40)
    expected_big, expected_small = stylizer.stylize_tensor(big), stylizer.stylize_tensor(small)
    results, errors = {}, []
    inside = threading.Event()

    def plain():
        inside.wait(10)  # start while the other thread is inside its statistics scope
        for _ in range(20):
            results.setdefault("small", []).append(stylizer.stylize_tensor(small))

    def tiled():
        def progress():
            inside.set()

        results["big"] = stylize_tiled(stylizer.backend, big, tile=48, halo=32, progress=progress)

    threads = [threading.Thread(target=plain), threading.Thread(target=tiled)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert (results["big"] - expected_big).abs().max() < 1e-4
    assert all(torch.equal(out, expected_small) for out in results["small"])
