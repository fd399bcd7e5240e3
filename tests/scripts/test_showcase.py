import numpy as np
from PIL import Image

from conftest import ROOT, load_script


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


def test_multi_style_picture_has_every_style_and_a_mixing_strip(tmp_path):
    import torch

    from fastnst.checkpoint import save_network
    from fastnst.models.multi_style import MultiStyleNet, MultiStyleNetConfig

    showcase = load_script("showcase")
    net = MultiStyleNet(MultiStyleNetConfig(width=0.25, num_residual_blocks=1, styles=("a", "b", "c")))
    with torch.no_grad():  # fresh rows are all equal: give each style its own
        for p in net.parameters():
            if p.dim() == 2:
                p.add_(torch.randn_like(p) * 0.5)
    ckpt = save_network(net, tmp_path / "m.safetensors")
    grid = showcase.multi_strips(ckpt, ROOT / "fastnst/assets/photos/chelsea.jpg", size=32, steps=5)
    columns, rows = 5, 2  # the photo + 3 styles (+ a blank), then 5 mixes
    assert grid.shape == (3, rows * 36 + 4, columns * 36 + 4)
    assert not torch.equal(grid[:, 4:36, 40:72], grid[:, 4:36, 76:108])  # styles a and b differ


def test_fit_sheet_shows_each_held_out_painting_predicted_and_fitted(tmp_path, arbitrary_ckpt):
    from conftest import write_photo

    showcase = load_script("showcase")
    for i in range(2):
        write_photo(tmp_path / "paintings" / f"m{i}" / f"p{i}.png", size=(64, 48), seed=60 + i)
    photo = write_photo(tmp_path / "photo.png", size=(48, 36), seed=3)
    out = tmp_path / "fit.png"
    args = [str(arbitrary_ckpt), "--paintings", str(tmp_path / "paintings"), "--held-out", "1.0", "--fit",
            "--fit-steps", "2", "--photos", str(photo), "-o", str(out)]  # fmt: skip
    assert showcase.main(args) == 0
    sheet = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert sheet.shape[1] == 6 * (220 + 6) + 6  # two paintings a row: painting, predicted, fitted
    assert sheet.shape[0] == 28 + (220 * 36 // 48 + 20 + 6) + 6  # one row: header, the 384 px pictures, captions
    assert np.abs(sheet[40:150, 232:452] - sheet[40:150, 458:678]).mean() > 1  # fitted differs from predicted
