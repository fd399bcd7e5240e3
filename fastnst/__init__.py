"""fastnst: fast feed-forward neural style transfer.

Importing ``fastnst`` pulls in torch, safetensors and Pillow only; training
(Lightning, Hydra, TensorBoard) lives in :mod:`fastnst.training`.
"""

from fastnst.models.transformer_net import TransformerNet, TransformerNetConfig

__version__ = "0.1.0"
__all__ = ["Stylizer", "TransformerNet", "TransformerNetConfig", "__version__"]


def __getattr__(name: str):
    if name == "Stylizer":
        from fastnst.stylize.stylizer import Stylizer

        return Stylizer
    raise AttributeError(f"module 'fastnst' has no attribute {name!r}")
