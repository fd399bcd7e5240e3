import os
import random

import pytest
import torch

from fastnst.data import DataError, ImageFolderDataset, collate, find_images, random_crop, resize_short_side

from conftest import write_photo


def test_find_images_recursive_any_case(photo_dir):
    (photo_dir / "notes.txt").write_text("not an image")
    files = find_images(photo_dir)
    assert len(files) == 6
    assert {f.suffix for f in files} == {".jpg", ".PNG", ".jpeg"}


def test_symlink_loop_does_not_hang(photo_dir):
    os.symlink(photo_dir, photo_dir / "sub" / "loop")
    assert len(find_images(photo_dir)) == 6


def test_empty_folder_names_the_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty.*no images"):
        find_images(tmp_path / "empty")
    with pytest.raises(DataError, match="not found"):
        find_images(tmp_path / "missing")


def test_exclude_holds_out_a_folder(photo_dir):
    kept = find_images(photo_dir, exclude=["sub/*"])
    assert [f.name for f in kept] == [f"img{i}.jpg" for i in range(4)]
    assert len(find_images(photo_dir, exclude=["*.PNG"])) == 5  # case-sensitive, as globs are on Linux
    with pytest.raises(DataError, match=r"after excluding \['\*'\].*data.exclude"):
        find_images(photo_dir, exclude=["*"])


def test_crops_are_square_and_deterministic(photo_dir):
    ds = ImageFolderDataset(find_images(photo_dir), image_size=32)
    a, b = ds[1]["image"], ds[1]["image"]
    assert a.shape == (3, 32, 32) and torch.equal(a, b)
    assert 0 <= a.min() and a.max() <= 1


def test_small_image_is_upscaled_to_the_crop(tmp_path):
    path = write_photo(tmp_path / "tiny.png", size=(10, 7))
    assert ImageFolderDataset([path], image_size=32)[0]["image"].shape == (3, 32, 32)


def test_bad_files_are_skipped_and_reported(photo_dir):
    (photo_dir / "broken.jpg").write_bytes(b"")
    (photo_dir / "text.png").write_text("hello")
    files = find_images(photo_dir)
    ds = ImageFolderDataset(files, image_size=32)
    items = [ds[i] for i in range(len(ds))]
    batch = collate(items)
    assert batch["image"].shape == (len(files), 3, 32, 32)
    reported = " ".join(batch["skipped"])
    assert "broken.jpg" in reported and "text.png" in reported


def test_resize_and_random_crop_bounds():
    from PIL import Image

    image = resize_short_side(Image.new("RGB", (300, 100)), 50)
    assert image.size == (150, 50)
    crop = random_crop(image, 50, random.Random(0))
    assert crop.size == (50, 50)
