"""Stylize images with a trained network: torch, safetensors and Pillow only.

from fastnst import Stylizer
stylizer = Stylizer.from_checkpoint("checkpoints/starry_night.safetensors")
stylizer.stylize(Image.open("photo.jpg")).save("out.jpg")
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from PIL import Image

from fastnst.checkpoint import LoadedNetwork, load_network
from fastnst.io import pil_to_tensor, tensor_to_pil
from fastnst.models.transformer_net import TransformerNet

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available on this machine; use --device cpu or auto")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps: Apple MPS is not available on this machine; use --device cpu or auto")
    return torch.device(device)


def cpu_has_fast_bf16() -> bool:
    """True where oneDNN runs bf16 natively (AVX512-BF16 / AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def default_precision(device: torch.device) -> str:
    """The fastest precision measured in docs/benchmarks.md for each device.

    fp16 on GPUs (1.1-1.25x over fp32 on an H100, where bf16 was slower than
    fp32 at batch 1); bf16 on CPUs with native bf16 (1.5-1.9x over fp32, output
    within 0.5/255 of fp32, PSNR > 50 dB); fp32 on other CPUs.
    """
    if device.type in ("cuda", "mps"):
        return "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def rgb_to_yuv(images: torch.Tensor) -> torch.Tensor:
    """BT.601 RGB to YUV. Shape: (B, 3, H, W) -> (B, 3, H, W)."""
    r, g, b = images.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return torch.stack([y, 0.492 * (b - y), 0.877 * (r - y)], 1)


def yuv_to_rgb(images: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_yuv`."""
    y, u, v = images.unbind(1)
    r = y + v / 0.877
    b = y + u / 0.492
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return torch.stack([r, g, b], 1)


def preserve_color(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance of ``stylized`` with the chrominance of ``content`` (Gatys et al. 2016)."""
    yuv = rgb_to_yuv(content)
    return yuv_to_rgb(torch.cat([rgb_to_yuv(stylized)[:, :1], yuv[:, 1:]], 1)).clamp(0, 1)


class Stylizer:
    """A trained network ready to stylize, on one device and precision.

    Args:
        net: the network.
        device: ``auto``, ``cpu``, ``cuda``, ``mps`` or a torch device.
        precision: ``fp32``, ``bf16`` or ``fp16``; None picks per device.
        channels_last: run in channels_last memory format (off by default: slower for this
            network on an H100 in most rows of docs/benchmarks.md).
        compile: ``torch.compile`` the network.
        style: name used in output file names.
    """

    def __init__(
        self,
        net: TransformerNet,
        device: str | torch.device = "auto",
        precision: str | None = None,
        channels_last: bool | None = None,
        compile: bool = False,
        style: str = "styled",
        info: dict | None = None,
    ):
        self.device = pick_device(device) if isinstance(device, str) else device
        self.precision = precision or default_precision(self.device)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")
        self.channels_last = bool(channels_last)
        self.style, self.info = style, dict(info or {})
        self.net = net.eval().requires_grad_(False).to(self.device)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        self._forward = torch.compile(self.net, dynamic=True) if compile else self.net

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs) -> Stylizer:
        """Load a ``.safetensors`` export or a Lightning ``.ckpt`` (never executes code from it)."""
        loaded: LoadedNetwork = load_network(path)
        kwargs.setdefault("style", loaded.style)
        return cls(loaded.net, info=loaded.info, **kwargs)

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=PRECISIONS[self.precision])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the network on a batch already on the device, in the chosen precision and format."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            return self._forward(x).float()

    @staticmethod
    def finish(
        stylized: torch.Tensor, content: torch.Tensor, strength: float = 1.0, keep_color: bool = False
    ) -> torch.Tensor:
        """Apply ``keep_color`` and ``strength`` to a stylized batch (both (B, 3, H, W))."""
        content = content.to(stylized.device, torch.float32)
        if keep_color:
            stylized = preserve_color(stylized, content)
        if strength < 1.0:
            stylized = torch.lerp(content, stylized, strength)
        return stylized

    @torch.inference_mode()
    def stylize_tensor(self, images: torch.Tensor, strength: float = 1.0, keep_color: bool = False) -> torch.Tensor:
        """Stylize a batch.

        Args:
            images: float in [0, 1], on any device (not modified).
            strength: 0 returns the input, 1 the full style; linear blend between.
            keep_color: keep the input's colours, transfer only luminance.

        Returns:
            float32 images in [0, 1] on the input's device.

        Shape:
            - images: (B, 3, H, W).
            - Output: (B, 3, H, W).
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        x = images.to(self.device, torch.float32, non_blocking=True)
        y = self.finish(self.forward(x), x, strength, keep_color)
        return y.contiguous().to(images.device)

    def stylize(self, image: Image.Image, strength: float = 1.0, keep_color: bool = False) -> Image.Image:
        """Stylize one PIL image; returns an RGB image of the same size."""
        tensor = pil_to_tensor(image.convert("RGB")).unsqueeze(0)  # (1, 3, H, W)
        return tensor_to_pil(self.stylize_tensor(tensor, strength=strength, keep_color=keep_color))


class OnnxStylizer(Stylizer):
    """Runs an exported ``.onnx`` network with ONNX Runtime (CPU), same interface as :class:`Stylizer`."""

    def __init__(self, path: str | Path, style: str | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("running .onnx files needs onnxruntime: pip install 'fastnst[onnx]'") from None
        self.device, self.precision, self.channels_last = torch.device("cpu"), "fp32", False
        self.style, self.info, self.net = style or Path(path).stem, {}, None
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ValueError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0]})") from None
        self._forward = self._run

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % 4, -w % 4
        if pad_h or pad_w:
            x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(h, w) > 4 else "replicate")
        (y,) = self.session.run(None, {"images": x.detach().cpu().float().numpy()})
        return torch.from_numpy(y)[..., :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)


def onnx_stylizer_for(path: str | Path, cache_dir: Path | None = None) -> OnnxStylizer:
    """Run a ``.safetensors``/``.ckpt`` network with ONNX Runtime (CPU, fp32).

    The network is exported to ONNX once, into ``<cache>/onnx/`` under a hash of the
    checkpoint's bytes, so later runs start at once and a retrained file is exported again.
    """
    import hashlib

    from fastnst.export import export_onnx
    from fastnst.io import default_cache_dir

    loaded = load_network(path)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:32]
    onnx_path = (cache_dir or default_cache_dir()) / "onnx" / f"{digest}.onnx"
    if not onnx_path.is_file():
        onnx_path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(loaded.net, onnx_path)
    stylizer = OnnxStylizer(onnx_path, style=loaded.style)
    stylizer.info = dict(loaded.info)
    return stylizer


BACKENDS = ("torch", "onnxruntime")


def load_stylizer(path: str | Path, backend: str = "torch", **kwargs) -> Stylizer:
    """A :class:`Stylizer` for a ``.safetensors``/``.ckpt`` file, or an :class:`OnnxStylizer` for ``.onnx``.

    Args:
        backend: ``torch``, or ``onnxruntime`` to run a checkpoint through ONNX Runtime on the
            CPU (fp32; faster than PyTorch on CPUs at large sizes, see docs/benchmarks.md).
        kwargs: for :class:`Stylizer` (device, precision, compile).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: use one of {', '.join(BACKENDS)}")
    is_onnx = str(path).lower().endswith(".onnx")
    if is_onnx or backend == "onnxruntime":
        asked = {k: v for k, v in kwargs.items() if v not in (None, False, "auto", "cpu", "fp32")}
        if asked:
            flags = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in asked.items())
            raise ValueError(f"ONNX Runtime runs on the CPU in fp32; drop {flags} or use the torch backend")
    if is_onnx:
        if not Path(path).is_file():
            from fastnst.checkpoint import CheckpointError

            raise CheckpointError(f"{path}: ONNX file not found")
        return OnnxStylizer(path)
    if backend == "onnxruntime":
        return onnx_stylizer_for(path)
    return Stylizer.from_checkpoint(path, **kwargs)
