import pytest
import torch

from fastnst.cli import main
from fastnst.evaluate import Judge
from fastnst.models.vgg import VGGFeatures
from fastnst.optimize import GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS, GatysConfig, gatys

from conftest import write_photo


@pytest.fixture(scope="module")
def vgg():
    return VGGFeatures([*GATYS_STYLE_LAYERS, *GATYS_CONTENT_LAYERS])


def stripes(size=48):
    x = torch.linspace(0, 12, size)
    return (
        torch.stack(
            [torch.sin(x).expand(size, size), torch.cos(x).expand(size, size).T, torch.full((size, size), 0.2)]
        ).unsqueeze(0)
        * 0.5
        + 0.5
    )


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_gatys_moves_towards_the_style(vgg, optimizer):
    torch.manual_seed(0)
    photo = torch.rand(1, 3, 48, 48) * 0.2 + 0.4
    style = stripes()
    judge = Judge(style, vgg)
    out = gatys(photo, style, vgg, GatysConfig(steps=15, optimizer=optimizer, lr=0.05))
    assert out.shape == photo.shape and 0 <= out.min() and out.max() <= 1
    before = judge.score(photo, photo, 0).style_distance
    after = judge.score(out, photo, 0).style_distance
    assert after < 0.7 * before


def test_coarse_to_fine_returns_full_size_and_counts_steps(vgg):
    seen = []
    out = gatys(
        torch.rand(1, 3, 128, 130),
        stripes(),
        vgg,
        GatysConfig(steps=4, coarse_to_fine=True),
        lambda s, _: seen.append(s),
    )
    assert out.shape == (1, 3, 128, 130)
    assert max(seen) == 4


def test_optimize_cli(tmp_path, capsys):
    content, style = write_photo(tmp_path / "c.png", size=(40, 32)), write_photo(tmp_path / "s.png", seed=3)
    out = tmp_path / "out.png"
    assert (
        main(
            [
                "optimize",
                "--content",
                str(content),
                "--style",
                str(style),
                "-o",
                str(out),
                "--size",
                "40",
                "--steps",
                "3",
            ]
        )
        == 0
    )
    from PIL import Image

    assert Image.open(out).size == (40, 32)
    assert main(["optimize", "--content", str(content), "--style", str(style), "-o", str(out), "--steps", "1"]) == 2
    assert "exists" in capsys.readouterr().err


def test_evaluate_writes_report_and_contact_sheet(tmp_path, tiny_ckpt, capsys):
    for i in range(2):
        write_photo(tmp_path / "p" / f"{i}.png", size=(40, 30), seed=i)
    style = write_photo(tmp_path / "style.png", seed=7)
    out = tmp_path / "report"
    code = main(["evaluate", "--ckpt", str(tiny_ckpt), "--style", str(style), "--images", str(tmp_path / "p"),
                 "-o", str(out), "--size", "40", "--compare-optimize", "--optimize-steps", "3"])  # fmt: skip
    assert code == 0
    import json

    report = json.loads((out / "report.json").read_text())
    net = tiny_ckpt.stem
    assert len(report["photos"]) == 2 and set(report["mean"]) == {net, "gatys"}
    assert all(0 <= e[net]["ssim"] <= 1 and e["gatys"]["ms"] > 0 for e in report["photos"])
    assert f"{net} vs Gatys: style distance" in (out / "report.md").read_text()
    from PIL import Image

    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.width > 4 * 256 and sheet.height > 2 * 30  # 4 columns, 2 rows
    assert "mean style distance" in capsys.readouterr().out


def test_evaluate_reuses_cached_gatys_results(tmp_path, tiny_ckpt):
    import json

    write_photo(tmp_path / "p" / "0.png", size=(40, 30))
    style = write_photo(tmp_path / "style.png", seed=7)
    cache = tmp_path / "cache"

    def run(name, *extra):
        args = ["evaluate", "--ckpt", str(tiny_ckpt), "--style", str(style), "--images", str(tmp_path / "p"),
                "-o", str(tmp_path / name), "--size", "40", "--compare-optimize", "--cache-dir", str(cache), *extra]  # fmt: skip
        assert main(args) == 0
        return json.loads((tmp_path / name / "report.json").read_text())["photos"][0]

    first = run("a", "--optimize-steps", "3")
    again = run("b", "--optimize-steps", "3")
    assert not first["gatys_cached"] and again["gatys_cached"]
    assert again["gatys"] == first["gatys"]  # same image, same scores, the original run's time
    assert "came from the cache" in (tmp_path / "b" / "report.md").read_text()
    assert not run("c", "--optimize-steps", "4")["gatys_cached"]  # other settings: optimised again
    for f in (cache / "gatys").iterdir():
        f.write_bytes(b"truncated")
    redone = run("d", "--optimize-steps", "3")
    assert not redone["gatys_cached"] and redone["gatys"]["style_distance"] == pytest.approx(
        first["gatys"]["style_distance"], rel=1e-4
    )
    assert not run("e", "--optimize-steps", "3", "--no-cache")["gatys_cached"]


def test_evaluate_compares_several_networks_side_by_side(tmp_path, tiny_ckpt):
    import json

    from PIL import Image

    from fastnst.evaluate import checkpoint_labels

    other = tmp_path / "b" / tiny_ckpt.name
    other.parent.mkdir()
    other.write_bytes(tiny_ckpt.read_bytes())
    write_photo(tmp_path / "p.png", size=(40, 30))
    style = write_photo(tmp_path / "style.png", seed=7)
    labels = checkpoint_labels([tiny_ckpt, other])
    assert labels == [f"{tiny_ckpt.parent.name}/{tiny_ckpt.stem}", f"b/{tiny_ckpt.stem}"]
    code = main(["evaluate", "--ckpt", str(tiny_ckpt), str(other), "--style", str(style),
                 "--images", str(tmp_path / "p.png"), "-o", str(tmp_path / "r"), "--size", "40"])  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert list(report["mean"]) == labels
    # The same weights give the same scores in both columns.
    a, b = (report["photos"][0][label] for label in labels)
    assert a["style_distance"] == pytest.approx(b["style_distance"]) and a["ssim"] == pytest.approx(b["ssim"])
    assert Image.open(tmp_path / "r" / "contact_sheet.png").width > 4 * 256  # photo, painting, two networks


def test_contact_sheet_rows_fit_their_images():
    from PIL import Image

    from fastnst.evaluate import contact_sheet

    wide, tall = Image.new("RGB", (512, 256), "red"), Image.new("RGB", (200, 400), "blue")
    sheet = contact_sheet([[wide, wide], [wide, tall]], ["a", "b"], [["x", "y"], ["", ""]])
    # Row 1: two 256 x 128 thumbnails, so 128 px tall; row 2 is as tall as the portrait (256 px).
    assert sheet.size == (2 * (256 + 6) + 6, 28 + (128 + 26) + (256 + 26) + 6)
    assert sheet.getpixel((6 + 128, 28 + 64)) == (255, 0, 0)  # row 1's first image, centred in its cell
    assert sheet.getpixel((6 + 262 + 128, 28 + 154 + 128)) == (0, 0, 255)  # the portrait in row 2
