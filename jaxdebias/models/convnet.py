"""SimpleConvNet, the Biased MNIST model of ReBias (Bahng et al., ICML 2020): 4 x [conv 7x7
(padding 3, stride 1) -> norm -> ReLU] with 16, 32, 64, 128 channels, global average pooling, a
linear layer; convolution kernels He-normal over fan_out, as the reference initialises them.

A pure equivalent of the reference: GroupNorm stands in for BatchNorm (as in models/resnet.py:
the classifier is a pure function of (params, images), no batch statistics to carry), and the
convolutions have no bias (a norm follows each one, which would cancel it). On CPU the
convolutions run as matmuls over patches (layers.Conv: the same parameters and outputs up
to float rounding, 30x faster inside the trainer's scan).
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
  # Convolutions as matmuls over patches (layers.Conv): None, on CPU only.
  patch_conv: bool | None = None

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    x = images
    for i, width in enumerate(self.widths):
      x = layers.Conv(
          width,
          (self.kernel_size, self.kernel_size),
          use_bias=False,
          kernel_init=_he_normal_fan_out,
          patches=jax.default_backend() == "cpu" if self.patch_conv is None else self.patch_conv,
          name=f"Conv_{i}",
      )(x)
      x = nn.relu(nn.GroupNorm(num_groups=min(32, width))(x))
    return layers.Dense(self.num_classes)(x.mean(axis=(1, 2)))
