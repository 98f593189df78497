"""SimpleConvNet, the Biased MNIST model of ReBias (Bahng et al., ICML 2020): 4 x [conv 7x7
(padding 3, stride 1) -> norm -> ReLU] with 16, 32, 64, 128 channels, global average pooling, a
linear layer; convolution kernels He-normal over fan_out, as the reference initialises them.

A pure equivalent of the reference: GroupNorm stands in for BatchNorm (as in models/resnet.py:
the classifier is a pure function of (params, images), no batch statistics to carry), and the
convolutions have no bias (a norm follows each one, which would cancel it).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxdebias.models import layers

# PyTorch's kaiming_normal_(mode="fan_out", nonlinearity="relu"): N(0, 2 / fan_out).
_he_normal_fan_out = layers.variance_scaling(2.0, "fan_out", "normal")


class SimpleConvNet(nn.Module):
  """Images (B, H, W, C) float -> logits (B, num_classes)."""

  num_classes: int
  widths: Sequence[int] = (16, 32, 64, 128)
  kernel_size: int = 7

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    x = images
    for width in self.widths:
      x = nn.Conv(
          width,
          (self.kernel_size, self.kernel_size),
          padding="SAME",
          use_bias=False,
          kernel_init=_he_normal_fan_out,
      )(x)
      x = nn.relu(nn.GroupNorm(num_groups=min(32, width))(x))
    return layers.Dense(self.num_classes)(x.mean(axis=(1, 2)))
