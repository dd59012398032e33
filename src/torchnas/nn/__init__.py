"""Neural-network building blocks shared by the search spaces, and a FLOP counter."""
from .flops import count_flops
from .ops import (BN_EPS, BN_MOMENTUM, AuxHead, Conv2dSame, FactorizedReduce, Identity, Pool,
                  ReLUConvBN, SepConv, batch_norm, drop_path, init_weights, pool2d_same, same_padding,
                  use_batch_stats, Whitened)

__all__ = ["count_flops", "BN_EPS", "BN_MOMENTUM", "AuxHead", "Conv2dSame", "FactorizedReduce", "Identity", "Pool",
           "ReLUConvBN", "SepConv", "batch_norm", "drop_path", "init_weights", "pool2d_same", "same_padding",
           "use_batch_stats", "Whitened"]
