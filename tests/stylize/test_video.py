from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av", reason="video needs PyAV: pip install 'fastnst[video]'")

from fastnst.cli import main  # noqa: E402
from fastnst.stylize.stylizer import Stylizer  # noqa: E402
from fastnst.stylize.video import VideoError, stylize_video  # noqa: E402

from conftest import ROOT  # noqa: E402


def make_clip(path, frames=24, fps=12, size=(64, 48), audio=True):
    """A still textured scene where a bright square comes and goes (it shifts every frame's
    instance-norm statistics), and a 440 Hz tone."""
    container = av.open(str(path), "w")
    video = container.add_stream("libx264", rate=fps)
    video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
    sound = container.add_stream("aac", rate=8000) if audio else None
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(frames):
        base = np.stack([xx % 32 * 8, (yy * 5) % 256, np.full_like(xx, 90)], -1)
        if i % 4 < 2:
            base[8:40, 30:62] = 250
        frame = av.VideoFrame.from_ndarray(base.astype(np.uint8), format="rgb24")
        frame.pts = i
        frame.time_base = Fraction(1, fps)
        container.mux(video.encode(frame))
    container.mux(video.encode())
    if sound is not None:
        samples_per_frame = 1024
        t = 0
        for _ in range(int(8000 * frames / fps) // samples_per_frame):
            tone = (0.3 * np.sin(2 * np.pi * 440 * (t + np.arange(samples_per_frame)) / 8000)).astype(np.float32)
            aframe = av.AudioFrame.from_ndarray(tone[None, :], format="fltp", layout="mono")
            aframe.sample_rate, aframe.pts = 8000, t
            t += samples_per_frame
            container.mux(sound.encode(aframe))
        container.mux(sound.encode())
    container.close()
    return path


def probe(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(video=0))
        c.seek(0)
        audio = [p for p in c.demux(c.streams.audio[0]) if p.size] if c.streams.audio else []
        return frames, float(v.average_rate), (v.codec_context.width, v.codec_context.height), len(audio)


def test_video_keeps_frames_rate_size_and_audio(tmp_path, tiny_ckpt):
    clip = make_clip(tmp_path / "clip.mp4")
    stylizer = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cpu", precision="fp32")
    report = stylize_video(stylizer, clip, tmp_path / "out.mp4", batch_size=5)
    frames, fps, size, audio_packets = probe(tmp_path / "out.mp4")
    src_frames, src_fps, src_size, src_audio = probe(clip)
    assert (frames, fps, size) == (src_frames, src_fps, src_size) == (24, 12.0, (64, 48))
    assert report.frames == 24 and report.audio_copied
    assert audio_packets == src_audio > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_stable_mode_lowers_flicker(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", size=(96, 64), audio=False)
    stylizer = Stylizer.from_checkpoint(
        ROOT / "checkpoints" / "starry_night.safetensors", backend="torch", device="cpu", precision="fp32"
    )
    plain = stylize_video(stylizer, clip, tmp_path / "plain.mp4")
    stable = stylize_video(stylizer, clip, tmp_path / "stable.mp4", stable=True)
    print(f"flicker ratio: plain {plain.flicker_ratio:.3f}, stable {stable.flicker_ratio:.3f}")
    assert stable.flicker_ratio < 0.9 * plain.flicker_ratio
    again = stylize_video(stylizer, clip, tmp_path / "again.mp4")  # the smoothing did not stay in the network
    assert again.flicker_output == pytest.approx(plain.flicker_output, rel=1e-6)


def test_corrupt_video_one_line_and_no_output(tmp_path, tiny_ckpt):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    stylizer = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cpu")
    with pytest.raises(VideoError, match="bad.mp4") as info:
        stylize_video(stylizer, bad, tmp_path / "out.mp4")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out.mp4").exists() and not list(tmp_path.glob(".out*"))


def test_cli_video_with_size(tmp_path, tiny_ckpt, capsys):
    clip = make_clip(tmp_path / "clip.mp4", frames=12)
    code = main(
        [
            "stylize",
            "--ckpt",
            str(tiny_ckpt),
            str(clip),
            "-o",
            str(tmp_path / "out"),
            "--size",
            "32",
            "--stable",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    frames, fps, size, audio = probe(tmp_path / "out" / "clip_tiny.mp4")
    assert frames == 12 and size == (32, 24) and audio > 0
    assert "frames/s" in out and "flicker" in out


class Boom(RuntimeError):
    pass


def test_failure_mid_video_stops_reader_and_writer_and_leaves_nothing(tmp_path, tiny_ckpt):
    import threading
    import time

    clip = make_clip(tmp_path / "clip.mp4", frames=48, audio=True)
    stylizer = Stylizer.from_checkpoint(tiny_ckpt, backend="torch", device="cpu", precision="fp32")
    calls = {"n": 0}
    forward = stylizer.forward

    def failing(x, weights=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Boom("injected failure on the third batch")
        return forward(x, weights)

    stylizer.forward = failing
    before = threading.active_count()
    t0 = time.time()
    with pytest.raises(Boom):
        stylize_video(stylizer, clip, tmp_path / "out" / "clip.mp4", batch_size=4)
    assert time.time() - t0 < 20  # did not hang on a full queue
    assert threading.active_count() == before  # reader and writer threads ended
    assert not (tmp_path / "out" / "clip.mp4").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == []  # no temporary file left


def test_stable_is_refused_by_backends_that_cannot_smooth(tmp_path, tiny_ckpt):
    pytest.importorskip("onnxruntime")
    from fastnst.backends.base import BackendError
    from fastnst.stylize import pipeline

    clip = make_clip(tmp_path / "clip.mp4", frames=4, audio=False)
    stylizer = Stylizer.from_checkpoint(tiny_ckpt, backend="onnxruntime")
    options = pipeline.StylizeOptions(output_dir=tmp_path / "out", stable=True)
    plan = pipeline.plan_jobs([clip], stylizer.style, options)
    with pytest.raises(BackendError, match="--stable needs the torch backend"):
        list(pipeline.run(stylizer, plan, options))
    assert not (tmp_path / "out").exists()


def test_cli_video_after_a_users_painting(tmp_path, arbitrary_ckpt, capsys):
    from conftest import write_photo

    clip = make_clip(tmp_path / "clip.mp4", frames=8, audio=False)
    painting = write_photo(tmp_path / "waterlilies.png", size=(64, 64), seed=4)
    args = ["stylize", "--ckpt", str(arbitrary_ckpt), str(clip), "-o", str(tmp_path / "out"), "--quiet"]
    assert main([*args, "--style-image", str(painting), "--backend", "torch"]) == 0
    frames, _, size, _ = probe(tmp_path / "out" / "clip_waterlilies.mp4")
    assert frames == 8 and size == (64, 48)
    assert main([*args, "--style", "a", "--backend", "torch"]) == 0  # a stored style of the same network
    assert (tmp_path / "out" / "clip_a.mp4").is_file()
