"""One network, many styles: conditional instance norm, mixing, every backend, the command line."""

import pytest
import torch

from fastnst.checkpoint import load_network, save_network
from fastnst.models.multi_style import MultiStyleNet, MultiStyleNetConfig, mix_weights
from fastnst.stylize.stylizer import Stylizer

from conftest import MULTI_STYLES as STYLES


def test_styles_mix_by_interpolating_their_norms(multi_ckpt):
    net = load_network(multi_ckpt).net
    assert net.styles == STYLES
    x = torch.rand(2, 3, 24, 28)
    wave, night = net(x, mix_weights(STYLES, "wave")), net(x, mix_weights(STYLES, "night"))
    assert (wave - night).abs().max() > 0.05
    half = net(x, mix_weights(STYLES, {"wave": 1, "night": 1}))
    assert (half - wave).abs().max() > 1e-3 and (half - night).abs().max() > 1e-3
    assert torch.allclose(
        net(x, mix_weights(STYLES, "wave=0.7,night=0.3")), net(x, mix_weights(STYLES, {"wave": 7, "night": 3}))
    )
    per_sample = net(x, torch.stack([mix_weights(STYLES, "wave"), mix_weights(STYLES, "night")]))
    assert torch.allclose(per_sample[0], wave[0], atol=1e-6) and torch.allclose(per_sample[1], night[1], atol=1e-6)
    for bad, words in [("nope", "unknown style 'nope'; this network has wave, night, scream"),
                       ("wave=-1,night=2", "must be >= 0"), ("wave=x", "is not a number"), ({"wave": 0}, "not all 0")]:  # fmt: skip
        with pytest.raises(ValueError, match=words):
            mix_weights(STYLES, bad)


def test_a_style_costs_under_one_percent_of_the_file(tmp_path):
    sizes = {}
    for n in (2, 3):
        net = MultiStyleNet(MultiStyleNetConfig(styles=tuple(f"s{i}" for i in range(n))))
        sizes[n] = save_network(net, tmp_path / f"{n}.safetensors").stat().st_size
    assert (sizes[3] - sizes[2]) / sizes[2] < 0.01


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_one_exported_file_serves_every_style_and_mix(multi_ckpt, tmp_path, backend):
    pytest.importorskip(backend)
    reference = Stylizer.from_checkpoint(multi_ckpt, backend="torch", device="cpu", precision="fp32")
    exported = Stylizer.from_checkpoint(multi_ckpt, backend=backend, precision="fp32", cache_dir=tmp_path)
    assert exported.styles == STYLES
    x = torch.rand(2, 3, 30, 38)
    for style in (*STYLES, "wave=0.25,scream=0.75"):
        diff = (exported.stylize_tensor(x, style=style) - reference.stylize_tensor(x, style=style)).abs().max()
        assert diff < 1e-4, (style, float(diff))


def test_bf16_runs_and_stays_close_to_fp32(multi_ckpt):
    x = torch.rand(1, 3, 32, 40)
    fp32 = Stylizer.from_checkpoint(multi_ckpt, backend="torch", device="cpu", precision="fp32")
    bf16 = Stylizer.from_checkpoint(multi_ckpt, backend="torch", device="cpu", precision="bf16")
    a, b = fp32.stylize_tensor(x, style="night"), bf16.stylize_tensor(x, style="night")
    assert 0 < (a - b).abs().mean() < 0.03


def test_api_tiles_and_refusals(multi_ckpt):
    from PIL import Image

    stylizer = Stylizer.from_checkpoint(multi_ckpt, backend="torch", device="cpu", precision="fp32")
    assert stylizer.stylize(Image.new("RGB", (30, 20), "red"), style="night").size == (30, 20)
    x = torch.rand(1, 3, 120, 100)
    whole = stylizer.stylize_tensor(x, style="scream")
    assert (stylizer.stylize_tiled(x, 48, style="scream") - whole).abs().max() < 1e-4
    with pytest.raises(ValueError, match="choose a style"):
        stylizer.stylize_tensor(x)


def test_command_line_one_style_a_mix_all_and_info(multi_ckpt, tmp_path, capsys):
    from fastnst.cli import main

    from conftest import write_photo

    photo = write_photo(tmp_path / "p.png", size=(40, 30))
    base = [
        "stylize",
        "--ckpt",
        str(multi_ckpt),
        str(photo),
        "-o",
        str(tmp_path / "out"),
        "--backend",
        "torch",
        "--quiet",
    ]
    assert main([*base, "--style", "all"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p_night.png", "p_scream.png", "p_wave.png"]
    assert main([*base, "--style", "wave=0.7,night=0.3"]) == 0
    assert (tmp_path / "out" / "p_wave70_night30.png").is_file()
    capsys.readouterr()
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "a multi-style network: add --style with one of wave, night, scream" in err and err.count("\n") == 1
    assert main([*base, "--style", "nope"]) == 2 and "unknown style 'nope'" in capsys.readouterr().err
    assert main(["info", "--ckpt", str(multi_ckpt)]) == 0 and "wave, night, scream" in capsys.readouterr().out


def test_info_shows_each_style_painting_of_a_multi_style_network(multi_ckpt, tmp_path, capsys):
    from fastnst.cli import main

    paintings = {s: {"file": f"{s}.jpg", "sha256": f"{i}" * 64, "size": 512} for i, s in enumerate(STYLES)}
    path = save_network(load_network(multi_ckpt).net, tmp_path / "m.safetensors", {"paintings": paintings})
    assert main(["info", "--ckpt", str(path)]) == 0
    rows = dict(
        line.split(None, 2)[1:] for line in capsys.readouterr().out.splitlines() if line.startswith("painting ")
    )
    assert rows == {s: f"{s}.jpg (sha256 {str(i) * 12}, 512 px)" for i, s in enumerate(STYLES)}


def test_evaluate_scores_one_style_of_a_multi_style_network(multi_ckpt, tmp_path, capsys):
    import json

    from fastnst.cli import main

    from conftest import write_photo

    write_photo(tmp_path / "p" / "0.png", size=(40, 30))
    style = write_photo(tmp_path / "painting.png", seed=3)
    base = ["evaluate", "--ckpt", str(multi_ckpt), "--style", str(style), "--images", str(tmp_path / "p"),
            "--size", "40", "--style-size", "40"]  # fmt: skip
    assert main([*base, "-o", str(tmp_path / "r")]) == 2 and "--network-style" in capsys.readouterr().err
    scores = {}
    for name in ("wave", "night"):
        assert main([*base, "-o", str(tmp_path / name), "--network-style", name]) == 0
        scores[name] = json.loads((tmp_path / name / "report.json").read_text())["mean"]["multi"]["style_distance"]
    assert scores["wave"] != scores["night"]


def test_auto_measures_every_backend_for_a_multi_style_network(multi_ckpt, tmp_path):
    pytest.importorskip("onnxruntime")
    from fastnst.backends.auto import choose

    choice = choose(multi_ckpt, tmp_path)
    ran = set(choice.timings) | {k for k, why in choice.dropped.items() if "a pass" in why}  # timed or outpaced
    assert {"torch fp32", "onnxruntime fp32", "openvino fp32", "openvino int8"} <= ran  # with style weights
    from fastnst.backends.openvino import int8_verdict

    verdict = int8_verdict(next((tmp_path / "openvino").rglob("int8.xml")))
    assert verdict is not None and verdict["photos"]  # int8 quantized over its styles and checked against fp32
    stylizer = Stylizer.from_checkpoint(multi_ckpt, backend="auto", cache_dir=tmp_path)
    assert stylizer.stylize_tensor(torch.rand(1, 3, 20, 20), style="wave").shape == (1, 3, 20, 20)
