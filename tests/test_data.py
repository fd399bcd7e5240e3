import os
import random

import pytest
import torch

from fastnst.data import (
    DataError,
    ImageFolderDataset,
    StreamSampler,
    collate,
    find_images,
    random_crop,
    resize_short_side,
)

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


def test_crops_are_reproducible_and_new_every_epoch(tmp_path):
    files = [write_photo(tmp_path / f"p{i}.png", size=(120, 90), seed=i) for i in range(3)]
    ds = ImageFolderDataset(files, image_size=32, seed=5, scale_jitter=2.0, flip=True)
    a = ds[(0, 1)]["image"]
    assert a.shape == (3, 32, 32) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(
        a, ImageFolderDataset(files, image_size=32, seed=5, scale_jitter=2.0, flip=True)[(0, 1)]["image"]
    )
    later = [ds[(epoch, 1)]["image"] for epoch in range(1, 6)]
    assert all(not torch.equal(a, b) for b in later), "the same crop came back in another epoch"
    other_seed = ImageFolderDataset(files, image_size=32, seed=6, scale_jitter=2.0, flip=True)[(0, 1)]["image"]
    assert not torch.equal(a, other_seed)


def test_scale_jitter_shows_the_photo_at_several_scales(tmp_path):
    # A 32 px photo with a white square in the middle: without jitter every 32 px crop is the whole
    # photo; with jitter it is enlarged up to 64 px first, so the square's share of the crop varies.
    from PIL import Image

    img = Image.new("RGB", (32, 32))
    img.paste((255, 255, 255), (8, 8, 24, 24))
    img.save(tmp_path / "square.png")
    plain = ImageFolderDataset([tmp_path / "square.png"], image_size=32, seed=0)
    jitter = ImageFolderDataset([tmp_path / "square.png"], image_size=32, seed=0, scale_jitter=2.0)
    assert len({round(float(plain[(e, 0)]["image"].mean()), 3) for e in range(20)}) == 1
    assert len({round(float(jitter[(e, 0)]["image"].mean()), 3) for e in range(20)}) > 5
    with pytest.raises(DataError, match="scale_jitter=0.5"):
        ImageFolderDataset([tmp_path / "square.png"], scale_jitter=0.5)


def test_stream_sampler_epochs_ranks_and_resume():
    take = lambda sampler, n: [k for _, k in zip(range(n), sampler)]  # noqa: E731
    stream = take(StreamSampler(10, seed=1), 30)
    epochs = [sorted(i for e, i in stream if e == epoch) for epoch in range(3)]
    assert all(indices == list(range(10)) for indices in epochs)  # every photo once per epoch
    assert [i for _, i in stream[:10]] != [i for _, i in stream[10:20]]  # a new order every epoch
    assert take(StreamSampler(10, seed=1, start=13), 17) == stream[13:]  # resumed mid-stream: same keys
    rank0, rank1 = take(StreamSampler(10, 1, 0, 0, 2), 5), take(StreamSampler(10, 1, 0, 1, 2), 5)
    assert not {i for _, i in rank0} & {i for _, i in rank1}  # ranks split an epoch


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
