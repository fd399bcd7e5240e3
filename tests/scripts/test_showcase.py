import numpy as np
from PIL import Image

from conftest import load_script


def test_showcase_grid_has_photos_on_top_and_one_row_per_network(tmp_path, photo_dir, tiny_ckpt, capsys):
    showcase = load_script("showcase")
    out = tmp_path / "grid.png"
    assert (
        showcase.main([str(tiny_ckpt), str(tiny_ckpt), "--photos", str(photo_dir), "--size", "32", "-o", str(out)]) == 0
    )
    grid = np.asarray(Image.open(out))
    assert grid.shape == (3 * 36 + 4, 6 * 36 + 4, 3)  # 3 rows (photos + 2 networks) of 6 squares, 4 px padding
    first_photo = grid[4:36, 4:36].astype(int)
    stylized = grid[40:72, 4:36].astype(int)
    assert np.abs(first_photo - stylized).mean() > 5  # the network row is not the photo row
    assert np.array_equal(grid[40:72], grid[76:108])  # same network, same row


def test_showcase_without_photos_is_one_line(tmp_path, tiny_ckpt, capsys):
    showcase = load_script("showcase")
    assert showcase.main([str(tiny_ckpt), "--photos", str(tmp_path / "none"), "-o", str(tmp_path / "g.jpg")]) == 1
    assert "none" in capsys.readouterr().err
