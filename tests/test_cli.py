import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

from fastnst.checkpoint import load_network
from fastnst.cli import main
from fastnst.io import pil_to_tensor
from fastnst.stylize.stylizer import Stylizer

from conftest import ROOT, write_photo


def run(capsys, *args):
    args = [str(a) for a in args]
    if args[0] == "stylize" and "--backend" not in args:
        args.append("--backend=torch")  # auto's calibration has its own tests (tests/backends)
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_files_folders_and_globs(tmp_path, photo_dir, tiny_ckpt, capsys):
    single = write_photo(tmp_path / "single.png")
    out_dir = tmp_path / "out"
    code, out, err = run(
        capsys,
        "stylize",
        "--ckpt",
        tiny_ckpt,
        single,
        photo_dir / "sub",
        f"{photo_dir}/img[01].jpg",
        "-o",
        out_dir,
        "--quiet",
    )
    assert code == 0, err
    names = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())
    assert names == ["img0_tiny.jpg", "img1_tiny.jpg", "img4_tiny.png", "img5_tiny.jpeg", "single_tiny.png"]
    assert Image.open(out_dir / "single_tiny.png").size == Image.open(single).size
    assert "stylized 5 images" in out and "ms/image" in out and "MP/s" in out
    assert not list(out_dir.glob(".*tmp*"))


def test_output_matches_api(tmp_path, tiny_ckpt, capsys):
    photo = write_photo(tmp_path / "p.png", size=(40, 30))
    code, _, _ = run(capsys, "stylize", "--ckpt", tiny_ckpt, photo, "--output", tmp_path / "o.png")
    assert code == 0
    expected = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cpu").stylize(Image.open(photo))
    got = Image.open(tmp_path / "o.png")
    assert (pil_to_tensor(got) - pil_to_tensor(expected)).abs().max() <= 1 / 255 + 1e-6


def test_size_and_scale(tmp_path, tiny_ckpt, capsys):
    photo = write_photo(tmp_path / "p.png", size=(80, 40))
    run(capsys, "stylize", "--ckpt", tiny_ckpt, photo, "--output", tmp_path / "a.png", "--size", 40)
    run(capsys, "stylize", "--ckpt", tiny_ckpt, photo, "--output", tmp_path / "b.png", "--scale", 0.25)
    assert Image.open(tmp_path / "a.png").size == (40, 20)
    assert Image.open(tmp_path / "b.png").size == (20, 10)


def test_existing_output_kept_unless_overwrite(tmp_path, tiny_ckpt, capsys):
    photo = write_photo(tmp_path / "p.png")
    target = tmp_path / "out" / "p_tiny.png"
    target.parent.mkdir()
    target.write_bytes(b"precious")
    code, out, err = run(capsys, "stylize", "--ckpt", tiny_ckpt, photo, "-o", tmp_path / "out")
    assert code == 0 and target.read_bytes() == b"precious" and "--overwrite" in err
    code, _, _ = run(capsys, "stylize", "--ckpt", tiny_ckpt, photo, "-o", tmp_path / "out", "--overwrite")
    assert code == 0 and Image.open(target).size == (48, 40)


def test_bad_input_named_others_done_exit_code(tmp_path, tiny_ckpt, capsys):
    good = write_photo(tmp_path / "in" / "good.png")
    (tmp_path / "in" / "bad.png").write_text("not an image")
    code, out, err = run(
        capsys,
        "stylize",
        "--ckpt",
        tiny_ckpt,
        tmp_path / "in",
        tmp_path / "missing.jpg",
        "-o",
        tmp_path / "out",
        "--quiet",
    )
    assert code == 1
    assert "bad.png" in err and "missing.jpg" in err
    assert (tmp_path / "out" / "good_tiny.png").exists() and good.exists()


def test_never_overwrites_an_input(tmp_path, tiny_ckpt, capsys):
    photo = write_photo(tmp_path / "p.png")
    before = photo.read_bytes()
    code, _, err = run(capsys, "stylize", "--ckpt", tiny_ckpt, photo, "--output", photo)
    assert code == 1 and "overwrite an input" in err and photo.read_bytes() == before


def test_tile_option_agrees_with_whole_image(tmp_path, tiny_ckpt, capsys):
    photo = write_photo(tmp_path / "p.png", size=(150, 110))
    run(capsys, "stylize", "--ckpt", tiny_ckpt, photo, "--output", tmp_path / "whole.png", "--precision", "fp32")
    run(
        capsys,
        "stylize",
        "--ckpt",
        tiny_ckpt,
        photo,
        "--output",
        tmp_path / "tiled.png",
        "--tile",
        48,
        "--precision",
        "fp32",
    )
    a, b = pil_to_tensor(Image.open(tmp_path / "whole.png")), pil_to_tensor(Image.open(tmp_path / "tiled.png"))
    assert (a - b).abs().max() <= 1 / 255 + 1e-6


def test_bad_checkpoint_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 10)
    code, _, err = run(capsys, "stylize", "--ckpt", bad, tmp_path, "-o", tmp_path / "o")
    assert code == 2 and err.count("\n") == 1 and "bad.safetensors" in err


def test_info(tiny_ckpt, capsys):
    code, out, _ = run(capsys, "info", "--ckpt", tiny_ckpt)
    assert code == 0
    rows = dict(re.match(r"(.+?)\s{2,}(.*)", line).groups() for line in out.splitlines())
    assert rows["style"] == "tiny" and rows["training steps"] == "7"
    assert rows["architecture"].startswith("johnson (TransformerNet) width=0.25 num_residual_blocks=1")


@pytest.mark.parametrize("fmt", ["safetensors", "torchscript", "onnx"])
def test_export_formats_match_pytorch(tmp_path, tiny_ckpt, capsys, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason="onnxruntime is an optional extra: pip install 'fastnst[onnx]'")
    target = tmp_path / f"net.{ {'torchscript': 'pt'}.get(fmt, fmt) }"
    code, out, err = run(capsys, "export", "--ckpt", tiny_ckpt, "--format", fmt, "-o", target)
    assert code == 0, err
    x = torch.rand(2, 3, 36, 52)
    reference = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cpu", precision="fp32").stylize_tensor(x)
    if fmt == "safetensors":
        got = Stylizer.from_checkpoint(target, backend="torch", device="cpu", precision="fp32").stylize_tensor(x)
    elif fmt == "torchscript":
        got = torch.jit.load(str(target))(x)
    else:
        got = Stylizer.from_checkpoint(target).stylize_tensor(torch.rand(1, 3, 37, 45))  # odd size: padded for ONNX
        assert got.shape == (1, 3, 37, 45)
        got = Stylizer.from_checkpoint(target).stylize_tensor(x)
    max_diff = (got - reference).abs().max().item()
    print(f"{fmt}: max abs difference vs PyTorch {max_diff:.2e}")
    assert max_diff < 1e-4
    code, _, err = run(capsys, "export", "--ckpt", tiny_ckpt, "--format", fmt, "-o", target)
    assert code == 2 and "exists" in err


def test_half_export_is_half_the_file_and_within_one_8bit_level(tmp_path, tiny_ckpt, capsys):
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    assert run(capsys, "export", "--ckpt", tiny_ckpt, "--format", "safetensors", "-o", full)[0] == 0
    code, out, err = run(capsys, "export", "--ckpt", tiny_ckpt, "--format", "safetensors", "--half", "-o", half)
    assert code == 0 and "fp16" in out, err
    assert half.stat().st_size < 0.6 * full.stat().st_size
    x = torch.rand(1, 3, 40, 48)
    a, b = (
        Stylizer.from_checkpoint(p, backend="torch", device="cpu", precision="fp32").stylize_tensor(x)
        for p in (full, half)
    )
    assert 0 < (a - b).abs().max().item() < 1 / 255
    assert load_network(half).info == load_network(full).info
    code, _, err = run(capsys, "export", "--ckpt", tiny_ckpt, "--format", "onnx", "--half", "-o", tmp_path / "n.onnx")
    assert code == 2 and "fp16" in err and err.count("\n") == 1


def test_export_of_several_checkpoints_averages_their_weights(tmp_path, tiny_net, capsys):
    from fastnst.checkpoint import save_network
    from fastnst.models.transformer_net import TransformerNet, TransformerNetConfig

    paths = []
    for step in (100, 200):
        torch.manual_seed(step)
        net = TransformerNet(tiny_net.config)
        paths.append(save_network(net, tmp_path / f"step{step}.safetensors", {"style": "tiny", "steps": step}))
    target = tmp_path / "mean.safetensors"
    code, out, err = run(capsys, "export", "--ckpt", *paths, "--format", "safetensors", "-o", target)
    assert code == 0 and "mean of 2" in out, err
    mean, a, b = (load_network(p) for p in (target, *paths))
    for key, value in mean.net.state_dict().items():
        assert torch.allclose(value, (a.net.state_dict()[key] + b.net.state_dict()[key]) / 2)
    assert mean.info.steps == 200 and mean.info.extra["averaged"] == ["step100.safetensors", "step200.safetensors"]
    wider = save_network(
        TransformerNet(TransformerNetConfig(width=0.5, num_residual_blocks=1)), tmp_path / "w.safetensors"
    )
    code, _, err = run(
        capsys, "export", "--ckpt", paths[0], wider, "--format", "safetensors", "-o", tmp_path / "x.safetensors"
    )
    assert code == 2 and "cannot average" in err and err.count("\n") == 1


def test_onnxruntime_backend_exports_once_and_matches_torch(tmp_path, tiny_ckpt, capsys, monkeypatch):
    pytest.importorskip("onnxruntime", reason="onnxruntime is an optional extra: pip install 'fastnst[onnx]'")
    import numpy as np
    from PIL import Image

    monkeypatch.setenv("FASTNST_CACHE_DIR", str(tmp_path / "cache"))
    photo = write_photo(tmp_path / "p.png", size=(50, 38))
    outs = {}
    for backend in ("torch", "onnxruntime", "onnxruntime"):
        target = tmp_path / f"{backend}.png"
        code, _, err = run(capsys, "stylize", "--ckpt", tiny_ckpt, photo, "--output", target, "--quiet",
                           "--backend", backend, "--precision" if backend == "torch" else "--device",
                           "fp32" if backend == "torch" else "cpu", "--overwrite")  # fmt: skip
        assert code == 0, err
        outs[backend] = np.asarray(Image.open(target), dtype=np.int16)
        if backend == "onnxruntime":
            (exported,) = (tmp_path / "cache" / "onnx").glob("*.onnx")  # one export, reused by the second run
            stamp = outs.setdefault("stamp", exported.stat().st_mtime_ns)
            assert exported.stat().st_mtime_ns == stamp
    assert outs["onnxruntime"].shape == outs["torch"].shape == (38, 50, 3)
    assert np.abs(outs["onnxruntime"] - outs["torch"]).max() <= 1  # same network, 8-bit rounding apart
    code, _, err = run(capsys, "stylize", "--ckpt", tiny_ckpt, photo, "-o", tmp_path, "--backend", "onnxruntime",
                       "--precision", "bf16")  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "drop --precision bf16 or use --backend torch" in err
    code, _, err = run(capsys, "stylize", "--ckpt", tiny_ckpt, photo, "-o", tmp_path, "--backend", "onnxruntime",
                       "--tile", "32")  # fmt: skip
    assert code == 2 and "--tile needs the torch backend" in err


def test_input_given_twice_is_done_once(tmp_path, tiny_ckpt, capsys):
    photo = write_photo(tmp_path / "p.png")
    code, out, err = run(capsys, "stylize", "--ckpt", tiny_ckpt, photo, photo, "-o", tmp_path / "o", "--quiet")
    assert code == 0 and "given more than once" in err and "stylized 1 image" in out


def test_piped_output_has_the_lines_and_no_progress_bars(tmp_path, photo_dir, tiny_ckpt, capsys):
    code, out, err = run(capsys, "stylize", "--ckpt", tiny_ckpt, photo_dir / "sub", "-o", tmp_path / "out")
    assert code == 0 and "stylized" in out  # captured: not a terminal, as in a log file or a CI job
    assert "━" not in err and "stylize" not in err


def test_unwritable_output_folder(tmp_path, tiny_ckpt, capsys):
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("a file where a folder should be")
        out_dir = blocker / "sub"  # root ignores permissions, not a file in the way
    else:
        out_dir = tmp_path / "ro"
        out_dir.mkdir(mode=0o500)
    photo = write_photo(tmp_path / "p.png")
    code, _, err = run(capsys, "stylize", "--ckpt", tiny_ckpt, photo, "-o", out_dir, "--quiet")
    assert code == 1 and "cannot write" in err and "p_tiny.png" in err


def test_ctrl_c_leaves_no_partial_files(tmp_path, tiny_ckpt):
    for i in range(300):
        write_photo(tmp_path / "in" / f"{i:03d}.png", size=(160, 120), seed=i)
    out_dir = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastnst.cli", "stylize", "--ckpt", str(tiny_ckpt), str(tmp_path / "in"), "-o", str(out_dir), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A suite run as a background job (`make test &`) inherits SIGINT ignored; Ctrl-C is the point here.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.time() + 60

    def finished() -> int:  # pathlib's glob also matches the hidden temporary files
        return sum(not p.name.startswith(".") for p in out_dir.glob("*.png"))

    while time.time() < deadline and finished() < 5:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err
    written = list(out_dir.iterdir())
    assert 5 <= len(written) < 300
    assert all(not p.name.startswith(".") for p in written)  # no temporary files
    for path in written:
        Image.open(path).load()  # every file is complete


def test_missing_output_folders_are_created(tmp_path, tiny_ckpt, capsys):
    photo = write_photo(tmp_path / "p.png")
    code, _, _ = run(capsys, "stylize", "--ckpt", tiny_ckpt, photo, "-o", tmp_path / "a" / "b" / "c", "--quiet")
    assert code == 0 and (tmp_path / "a" / "b" / "c" / "p_tiny.png").is_file()


def test_model_cards_travel_with_the_weights_and_write_the_readme_table(capsys):
    from fastnst.cli import style_table

    shipped = sorted((ROOT / "checkpoints").glob("*.safetensors"))
    assert main(["info", "--ckpt", str(ROOT / "checkpoints" / "great_wave.safetensors")]) == 0
    text = capsys.readouterr().out
    assert "Katsushika Hokusai, The Great Wave off Kanagawa (c. 1831)" in text and "evaluation: style distance" in text
    assert main(["info", "--table", "--ckpt", *map(str, shipped)]) == 0
    table = capsys.readouterr().out.strip()
    assert table == style_table(shipped) and "| `starry_night` | Vincent van Gogh, *The Starry Night* (1889) |" in table
    assert table in (ROOT / "README.md").read_text()  # the README shows what the cards say (make docs)
