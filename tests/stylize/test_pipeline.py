"""The stylize pipeline as a library: typed events, no argparse."""

import pytest
from PIL import Image

from fastnst.stylize import pipeline
from fastnst.stylize.stylizer import Stylizer

from conftest import write_photo


def test_plan_and_run_report_typed_events(tmp_path, tiny_ckpt):
    good = write_photo(tmp_path / "in" / "good.png", size=(40, 30))
    other = write_photo(tmp_path / "in" / "sub" / "other.jpg", size=(40, 30), seed=3)
    (tmp_path / "in" / "bad.png").write_text("not an image")
    kept = tmp_path / "out" / "kept_tiny.png"
    write_photo(tmp_path / "in" / "kept.png")
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"keep me")
    options = pipeline.StylizeOptions(output_dir=tmp_path / "out", batch_size=2, size=20)
    stylizer = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cpu", precision="fp32")
    plan = pipeline.plan_jobs([tmp_path / "in", good, tmp_path / "missing.jpg"], stylizer.style, options)
    assert sorted(s.kind for s in plan.skipped) == ["duplicate", "kept"]
    assert [str(f) for f in plan.failed] == [f"{tmp_path / 'missing.jpg'}: no such file or folder"]
    events = list(pipeline.run(stylizer, plan, options))
    written = {e.job.source.name: e for e in events if isinstance(e, pipeline.Written)}
    failed = [e for e in events if isinstance(e, pipeline.Failed)]
    assert set(written) == {"good.png", "other.jpg"}
    assert [f.path.name for f in failed] == ["bad.png"] and failed[0].reason == "not an image Pillow can read"
    assert Image.open(tmp_path / "out" / "sub" / "other_tiny.jpg").size == (20, 15)
    assert kept.read_bytes() == b"keep me"
    assert all(e.ms > 0 and e.pixels == 300 for e in written.values())
    assert other.is_file()


def test_options_are_checked_before_anything_runs(tmp_path, tiny_ckpt):
    stylizer = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cpu")
    for bad, words in [
        (dict(strength=2.0), "--strength 2.0: must be between 0 and 1"),
        (dict(size=2), "--size must be >= 4 px"),
        (dict(tile=8), "--tile >= 16 px"),
        (dict(size=10, scale=0.5), "exclude each other"),
    ]:
        with pytest.raises(pipeline.OptionsError, match=words):
            pipeline.check_options(stylizer, pipeline.StylizeOptions(**bad))
    photo = write_photo(tmp_path / "p.png")
    with pytest.raises(pipeline.OptionsError, match="--output names one file but 2 outputs"):
        pipeline.plan_jobs(
            [photo, write_photo(tmp_path / "q.png")], "x", pipeline.StylizeOptions(output=tmp_path / "o.png")
        )
