"""The backend interface: one place refuses what a backend cannot do; every backend gives the same pictures."""

import pytest
import torch

from fastnst.backends import BACKENDS, CAPABILITIES
from fastnst.backends.base import BackendError, check_supported
from fastnst.stylize.stylizer import Stylizer


def test_refusals_are_one_line_and_name_the_way_out():
    caps = CAPABILITIES["onnxruntime"]
    cases = {
        "--tile needs the torch backend": dict(tile=True),
        "--stable needs the torch backend": dict(stable=True),
        "drop --precision bf16 or use --backend torch": dict(precision="bf16"),
        "drop --device cuda or use --backend torch": dict(device="cuda"),
    }
    for words, option in cases.items():
        with pytest.raises(BackendError) as info:
            check_supported("onnxruntime", caps, **option)
        assert words in str(info.value) and "\n" not in str(info.value)
    check_supported("torch", CAPABILITIES["torch"], tile=True, stable=True, precision="bf16", device="cuda")


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "torch"])
def test_every_backend_matches_torch(tiny_ckpt, backend):
    pytest.importorskip({"onnxruntime": "onnxruntime", "openvino": "openvino"}[backend])
    x = torch.rand(2, 3, 37, 45)  # odd sizes: padded and cropped back
    reference = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cpu", precision="fp32").stylize_tensor(x)
    got = Stylizer.from_checkpoint(tiny_ckpt, backend=backend).stylize_tensor(x)
    assert got.shape == reference.shape
    assert (got - reference).abs().max() < 1e-4


@pytest.mark.gpu
def test_gpu_default_is_fp16_and_close_to_fp32(tiny_ckpt):
    x = torch.rand(2, 3, 64, 80)
    default = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cuda")
    assert default.precision == "fp16" and default.device.type == "cuda"
    reference = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cpu", precision="fp32").stylize_tensor(x)
    got = default.stylize_tensor(x.cuda()).cpu()
    assert 0 < (got - reference).abs().mean() < 0.01


@pytest.mark.gpu
def test_gpu_tiles_match_the_whole_image(tiny_ckpt):
    stylizer = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cuda", precision="fp32")
    x = torch.rand(1, 3, 150, 203)
    whole = stylizer.stylize_tensor(x)
    tiled = stylizer.stylize_tiled(x, tile=64)
    assert (tiled - whole).abs().max() < 1e-3


def test_openvino_through_the_command_line_with_every_image_option(tiny_ckpt, tmp_path, capsys):
    pytest.importorskip("openvino")
    import numpy as np
    from PIL import Image

    from fastnst.cli import main

    from conftest import write_photo

    photos = [write_photo(tmp_path / "in" / f"{i}.png", size=(40, 30), seed=i) for i in range(3)]
    outs = {}
    for backend in ("torch", "openvino"):
        args = ["stylize", "--ckpt", str(tiny_ckpt), str(tmp_path / "in"), "-o", str(tmp_path / backend), "--quiet",
                "--backend", backend, "--precision", "fp32", "--strength", "0.6", "--preserve-color",
                "--batch-size", "2", "--size", "32"]  # fmt: skip
        assert main(args) == 0, capsys.readouterr().err
        outs[backend] = [np.asarray(Image.open(tmp_path / backend / f"{p.stem}_tiny.png"), np.int16) for p in photos]
    assert "(openvino fp32)" in capsys.readouterr().out
    for a, b in zip(outs["torch"], outs["openvino"]):
        assert a.shape == b.shape == (24, 32, 3) and np.abs(a - b).max() <= 2
