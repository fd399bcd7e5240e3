"""Networks: the stylization network and the frozen VGG loss network."""

from fastnst.models.transformer_net import TransformerNet, TransformerNetConfig

__all__ = ["TransformerNet", "TransformerNetConfig"]
