"""Networks: the stylization network and the frozen VGG loss network."""

from fastnst.models.arbitrary import ArbitraryStyleNet, ArbitraryStyleNetConfig
from fastnst.models.multi_style import MultiStyleNet, MultiStyleNetConfig
from fastnst.models.transformer_net import TransformerNet, TransformerNetConfig

__all__ = [
    "ArbitraryStyleNet",
    "ArbitraryStyleNetConfig",
    "MultiStyleNet",
    "MultiStyleNetConfig",
    "TransformerNet",
    "TransformerNetConfig",
]
