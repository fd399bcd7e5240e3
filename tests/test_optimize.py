import pytest
import torch

from fastnst.cli import main
from fastnst.evaluation import Judge
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
    before, after = judge.score(photo, photo, 0), judge.score(out, photo, 0)
    assert after.style_distance < 0.7 * before.style_distance
    assert after.objective < before.objective == pytest.approx(1.0)  # the judge's objective is the one it lowers


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
