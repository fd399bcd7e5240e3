"""Stylize video files with PyAV: same frame rate, frame count and size, audio copied unchanged.

Decoding, inference and encoding overlap: a reader thread decodes frames
into a queue, the main thread stylizes them in batches, and a writer thread
encodes and muxes. The output is written to a temporary file beside the
target and renamed only when complete.

``stable=True`` steadies the style over time without optical flow:

1. each instance-norm layer uses its statistics smoothed over frames (an
   exponential moving average) instead of each frame's own;
2. the previous stylized frame is aligned to the current one by the global
   shift between the two input frames (phase correlation, which follows camera
   pans), and blended in where the aligned input frames agree; pixels that
   really changed (motion, new content) take the new stylization, so nothing
   ghosts.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from fastnst.io import atomic_path, resize_tensor, scaled_size

_DONE = object()


class VideoError(ValueError):
    """A video cannot be read or written; the message names the file."""


def _require_av():
    try:
        import av
    except ImportError:
        raise VideoError("video needs PyAV: pip install 'fastnst[video]'") from None
    return av


class TemporalSmoother:
    """Instance-norm statistics smoothed over frames (an exponential moving average, in order).

    Used as the ``choose`` function of :func:`fastnst.models.transformer_net.norm_statistics`:
    it sees each norm layer's input for a batch of consecutive frames and returns the smoothed
    (mean, var) to normalise with. Its state belongs to one video, never to the network.
    """

    def __init__(self, momentum: float = 0.9):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.state: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, module: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shape: x (B, C, H, W) for B consecutive frames; returns (mean, var), each (B, C, 1, 1)."""
        stats = x.float()
        mean, var = stats.mean((2, 3), keepdim=True), stats.var((2, 3), unbiased=False, keepdim=True)
        means, variances = [], []
        previous = self.state.get(id(module))
        for m, v in zip(mean, var):
            if previous is not None:
                m = self.momentum * previous[0] + (1 - self.momentum) * m
                v = self.momentum * previous[1] + (1 - self.momentum) * v
            previous = (m, v)
            means.append(m)
            variances.append(v)
        self.state[id(module)] = previous
        return torch.stack(means), torch.stack(variances)


@dataclass
class VideoReport:
    """What :func:`stylize_video` did."""

    frames: int
    seconds: float
    width: int
    height: int
    fps: float
    audio_copied: bool
    flicker_input: float
    flicker_output: float

    @property
    def frames_per_second(self) -> float:
        return self.frames / max(self.seconds, 1e-9)

    @property
    def flicker_ratio(self) -> float:
        """Mean |frame t - frame t-1| of the output over that of the input (lower: steadier)."""
        return self.flicker_output / max(self.flicker_input, 1e-12)


def global_shift(previous: np.ndarray, current: np.ndarray) -> tuple[int, int]:
    """Integer (dy, dx) with ``np.roll(previous, (dy, dx))`` ~ ``current`` (phase correlation on grey images)."""
    a, b = previous.mean(-1), current.mean(-1)
    cross = np.fft.fft2(b) * np.conj(np.fft.fft2(a))
    corr = np.fft.ifft2(cross / (np.abs(cross) + 1e-6)).real
    dy, dx = np.unravel_index(np.argmax(corr), corr.shape)
    h, w = corr.shape
    return int(dy if dy <= h // 2 else dy - h), int(dx if dx <= w // 2 else dx - w)


class TemporalBlender:
    """Blends the previous stylized frame into the current one where the (shift-aligned) inputs agree."""

    def __init__(self, strength: float = 0.8, tolerance: float = 24.0):
        self.strength, self.tolerance = strength, tolerance
        self.previous: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, frame_in: np.ndarray, frame_out: np.ndarray) -> np.ndarray:
        """frame_in, frame_out: (H, W, 3) float32 in 0-255; returns the blended output."""
        if self.previous is not None:
            prev_in, prev_out = self.previous
            shift = global_shift(prev_in, frame_in)
            prev_in, prev_out = np.roll(prev_in, shift, (0, 1)), np.roll(prev_out, shift, (0, 1))
            change = np.abs(frame_in - prev_in).mean(-1, keepdims=True)
            agree = np.clip(1.0 - change / self.tolerance, 0.0, 1.0)  # (H, W, 1)
            frame_out = frame_out + self.strength * agree * (prev_out - frame_out)
        self.previous = (frame_in, frame_out)
        return frame_out


class _Pipe:
    """A bounded queue between threads that gives up, instead of blocking forever, once ``stop`` is set."""

    def __init__(self, size: int, stop: threading.Event):
        self.queue, self.stop = queue.Queue(maxsize=size), stop

    def put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def get(self):
        while not self.stop.is_set():
            try:
                return self.queue.get(timeout=0.05)
            except queue.Empty:
                continue
        return _DONE


@dataclass
class _Source:
    """An opened video: its streams, rate and frame size."""

    reader: object
    video: object
    audio: object | None
    rate: Fraction
    size: tuple[int, int]
    total: int | None


def _open_source(av, source: Path) -> _Source:
    try:
        reader = av.open(str(source))
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(f"{source}: not a readable video ({exc.__class__.__name__}: {exc})") from None
    if not reader.streams.video:
        reader.close()
        raise VideoError(f"{source}: has no video stream")
    vin = reader.streams.video[0]
    rate = vin.average_rate or vin.guessed_rate or Fraction(25)
    size = (vin.codec_context.width, vin.codec_context.height)
    return _Source(
        reader, vin, reader.streams.audio[0] if reader.streams.audio else None, rate, size, vin.frames or None
    )


class _Flicker:
    """Mean absolute difference between consecutive frames (a quarter of each side), summed."""

    def __init__(self):
        self.total, self.last = 0.0, None

    def __call__(self, frame: np.ndarray) -> None:
        small = frame[::4, ::4].astype(np.float32)
        if self.last is not None:
            self.total += float(np.abs(small - self.last).mean())
        self.last = small


def _decode(src: _Source, frames_in: _Pipe, frames_out: _Pipe, fail: Callable[[BaseException], None]) -> None:
    """Decode frames into ``frames_in``; audio packets go straight to ``frames_out`` (copied, not re-encoded)."""
    try:
        for packet in src.reader.demux(*[s for s in (src.video, src.audio) if s is not None]):
            if packet.stream is src.audio:
                if packet.dts is not None and not frames_out.put(("audio", packet)):
                    return
                continue
            for frame in packet.decode():
                if not frames_in.put(frame.to_ndarray(format="rgb24")):
                    return
    except BaseException as exc:
        fail(exc)
    finally:
        frames_in.put(_DONE)


def _open_target(av, tmp: Path, suffix: str, src: _Source, size: tuple[int, int]):
    """The output container, its video stream (H.264 where the container takes it) and audio copy stream."""
    writer = av.open(str(tmp), "w")
    codec = "libx264" if suffix.lower() in (".mp4", ".mov", ".mkv", ".m4v") else "mpeg4"
    vout = writer.add_stream(codec, rate=src.rate)
    vout.width, vout.height, vout.pix_fmt = size[0], size[1], "yuv420p"
    if codec == "libx264":
        vout.options = {"crf": "18", "preset": "veryfast"}
    aout = writer.add_stream_from_template(src.audio) if src.audio is not None else None
    return writer, vout, aout


def _encode(av, writer, vout, aout, rate: Fraction, frames_out: _Pipe, stop: threading.Event,
            fail: Callable[[BaseException], None]) -> None:  # fmt: skip
    """Encode stylized frames and mux audio packets, in order, until the pipe closes."""
    index = 0
    try:
        while (item := frames_out.get()) is not _DONE:
            kind, payload = item
            if kind == "audio":
                payload.stream = aout
                writer.mux(payload)
                continue
            frame = av.VideoFrame.from_ndarray(payload, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1) / rate
            index += 1
            writer.mux(vout.encode(frame))
        if not stop.is_set():
            writer.mux(vout.encode())
    except BaseException as exc:
        fail(exc)


def _stylize_frames(stylizer, frames_in: _Pipe, frames_out: _Pipe, size: tuple[int, int], batch_size: int,
                    blender, flicker: tuple[_Flicker, _Flicker], progress, total: int | None, **style) -> int:  # fmt: skip
    """Stylize decoded frames in batches into ``frames_out``; returns how many."""
    batch, finished, done = [], False, 0
    while not finished:
        item = frames_in.get()
        finished = item is _DONE
        if not finished:
            batch.append(item)
        if not batch or not (finished or len(batch) >= batch_size):
            continue
        x = resize_tensor(torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float().div_(255), size)  # (B, 3, H, W)
        y = stylizer.stylize_tensor(x, **style).clamp(0, 1).mul(255).permute(0, 2, 3, 1).contiguous().numpy()
        for source_frame, out_frame in zip(x.mul(255).permute(0, 2, 3, 1).numpy(), y):
            out_frame = blender(source_frame, out_frame) if blender is not None else out_frame
            out_frame = np.clip(out_frame + 0.5, 0, 255).astype(np.uint8)
            flicker[0](source_frame)
            flicker[1](out_frame)
            frames_out.put(("video", out_frame))
        done, batch = done + len(batch), []
        if progress:
            progress(done, total)
    return done


def stylize_video(
    stylizer,
    source: str | Path,
    target: str | Path,
    size: int | None = None,
    scale: float | None = None,
    batch_size: int = 8,
    stable: bool = False,
    momentum: float = 0.9,
    strength: float = 1.0,
    keep_color: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
    style: str | dict[str, float] | None = None,
) -> VideoReport:
    """Stylize every frame of ``source`` into ``target`` (written atomically).

    Three stages: a reader thread decodes, this thread stylizes, a writer thread encodes. Any error
    in any of them, or Ctrl-C, stops all three and leaves no partial output.

    Args:
        stylizer: a :class:`fastnst.stylize.stylizer.Stylizer`; ``stable`` needs a backend
            that can share instance-norm statistics (torch).
        size, scale: optional resize (long side in px, or factor); sizes are made even.
        batch_size: frames per forward pass.
        stable: smooth instance-norm statistics over time (less flicker).
        momentum: weight of the past in the smoothing.
        progress: called as ``progress(frames_done, total_or_None)``.
        style: a multi-style network's style or mix, or an any-painting network's style.

    Raises:
        VideoError: unreadable, corrupt or unsupported input (one line, naming the file).
    """
    av = _require_av()
    source, target = Path(source), Path(target)
    src = _open_source(av, source)
    out_size = scaled_size(*src.size, size, scale, even=True)
    scope = stylizer.backend.norm_statistics(TemporalSmoother(momentum)) if stable else contextlib.nullcontext()
    stop = threading.Event()
    frames_in, frames_out = _Pipe(4 * batch_size, stop), _Pipe(4 * batch_size, stop)
    errors: list[BaseException] = []
    flicker = (_Flicker(), _Flicker())

    def fail(exc: BaseException) -> None:
        errors.append(exc)
        stop.set()

    started, done, threads, writer = time.perf_counter(), 0, [], None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp, scope:
            writer, vout, aout = _open_target(av, tmp, target.suffix, src, out_size)
            threads = [threading.Thread(target=_decode, args=(src, frames_in, frames_out, fail), daemon=True),
                       threading.Thread(target=_encode, args=(av, writer, vout, aout, src.rate, frames_out, stop, fail),
                                        daemon=True)]  # fmt: skip
            for t in threads:
                t.start()
            done = _stylize_frames(stylizer, frames_in, frames_out, out_size, batch_size,
                                   TemporalBlender() if stable else None, flicker, progress, src.total,
                                   strength=strength, keep_color=keep_color, style=style)  # fmt: skip
            if errors:
                raise errors[0]
            frames_out.put(_DONE)
            threads[1].join()
            if errors:
                raise errors[0]
            writer.close()
            writer = None
    except VideoError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"{source}: cannot stylize this video ({exc.__class__.__name__}: {exc})") from None
    finally:
        stop.set()  # on any error or Ctrl-C: the reader and writer give up at once
        for t in threads:
            t.join(timeout=10)
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        src.reader.close()
    pairs = max(1, done - 1)
    return VideoReport(
        frames=done, seconds=time.perf_counter() - started, width=out_size[0], height=out_size[1],
        fps=float(src.rate), audio_copied=src.audio is not None, flicker_input=flicker[0].total / pairs,
        flicker_output=flicker[1].total / pairs,
    )  # fmt: skip
