"""fastnst stylize-dataset: the tree mirrored, a manifest, broken files listed, resumable, two engines alike."""

import csv
import os

import numpy as np
import pytest
from PIL import Image

from fastnst.cli import main
from fastnst.dataset import DatasetError, DatasetOptions, stylize_dataset
from fastnst.dataset.plan import draw, plan

from conftest import write_photo


@pytest.fixture
def tree(tmp_path):
    """Two classes of small photos, and a broken, a truncated and an empty file among them."""
    root = tmp_path / "src"
    for i in range(5):
        write_photo(root / "cat" / f"c{i}.jpg", size=(40, 32), seed=i)
        write_photo(root / "dog" / f"d{i}.png", size=(36, 28) if i % 2 else (40, 32), seed=10 + i)
    (root / "dog" / "notes.jpg").write_text("not an image")
    (root / "cat" / "cut.jpg").write_bytes((root / "cat" / "c0.jpg").read_bytes()[:300])
    (root / "cat" / "empty.png").write_bytes(b"")
    return root


def rows(dst):
    with open(dst / "manifest.csv", newline="") as f:
        return {row["source"]: row for row in csv.DictReader(f)}


def options(tree, dst, ckpt, **extra):
    return DatasetOptions(src=str(tree), dst=str(dst), ckpt=str(ckpt), backend="torch", batch_size=3, **extra)


def test_the_tree_is_mirrored_broken_files_listed_and_a_rerun_writes_nothing(tree, tmp_path, multi_ckpt):
    dst = tmp_path / "out"
    summary = stylize_dataset(options(tree, dst, multi_ckpt, style="wave,night"))
    assert summary.written == 10 and sorted(r["source"] for r in summary.failed) == ["cat/cut.jpg", "cat/empty.png",
                                                                                     "dog/notes.jpg"]  # fmt: skip
    assert sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.*") if "manifest" not in p.name) == sorted(
        [f"cat/c{i}.jpg" for i in range(5)] + [f"dog/d{i}.png" for i in range(5)]
    )  # same names, same formats, labels kept as folders
    table = rows(dst)
    assert table["dog/d1.png"]["width"] == "36" and table["dog/notes.jpg"]["status"] == "failed"
    assert {table[s]["style"] for s in table if table[s]["status"] == "done"} == {"wave", "night"}  # drawn
    assert "not an image" in table["dog/notes.jpg"]["error"] and (dst / "manifest.parquet").is_file()
    before = {p: p.stat().st_mtime_ns for p in dst.rglob("*.jpg")}
    again = stylize_dataset(options(tree, dst, multi_ckpt, style="wave,night"))
    assert again.written == 0 and again.kept == 10 and len(again.failed) == 3
    assert {p: p.stat().st_mtime_ns for p in dst.rglob("*.jpg")} == before  # nothing rewritten
    assert len(rows(dst)) == 13


def test_the_style_depends_only_on_seed_and_path():
    sources = [f"class{i % 3}/img{i}.jpg" for i in range(40)]
    styles = ["a", "b", "c", "d"]
    full = {t.source: t.style for t in plan(sources, 7, styles)}
    part = {t.source: t.style for t in plan(list(reversed(sources[::3])), 7, styles)}
    assert all(full[s] == style for s, style in part.items())  # another order, another subset: the same draws
    assert len(set(full.values())) == 4 and full != {t.source: t.style for t in plan(sources, 8, styles)}
    assert draw(7, "class0/img0.jpg", 4) == draw(7, "class0/img0.jpg", 4)


def test_killed_midway_then_run_again_loses_nothing_and_redoes_nothing(tree, tmp_path, multi_ckpt):
    dst = tmp_path / "out"

    def stop_after_four(done, total):
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stylize_dataset(options(tree, dst, multi_ckpt, style="wave"), on_progress=stop_after_four)
    first = {p: p.stat().st_mtime_ns for p in dst.rglob("*") if p.suffix in (".jpg", ".png")}
    assert 4 <= len(first) < 10 and not list(dst.rglob(".*.tmp*"))  # no half-written file
    resumed = stylize_dataset(options(tree, dst, multi_ckpt, style="wave"))
    assert resumed.kept >= 4 and resumed.written == 10 - resumed.kept
    assert all(p.stat().st_mtime_ns == t for p, t in first.items())  # what was finished was not redone
    assert sum(1 for r in rows(dst).values() if r["status"] == "done") == 10
    redo = stylize_dataset(options(tree, dst, multi_ckpt, style="wave", overwrite=True))
    assert redo.written == 10 and redo.kept == 0


def test_paintings_drawn_per_image_with_their_hash(tree, tmp_path, arbitrary_ckpt):
    paintings = tmp_path / "paintings"
    for i in range(3):
        write_photo(paintings / f"school{i}" / f"p{i}.jpg", size=(64, 64), seed=30 + i)
    dst = tmp_path / "out"
    summary = stylize_dataset(options(tree, dst, arbitrary_ckpt, style_images=str(paintings), fmt="png"))
    assert summary.written == 10 and (dst / "cat" / "c0.png").is_file()  # --format png
    styles = {r["style"] for r in rows(dst).values() if r["status"] == "done"}
    assert len(styles) > 1 and all(s.startswith("painting:school") and "@" in s for s in styles)


def test_cli_exit_status_and_one_line_errors(tree, tmp_path, multi_ckpt, capsys):
    dst = tmp_path / "out"
    args = ["stylize-dataset", str(tree), str(dst), "--ckpt", str(multi_ckpt), "--backend", "torch", "--quiet"]
    assert main([*args, "--style", "wave"]) == 1  # three broken inputs
    err = capsys.readouterr()
    assert "stylized 10 images" in err.out and "3 failed" in err.out and "failed: dog/notes.jpg" in err.err
    (tree / "cat" / "cut.jpg").unlink()
    (tree / "cat" / "empty.png").unlink()
    (tree / "dog" / "notes.jpg").unlink()
    assert main([*args, "--style", "wave"]) == 0
    assert main(["stylize-dataset", str(tree), str(tree / "inside"), "--ckpt", str(multi_ckpt)]) == 2
    assert "inside the source folder" in capsys.readouterr().err
    assert main(["stylize-dataset", str(tmp_path / "nope"), str(dst), "--ckpt", str(multi_ckpt)]) == 2
    with pytest.raises(DatasetError, match="would both write"):
        plan(["a.png", "a.jpg"], 0, ["x"], "jpg")


def test_ray_missing_is_one_line(tree, tmp_path, tiny_ckpt, monkeypatch, capsys):
    import builtins

    real = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name.startswith("ray") else real(name, *a, **k))  # fmt: skip
    args = ["stylize-dataset", str(tree), str(tmp_path / "out"), "--ckpt", str(tiny_ckpt), "--engine", "ray"]
    assert main([*args, "--backend", "torch", "--quiet"]) == 2
    assert "pip install 'fastnst[ray]'" in capsys.readouterr().err


def test_the_ray_engine_writes_what_the_local_one_writes(tree, tmp_path, multi_ckpt):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'fastnst[ray]'")
    local, distributed = tmp_path / "local", tmp_path / "ray"
    stylize_dataset(options(tree, local, multi_ckpt, style="wave,night"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = stylize_dataset(options(tree, distributed, multi_ckpt, style="wave,night"), engine="ray", actors=1,
                                  cpus_per_actor=1)  # fmt: skip
    finally:
        ray.shutdown()
    assert summary.written == 10 and len(summary.failed) == 3
    assert rows(local) == rows(distributed)
    for path in local.rglob("*.png"):
        a = np.asarray(Image.open(path), np.int16)
        b = np.asarray(Image.open(distributed / path.relative_to(local)), np.int16)
        assert np.abs(a - b).max() <= 1, path  # the same picture (PNG: lossless)
    assert os.environ.get("RAY_ADDRESS") is None
