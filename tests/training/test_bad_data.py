"""A training folder full of the files users really have: training goes on, bad files are named and counted."""

import os
from pathlib import Path

import numpy as np
from PIL import Image

import fastnst.training.train as train_script

from conftest import png_bomb, write_photo


def messy_folder(root: Path) -> dict[str, str]:
    """Write every kind of file; return bad file name -> expected words in its reason."""
    for i in range(3):
        write_photo(root / f"good{i}.jpg", seed=i)
    truncated = write_photo(root / "truncated.jpg", size=(300, 300), seed=10)
    truncated.write_bytes(truncated.read_bytes()[:600])
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.png").write_text("this is text")
    grey16 = (np.asarray(Image.open(write_photo(root / "g.png", mode="L")), dtype=np.uint16) * 257).astype("<u2")
    Image.fromarray(grey16).save(root / "deep16.png")
    write_photo(root / "cmyk.jpg", mode="CMYK", seed=3)
    write_photo(root / "palette.png", mode="P", seed=4)
    image = Image.open(root / "palette.png")
    image.save(root / "palette_transparent.png", transparency=0)
    write_photo(root / "grey.jpg", mode="L", seed=5)
    rotated = Image.open(write_photo(root / "rot.jpg", size=(60, 30)))
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(root / "rotated.jpg", exif=exif.tobytes())
    write_photo(root / "small.png", size=(9, 7))
    png_bomb(root / "bomb.png")
    (root / "sub").mkdir()
    os.symlink(root, root / "sub" / "loop")
    return {
        "truncated.jpg": "cannot decode",
        "empty.jpg": "",
        "notes.png": "not an image",
        "bomb.png": "decompression bomb",
    }


def test_training_survives_a_messy_folder(train_cfg, tmp_path):
    root = tmp_path / "messy"
    root.mkdir()
    bad = messy_folder(root)
    cfg = train_cfg(
        f"data.root={root}",
        "data.num_val_images=1",
        "data.batch_size=4",
        "trainer.max_steps=6",
        "~callbacks.style_samples",
    )
    result = train_script.train(cfg)
    assert result["steps"] == 6
    skipped = result["skipped_files"]
    for name, words in bad.items():
        reasons = [r for r in skipped if f"/{name}:" in r]
        assert reasons, f"{name} not reported in {skipped}"
        assert words in reasons[0]
    tags = __import__("test_train").scalars(tmp_path / "run")
    assert max(v for _, v in tags["data/skipped_files"]) == len(bad)
    assert not any(
        good in " ".join(skipped) for good in ("good0", "deep16", "cmyk", "palette", "grey.jpg", "rotated", "small")
    )
