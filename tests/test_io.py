import os

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst.io import ImageReadError, make_grid, pil_to_tensor, read_image, save_image, tensor_to_pil

from conftest import write_photo


def test_exif_rotated_photo_comes_out_upright(tmp_path):
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :20] = 255  # left half white: wide image
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes())
    upright = read_image(path)
    assert upright.size == (20, 40)  # tall once the orientation is applied
    top, bottom = np.asarray(upright)[:5].mean(), np.asarray(upright)[-5:].mean()
    assert top > 200 and bottom < 50


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "I;16"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    suffix = ".jpg" if mode == "CMYK" else ".png"
    path = write_photo(tmp_path / f"img{suffix}", mode="L" if mode == "I;16" else mode)
    if mode == "I;16":
        grey = np.asarray(Image.open(path), dtype=np.uint16) * 257
        Image.fromarray(grey.astype("<u2")).save(path)  # 16-bit greyscale PNG
        assert Image.open(path).mode.startswith("I")
    image = read_image(path)
    assert image.mode == "RGB"
    assert 20 < np.asarray(image).mean() < 235  # not blown out or black (16-bit scaled right)


def test_palette_transparency_composited_on_white(tmp_path):
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.info["transparency"] = 0
    path = tmp_path / "p.png"
    image.save(path, transparency=0)
    assert np.asarray(read_image(path)).min() == 255


@pytest.mark.parametrize(
    "content, reason", [(b"", "cannot|not an image"), (b"hello, not a png", "not an image"), (None, "no such file")]
)
def test_bad_files_get_one_line_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason) as info:
        read_image(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_jpeg_is_an_error(tmp_path):
    path = write_photo(tmp_path / "full.jpg", size=(200, 200))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError, match="full.jpg"):
        read_image(path)


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    path = write_photo(tmp_path / "big.png", size=(64, 64))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageReadError, match="decompression bomb"):
        read_image(path)


def test_draft_mode_decodes_smaller_but_enough(tmp_path):
    path = write_photo(tmp_path / "large.jpg", size=(800, 600))
    image = read_image(path, min_short_side=128)
    assert 128 <= min(image.size) < 600


def test_tensor_round_trip_and_atomic_save(tmp_path):
    x = torch.rand(3, 10, 12)
    image = tensor_to_pil(x)
    assert (pil_to_tensor(image) - x).abs().max() <= 0.5 / 255 + 1e-6
    out = save_image(image, tmp_path / "a.png")
    assert out.exists() and [p.name for p in tmp_path.iterdir()] == ["a.png"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as readable as any new file, not private
    with pytest.raises(ValueError, match="unknown image extension"):
        save_image(image, tmp_path / "a.xyz")


def test_make_grid_layout():
    grid = make_grid(torch.zeros(3, 3, 4, 5), nrow=2, padding=1)
    assert grid.shape == (3, 2 * 5 + 1, 2 * 6 + 1)
    assert grid[:, 0].eq(1).all() and grid[:, 1, 1:6].eq(0).all()


def test_atomic_writes_get_a_new_files_usual_mode_and_leave_the_umask_alone(tmp_path):
    import os
    import subprocess
    import sys

    from fastnst.io import atomic_path

    code = "import os; os.umask(0o027); import fastnst.io, fastnst.cli; print(oct(os.umask(0o027)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "0o27"
    old = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "out.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
