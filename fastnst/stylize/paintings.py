"""A user's own painting as a style: read it (refusing what cannot be one), embed it once, keep it.

- :func:`read_painting`: a painting file, upload or PIL image as (1, 3, H, W); a tiny, huge or
  animated image is refused in one line naming it, a greyscale one converted.
- :class:`EmbeddingCache`: the style predictor runs once per painting; its embedding is kept by the
  painting's content hash and the network's (in memory, and on disk under the cache folder).
- :class:`UserStyles`: ``fastnst styles add NAME painting.jpg`` keeps a name, the painting's path and
  hash, and its embedding per network, so ``--style NAME`` works like a shipped style.
- :func:`fit_embedding`: the predicted embedding refined against the painting itself (``styles add
  --fit``): about 45 s once, for texture much nearer the painting's, then milliseconds per photo.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from fastnst.io import (
    ImageReadError,
    atomic_path,
    load_image,
    pil_to_tensor,
    read_image,
    resize_long_side,
    tensor_to_pil,
)
from fastnst.losses import gram_matrix

MIN_PAINTING_SIDE = 32  # px: smaller holds no brushwork to learn a style from
MAX_PAINTING_PIXELS = 40_000_000


class PaintingError(ImageReadError):
    """A painting cannot be used as a style; the message names it and says why."""


def painting_bytes(source: str | Path | bytes | Image.Image) -> tuple[bytes | None, str]:
    """(the painting's bytes, a name for messages); a PIL image has no bytes (hashed from its pixels)."""
    if isinstance(source, Image.Image):
        return None, getattr(source, "filename", "") or "the painting"
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), "the painting"
    path = Path(source).expanduser()
    try:
        return path.read_bytes(), str(path)
    except FileNotFoundError:
        raise PaintingError(f"{path}: no such painting; give the path of an image file") from None
    except IsADirectoryError:
        raise PaintingError(f"{path}: is a folder; give one painting (an image file)") from None
    except OSError as exc:
        raise PaintingError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def read_painting(
    data: bytes | None,
    name: str,
    image: Image.Image | None = None,
    max_pixels: int = MAX_PAINTING_PIXELS,
    short_side: int | None = None,
) -> torch.Tensor:
    """The painting as (1, 3, H, W) in [0, 1]: greyscale and palette images are converted to RGB.

    ``short_side``: a JPEG is decoded at the smallest DCT scale that keeps at least this many pixels
    on its short side (a 12 MP scan reads several times faster); None: at full size.

    Raises:
        PaintingError: animated, or smaller than :data:`MIN_PAINTING_SIDE` px on a side.
        ImageReadError: not an image (:class:`NotAnImageError`), over ``max_pixels``
            (:class:`ImageTooLargeError`), truncated or corrupt. Each one line naming the painting.
    """
    if image is None:
        try:
            with Image.open(io.BytesIO(data)) as probe:
                frames = getattr(probe, "n_frames", 1)
        except Exception:
            frames = 1  # read_image says what is wrong with it
        if frames > 1:
            raise PaintingError(f"{name}: an animated image ({frames} frames); give one still painting (JPEG or PNG)")
        image = read_image(name, short_side, io.BytesIO(data), max_pixels)  # its own one-line errors
    image = image.convert("RGB")
    if min(image.size) < MIN_PAINTING_SIDE:
        raise PaintingError(
            f"{name}: {image.width}x{image.height} px is too small to read a style from; "
            f"give a painting at least {MIN_PAINTING_SIDE} px on each side (256 or more is best)"
        )
    return pil_to_tensor(image).unsqueeze(0)


def content_hash(data: bytes | None, painting: torch.Tensor | None = None) -> str:
    """SHA-256 of the painting's file bytes, or of its pixels when it came as an image object."""
    payload = data if data is not None else painting.mul(255).round().byte().numpy().tobytes()
    return hashlib.sha256(payload).hexdigest()


class EmbeddingCache:
    """Style embeddings by (network hash, painting hash): in memory, and as JSON under ``folder``."""

    def __init__(self, folder: Path | None):
        self.folder, self.memory = folder, {}

    def get(self, network: str, painting: str) -> torch.Tensor | None:
        key = (network, painting)
        if key not in self.memory and self.folder is not None:
            try:
                values = json.loads((self.folder / network[:16] / f"{painting[:32]}.json").read_text())
                self.memory[key] = torch.tensor(values, dtype=torch.float32)
            except (OSError, ValueError, TypeError):
                return None
        return self.memory.get(key)

    def put(self, network: str, painting: str, embedding: torch.Tensor) -> None:
        self.memory[(network, painting)] = embedding
        if self.folder is None:
            return
        try:
            path = self.folder / network[:16] / f"{painting[:32]}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(embedding.tolist()))
        except OSError:
            pass  # a cache that cannot be written only costs a recomputation


def default_styles_file() -> Path:
    """``$FASTNST_STYLES`` or ``$XDG_DATA_HOME/fastnst/styles.json`` (``~/.local/share`` by default)."""
    if os.environ.get("FASTNST_STYLES"):
        return Path(os.environ["FASTNST_STYLES"]).expanduser()
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "fastnst" / "styles.json"


STYLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class UserStyles:
    """The styles a user added (``fastnst styles add``): name -> painting path, hash, date, embeddings per network."""

    def __init__(self, path: Path | None = None):
        self.path = path or default_styles_file()

    def load(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise PaintingError(
                f"{self.path}: the styles file cannot be read ({exc}); move it away to start anew"
            ) from None

    def add(
        self, name: str, painting: Path, sha256: str, network: str, embedding: torch.Tensor, fit_steps: int = 0
    ) -> dict:
        """Keep ``name`` (replacing an earlier one of that name); returns its entry.

        ``fit_steps``: the embedding was refined on the painting for that many steps (:func:`fit_embedding`).

        Raises:
            PaintingError: a name that is not a plain word (letters, digits, ``_ . -``).
        """
        if not STYLE_NAME.match(name):
            raise PaintingError(f"style name {name!r}: use letters, digits, '_', '.' or '-' (at most 64)")
        styles = self.load()
        entry = {
            "painting": str(Path(painting).expanduser().resolve()),
            "sha256": sha256,
            "added": dt.datetime.now().isoformat(timespec="seconds"),
            "embeddings": {network: embedding.tolist()},
            **({"fit_steps": int(fit_steps)} if fit_steps else {}),
        }
        styles[name] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(styles, indent=1))
        return entry

    def embeddings(self, network: str) -> dict[str, torch.Tensor]:
        """Every user style that has an embedding for ``network`` (a network's file hash)."""
        return {
            name: torch.tensor(entry["embeddings"][network], dtype=torch.float32)
            for name, entry in self.load().items()
            if network in entry.get("embeddings", {})
        }


FIT_PHOTOS = Path(__file__).resolve().parents[1] / "assets" / "photos"  # the photos a fit stylizes by default
FIT_STEPS = 100
# The relative Gram distance's weight over the relative content distance's: about where the network's own
# training sits (style 2.5e6 on the ratio, content 1 on the raw relu4_2 error of about 3e5). At 1 the fit
# traded texture for content on paintings the predictor already reads well.
FIT_STYLE_WEIGHT = 10.0
FIT_PAINTING_SIDE = 512  # long side (px) of the painting whose Grams a fit matches: the evaluation's


def fit_photos(folder: Path | None = None, limit: int = 16) -> list[torch.Tensor]:
    """Up to ``limit`` photos (each (1, 3, H, W)) to fit a style on: a folder's, or the four shipped ones.

    Raises:
        PaintingError: the folder has no images.
    """
    from fastnst.data import DataError, find_images

    folder = Path(folder).expanduser() if folder else FIT_PHOTOS
    if not folder.exists():
        raise PaintingError(f"{folder}: no such folder of photos to fit the style on")
    try:
        paths = find_images(folder)[:limit] if folder.is_dir() else [folder]
    except DataError:
        paths = []
    if not paths:
        raise PaintingError(f"{folder}: no photos to fit the style on; give a folder of JPEG or PNG photos")
    return [load_image(p) for p in paths]


def fit_precision(device: torch.device) -> str:
    """``bf16`` on a CPU where a measured bf16 training step is faster than fp32 (a fit is one: forward and
    backward), else ``fp32``. Measured once per machine, a second or two, and cached."""
    if device.type != "cpu":
        return "fp32"
    from fastnst.training.precision import cpu_training_precision  # torch only: no Lightning or Hydra

    return "bf16" if cpu_training_precision() == "bf16-mixed" else "fp32"


def fit_embedding(
    net: torch.nn.Module,
    painting: torch.Tensor,
    embedding: torch.Tensor,
    photos: list[torch.Tensor],
    steps: int = FIT_STEPS,
    lr: float = 3e-3,
    crop: int = 160,
    style_weight: float = FIT_STYLE_WEIGHT,
    seed: int = 0,
    on_step=None,
    precision: str = "fp32",
) -> torch.Tensor:
    """Refine ``embedding`` so that ``net`` paints ``painting`` closer, the network itself unchanged.

    The predictor's embedding is one forward pass, learnt over thousands of paintings; 100 Adam steps
    on this painting alone took the mean texture distance of 8 held-out paintings from 0.22 to 0.18
    (about 45 s each on 2 CPU cores; docs/quality.md). The loss is the training one, on the network's
    own VGG19 layers (so no loss network is needed): each output's Gram distance at relu1_1 ... relu4_1
    over its photo's own, times ``style_weight``, plus the relu4_1 content distance over the photo's
    feature energy, on pairs of random ``crop`` px crops of ``photos``.

    Args:
        net: an :class:`~fastnst.models.arbitrary.ArbitraryStyleNet` (float32; not modified).
        painting: (1, 3, H, W) in [0, 1], full size (its Grams are taken at a 512 px long side).
        embedding: (E,) the start, usually the predictor's.
        on_step: called as ``on_step(step, steps)`` after each step (a progress bar).
        precision: ``fp32``, or ``bf16`` (autocast; the Grams, the losses and the embedding stay float32):
            2x faster where the CPU has bf16 instructions (:meth:`Stylizer.fit_style` measures).

    Returns:
        (E,) the fitted embedding.
    """
    # Lanczos, as every painting's Grams are taken (load_image): a bilinear upscale of a small painting is
    # blurrier, and a fit to its softer Grams scored 0.26 where this one scores 0.20.
    target = pil_to_tensor(resize_long_side(tensor_to_pil(painting[0]), FIT_PAINTING_SIDE)).unsqueeze(0)
    encoder = net.style_encoder
    with torch.no_grad():
        grams = {tap: gram_matrix(f) for tap, f in encoder(target).items()}
    generator = torch.Generator().manual_seed(seed)

    def random_crop() -> torch.Tensor:
        photo = photos[int(torch.randint(len(photos), (1,), generator=generator))]
        photo = F.interpolate(photo, scale_factor=crop * 1.125 / min(photo.shape[-2:]), mode="bilinear", antialias=True)
        h, w = photo.shape[-2:]
        i, j = (int(torch.randint(n - crop + 1, (1,), generator=generator)) for n in (h, w))
        return photo[..., i : i + crop, j : j + crop].clamp(0, 1)

    def gram_distance(features: dict[str, torch.Tensor]) -> torch.Tensor:  # (B,)
        return sum((gram_matrix(features[t]) - g).pow(2).mean((1, 2)) for t, g in grams.items())

    fitted = embedding.detach().float().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([fitted], lr=lr)
    autocast = torch.autocast(painting.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    for step in range(steps):
        x = torch.cat([random_crop(), random_crop()])  # (2, 3, crop, crop)
        with torch.no_grad(), autocast:
            own = encoder(x)
            own_distance = gram_distance(own).clamp_min(1e-12)
        with autocast:
            out = encoder(net(x, fitted))
        style = (gram_distance(out) / own_distance).mean()
        mine, theirs = out["relu4_1"].float(), own["relu4_1"].float()
        content = (mine - theirs).pow(2).mean() / theirs.pow(2).mean().clamp_min(1e-12)
        # the gradient of the embedding alone: the network's weights get none (nor their cost)
        (fitted.grad,) = torch.autograd.grad(style_weight * style + content, [fitted])
        optimizer.step()
        if on_step:
            on_step(step + 1, steps)
    return fitted.detach()
