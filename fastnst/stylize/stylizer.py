"""A trained network ready to stylize: torch, safetensors and Pillow only.

from fastnst import Stylizer
stylizer = Stylizer.from_checkpoint("checkpoints/starry_night.safetensors")
stylizer.stylize(Image.open("photo.jpg")).save("out.jpg")
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import nn

from fastnst.backends.base import Backend, BackendError, check_supported
from fastnst.backends.torch_backend import TorchBackend, default_precision, pick_device
from fastnst.checkpoint import NetworkInfo, load_network
from fastnst.io import default_cache_dir, pil_to_tensor, tensor_to_pil
from fastnst.stylize.color import preserve_color


def cpu_has_fast_bf16() -> bool:
    """True where oneDNN reports native bf16 (AVX512-BF16 / AMX). Not a speed measurement."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def check_options(backend: str, precision: str | None, device: str, compile: bool, channels_last: bool) -> None:
    """Refuse, in one line, a backend name or an option the backend cannot honour.

    Raises:
        BackendError
    """
    from fastnst.backends import BACKENDS, CAPABILITIES

    if backend not in (*BACKENDS, "auto"):
        raise BackendError(f"backend {backend!r}: use one of auto, {', '.join(BACKENDS)}")
    if backend != "auto":
        check_supported(backend, CAPABILITIES[backend], precision=precision, device=device)
    if backend != "torch" and (compile or channels_last):
        raise BackendError("--compile and channels_last are torch options; drop them or use --backend torch")


def measured_choice(loaded, path: Path, backend: str, precision: str | None, device: str, cache_dir: Path,
                    needs_norm_statistics: bool, recalibrate: bool) -> tuple[str, str | None, str, object]:  # fmt: skip
    """(backend, precision, device, the auto choice or None) for ``backend``/``precision`` ``auto``: on a
    CPU measured (:func:`fastnst.backends.auto.choose`), on a GPU torch in fp16 unless asked."""
    target = pick_device(device)
    if target.type != "cpu":  # GPUs: torch, fp16 unless asked (measured on an H100, docs/backends.md)
        return "torch", precision if precision not in (None, "auto") else default_precision(target), device, None
    from fastnst.backends.auto import choose

    choice = choose(
        path, cache_dir, needs_norm_statistics, recalibrate, backends=None if backend == "auto" else [backend],
        precisions=None if precision in (None, "auto") else [precision], loaded=loaded,
    )  # fmt: skip
    return choice.backend, choice.precision, "cpu", choice


def warn_if_int8_failed(runner: Backend, path: Path) -> None:
    """Asked for int8 by hand: warn when this network's int8 pictures failed the check against fp32."""
    from fastnst.backends.openvino import int8_verdict

    verdict = int8_verdict(runner.model_path)
    if verdict and not verdict["passed"]:
        import warnings

        warnings.warn(
            f"{path.name}: in int8 its texture moved {100 * verdict['style_change']:.1f}% and its content "
            f"distance {100 * verdict['content_change']:.1f}% from fp32's, over the 5% allowed; auto never picks int8 for it",
            stacklevel=3,
        )


class Stylizer:
    """A trained network on one backend, device and precision.

    Args:
        backend: a :class:`~fastnst.backends.Backend`, or a bare network (run with PyTorch).
        style: name used in output file names.
        info: what is known about the network's training.
        device, precision, channels_last, compile: for a bare network only (see
            :class:`~fastnst.backends.torch_backend.TorchBackend`); ``precision=None`` picks per device.
    """

    def __init__(
        self,
        backend: Backend | nn.Module,
        style: str = "styled",
        info: NetworkInfo | None = None,
        device: str | torch.device = "auto",
        precision: str | None = None,
        channels_last: bool = False,
        compile: bool = False,
    ):
        if isinstance(backend, nn.Module):
            device = pick_device(device) if isinstance(device, str) else device
            backend = TorchBackend(backend, device, precision or default_precision(device), channels_last, compile)
        self.backend, self.style, self.info = backend, style, info or NetworkInfo()
        self.choice = None  # what --backend auto measured, when it chose
        self.styles: tuple[str, ...] | None = backend.styles  # a multi-style network's styles
        self.default_style: str | None = None  # a multi-style network's style when a call names none
        self.painter = None  # an any-painting network: its style predictor (see use_paintings)

    def use_paintings(self, net: nn.Module, network_sha256: str, cache_dir: Path | None = None) -> None:
        """Take any painting as a style, through ``net``'s style predictor (an :class:`ArbitraryStyleNet`).

        Named styles are embeddings: the network's stored ones, then those the user added
        (``fastnst styles add``); :meth:`add_style` adds a painting under a name.
        """
        from fastnst.stylize.paintings import EmbeddingCache, PaintingError, UserStyles

        self.painter, self.network_sha256 = net.float().eval(), network_sha256
        self.embedding_cache = EmbeddingCache(cache_dir / "embeddings" if cache_dir else None)
        self.embeddings = {name: net.stored(name).detach().clone() for name in net.styles}
        try:
            self.embeddings.update(UserStyles().embeddings(network_sha256))
        except PaintingError as exc:  # a damaged styles file never stops a stylize
            import warnings

            warnings.warn(f"{exc}; your added styles are left out", stacklevel=3)
        self.styles = tuple(self.embeddings)

    def embed(self, painting, max_pixels: int | None = None) -> torch.Tensor:
        """The style embedding (E,) of a painting (a path, bytes or a PIL image), computed once per painting.

        ``max_pixels``: refuse larger paintings (default :data:`~fastnst.stylize.paintings.MAX_PAINTING_PIXELS`).

        Raises:
            PaintingError: the painting cannot be used (one line naming it). ValueError: not an
                any-painting network.
        """
        from fastnst.models.arbitrary import PAINTING_SIZE, prepare_painting

        def predict(pixels: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return self.painter.embed(prepare_painting(pixels))[0].float()

        return self._kept_embedding(painting, predict, short_side=PAINTING_SIZE, max_pixels=max_pixels)

    def _kept_embedding(
        self, painting, compute, short_side: int | None = None, max_pixels: int | None = None, variant: str = ""
    ) -> torch.Tensor:
        """``compute(pixels)`` for a painting, kept in the cache by its content hash (and ``variant``): a file
        is hashed as bytes, so one seen before is never decoded (``short_side``: see ``read_painting``)."""
        import hashlib

        from fastnst.stylize.paintings import content_hash, painting_bytes, read_painting

        if self.painter is None:
            raise ValueError(f"{self.style!r} paints its own styles only; give an any-painting network (arbitrary)")
        data, name = painting_bytes(painting)
        image = painting if isinstance(painting, Image.Image) else None
        options = {"max_pixels": max_pixels} if max_pixels else {}

        def decode() -> torch.Tensor:
            return read_painting(data, name, image, short_side=short_side, **options)

        pixels = None if data is not None else decode()
        key = content_hash(data, pixels)
        key = hashlib.sha256(f"{key}:{variant}".encode()).hexdigest() if variant else key
        embedding = self.embedding_cache.get(self.network_sha256, key)
        if embedding is None:
            embedding = compute(decode() if pixels is None else pixels)
            self.embedding_cache.put(self.network_sha256, key, embedding)
        return embedding

    def add_style(self, name: str, painting, embedding: torch.Tensor | None = None) -> str:
        """Make ``painting`` a named style of this stylizer (for ``style=name``); returns the name.

        ``embedding``: use this one (e.g. from :meth:`fit_style`) instead of the predictor's.
        """
        self.embeddings[name] = self.embed(painting) if embedding is None else embedding
        self.styles = tuple(self.embeddings)
        return name

    def fit_style(self, painting, steps: int | None = None, photos: Path | None = None, on_step=None) -> torch.Tensor:
        """The painting's embedding refined against the painting itself (:func:`~fastnst.stylize.paintings.fit_embedding`):
        about 45 s on 2 CPU cores, once (kept in the cache by the painting's hash, the steps and the photos);
        texture much nearer the painting's.

        Args:
            steps: Adam steps (default :data:`~fastnst.stylize.paintings.FIT_STEPS`).
            photos: a folder of photos to fit on (default: the four shipped with fastnst).
            on_step: ``on_step(step, steps)`` after each step.

        Raises:
            PaintingError: the painting or the photos cannot be used (one line naming the file).
        """
        from fastnst.stylize.paintings import FIT_STEPS, fit_embedding, fit_photos, fit_precision

        steps = steps or FIT_STEPS
        where = str(Path(photos).expanduser().resolve()) if photos else "bundled"

        def fit(pixels: torch.Tensor) -> torch.Tensor:
            return fit_embedding(
                self.painter, pixels, self.embed(painting), fit_photos(photos), steps, on_step=on_step,
                precision=fit_precision(self.device),
            )  # fmt: skip

        return self._kept_embedding(painting, fit, variant=f"fit:{steps}:{where}")

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        backend: str = "auto",
        device: str = "auto",
        precision: str | None = None,
        compile: bool = False,
        channels_last: bool = False,
        cache_dir: Path | None = None,
        needs_norm_statistics: bool = False,
        recalibrate: bool = False,
    ) -> Stylizer:
        """Load a ``.safetensors`` export, a Lightning ``.ckpt`` or an ``.onnx`` file (never executes code).

        Args:
            backend: ``auto`` (default, as the command line): on a CPU the fastest installed backend and
                precision, measured once on this machine (:mod:`fastnst.backends.auto`); on a GPU torch
                in fp16. Or ``torch``, ``onnxruntime`` (CPU, fp32), ``openvino`` (CPU, fp32/bf16/int8).
            device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
            precision: ``fp32``, ``bf16``, ``fp16``, ``int8``, or ``auto`` (measured); None: ``auto``
                with ``backend="auto"``, else fp16 on GPUs and fp32 on CPUs.
            cache_dir: converted networks and calibrations (default ``$FASTNST_CACHE_DIR`` or ~/.cache/fastnst).
            needs_norm_statistics: ``auto`` picks only backends that can tile and smooth video (torch).
            recalibrate: ``auto`` measures again instead of using the cached measurement.

        Raises:
            CheckpointError: unreadable or foreign file. BackendError: an option the backend cannot honour.
        """
        from fastnst.backends import build_backend

        path, cache_dir = Path(path), cache_dir or default_cache_dir()
        if path.suffix.lower() == ".onnx":  # an exported graph: nothing to measure, no network to rebuild
            backend = "onnxruntime" if backend in ("auto", "torch") else backend
            check_options(backend, precision, device, compile, channels_last)
            return cls(build_backend(None, path, backend, precision, cache_dir), style=path.stem)
        check_options(backend, precision, device, compile, channels_last)
        loaded = load_network(path)
        choice = None
        if backend == "auto" or precision == "auto":
            backend, precision, device, choice = measured_choice(
                loaded, path, backend, precision, device, cache_dir, needs_norm_statistics, recalibrate
            )
        runner = build_backend(loaded, path, backend, precision, cache_dir, device, channels_last, compile)
        if runner.precision == "int8" and choice is None:
            warn_if_int8_failed(runner, path)
        stylizer = cls(runner, loaded.style, loaded.info)
        stylizer.choice = choice
        if getattr(loaded.net, "arch", None) == "johnson_arbitrary":
            from fastnst.io import file_sha256

            stylizer.use_paintings(loaded.net, file_sha256(path), cache_dir)
        return stylizer

    def switch_to(self, backend: Backend, choice=None) -> None:
        """Run on ``backend`` from the next pass on (one attribute swap: a pass under way ends on the old one).

        Raises:
            BackendError: ``backend`` runs another network (other styles) or on another device.
        """
        if backend.styles != self.styles or backend.device != self.device:
            raise BackendError(f"cannot switch {self.style!r} to {backend.describe()}: another network or device")
        self.backend, self.choice = backend, choice

    @property
    def device(self) -> torch.device:
        return self.backend.device

    @property
    def precision(self) -> str:
        return self.backend.precision

    def style_weights(self, style: str | dict[str, float] | torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """(batch, S) weights for a multi-style network: a style name, a mix (dict or ``"a=0.7,b=0.3"``).

        None for a single-style network (which accepts no style but its own).

        Raises:
            ValueError: no style for a multi-style network, an unknown name, a bad mix (one line).
        """
        if self.styles is None:
            if style not in (None, self.style):
                raise ValueError(f"{self.style!r} is a single-style network; it has no style {style!r}")
            return None
        style = style if style is not None else self.default_style
        if isinstance(style, torch.Tensor):  # an embedding, of an any-painting network
            return style.to(self.device, torch.float32).reshape(1, -1).expand(batch, -1)
        if style is None:
            raise ValueError(
                f"a multi-style network: choose a style ({', '.join(self.styles)}), a mix a=0.7,b=0.3, or all"
                + (", or give a painting" if self.painter is not None else "")
            )
        from fastnst.models.multi_style import mix_weights

        weights = mix_weights(self.styles, style).to(self.device)
        if self.painter is not None:  # mixing styles mixes their embeddings
            weights = weights @ torch.stack(list(self.embeddings.values())).to(self.device)
        return weights.expand(batch, -1)

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Run the network on a float32 batch already on the device (no strength or colour options)."""
        return self.backend.run(x, weights)

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

    @staticmethod
    def _check(images: torch.Tensor, strength: float) -> None:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")

    @torch.inference_mode()
    def stylize_tensor(
        self, images: torch.Tensor, strength: float = 1.0, keep_color: bool = False,
        style: str | dict[str, float] | torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Stylize a batch.

        Args:
            images: float in [0, 1], on any device (not modified).
            strength: 0 returns the input, 1 the full style; linear blend between.
            keep_color: keep the input's colours, transfer only luminance.
            style: a multi-style network's style, or a mix (``{"a": 0.7, "b": 0.3}`` or ``"a=0.7,b=0.3"``);
                an any-painting network also takes an embedding (:meth:`embed`, :meth:`fit_style`).

        Returns:
            float32 images in [0, 1] on the input's device.

        Shape:
            - images: (B, 3, H, W).
            - Output: (B, 3, H, W).
        """
        self._check(images, strength)
        x = images.to(self.device, torch.float32, non_blocking=True)
        y = self.finish(self.forward(x, self.style_weights(style, x.shape[0])), x, strength, keep_color)
        return y.contiguous().to(images.device)

    @torch.inference_mode()
    def stylize_tiled(
        self, images: torch.Tensor, tile: int, strength: float = 1.0, keep_color: bool = False, progress=None,
        style: str | dict[str, float] | torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Like :meth:`stylize_tensor` in ``tile`` px tiles with whole-image statistics (huge images).

        The images stay where they are (CPU memory); tiles are computed on the device.
        ``progress`` is called once per tile pass (see :func:`fastnst.stylize.tiling.num_tile_passes`).
        """
        from fastnst.stylize.tiling import stylize_tiled

        self._check(images, strength)
        weights = self.style_weights(style, images.shape[0])
        y = stylize_tiled(self.backend, images, tile=tile, progress=progress, weights=weights)
        return self.finish(y, images, strength, keep_color)

    def stylize(
        self, image: Image.Image, strength: float = 1.0, keep_color: bool = False,
        style: str | dict[str, float] | torch.Tensor | None = None, style_image=None,
    ) -> Image.Image:  # fmt: skip
        """Stylize one PIL image; returns an RGB image of the same size (``style``: see :meth:`stylize_tensor`).

        ``style_image``: an any-painting network's painting (a path, bytes or a PIL image), instead of ``style``.
        """
        if style_image is not None:
            style = self.embed(style_image)
        tensor = pil_to_tensor(image.convert("RGB")).unsqueeze(0)  # (1, 3, H, W)
        return tensor_to_pil(self.stylize_tensor(tensor, strength=strength, keep_color=keep_color, style=style))
