"""The Progressive GAN generator (Karras et al., ICLR 2018), weight-compatible with the PyTorch
model zoo's `GNet` (facebookresearch/pytorch_GAN_zoo) that latent de-biasing uses on CelebA.

z (B, latent_dim) -> pixel norm -> equalized dense to 4x4 x widths[0] -> leaky ReLU -> pixel
norm -> scale 0: one 3x3 conv; each further scale: nearest x2 upsampling, two 3x3 convs; every
conv followed by leaky ReLU 0.2 and pixel norm -> 1x1 toRGB, no output activation. With
0 < alpha <= 1 (a network caught while growing) the output is alpha * upsampled toRGB of the
previous scale + (1 - alpha) * toRGB of the last one. Equalized learning rate: weights are
stored N(0, 1) and every layer's output, bias included, is multiplied by c = sqrt(2 / fan_in).
Images are NHWC, roughly in [-1, 1]; `jaxdebias.tools.port_pgan` converts the zoo's weights.
"""

from collections.abc import Sequence
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxdebias.models import layers
from jaxdebias.models.dcgan import pixel_norm


class EqualizedDense(nn.Module):
  """y = c * (x W + b), c = sqrt(2 / fan_in)."""

  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", layers.normal(1.0), (x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return (x @ kernel + bias) * math.sqrt(2.0 / x.shape[-1])


def _conv(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
  return jax.lax.conv_general_dilated(
      x, kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
  )


# A 3x3 conv of the x2 nearest upsampled image, output phase d (row or column parity): the
# kernel taps that land on the same input pixel, and the padding of the 2-tap conv on the input.
_PHASE_TAPS = (((0,), (1, 2)), ((0, 1), (2,)))
_PHASE_PADDING = ((1, 0), (0, 1))


def upsampled_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """conv(upsample(x), kernel) for a 3x3 'same' kernel without building upsample(x): each of the
  four output phases is a 2x2 conv of x with summed taps, 4/9 of the multiply-adds."""
  rows = []
  for dy in range(2):
    row_kernel = jnp.stack([kernel[np.asarray(taps)].sum(0) for taps in _PHASE_TAPS[dy]])
    phases = [
        _conv(
            x,
            jnp.stack([row_kernel[:, np.asarray(taps)].sum(1) for taps in _PHASE_TAPS[dx]], axis=1),
            (_PHASE_PADDING[dy], _PHASE_PADDING[dx]),
        )
        for dx in range(2)
    ]
    rows.append(jnp.stack(phases, axis=3))  # (B, H, W, dx, C)
  b, h, w, _, c = rows[0].shape
  return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, c)  # (B, H, dy, W, dx, C) -> 2x.


# Input pixels (batch x height x width) from which `upsampled_conv` beats upsampling then
# convolving on CPU (measured with XLA's CPU backend: 1.7-2.2x faster from 4096 input pixels,
# even at 1024, 2.3x slower at 256, where the kernel rearrangement dominates).
UPSAMPLED_CONV_MIN_PIXELS = 2048


class EqualizedConv(nn.Module):
  """y = c * (conv(x, W) + b) with 'same' padding, c = sqrt(2 / (k * k * in_channels)); with
  `upsample`, of the x2 nearest upsampled x (a 3x3 kernel; `upsampled_conv` for large inputs)."""

  features: int
  kernel_size: int
  upsample: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, channels = self.kernel_size, x.shape[-1]
    kernel = self.param("kernel", layers.normal(1.0), (k, k, channels, self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    if not self.upsample:
      y = _conv(x, kernel, "SAME")
    elif math.prod(x.shape[:3]) >= UPSAMPLED_CONV_MIN_PIXELS:
      y = upsampled_conv(x, kernel)
    else:
      y = _conv(upsample(x), kernel, "SAME")
    return (y + bias) * math.sqrt(2.0 / (k * k * channels))


def upsample(x: jax.Array) -> jax.Array:
  """Nearest-neighbour x2: (B, H, W, C) -> (B, 2H, 2W, C)."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class Generator(nn.Module):
  """PGAN generator with len(widths) scales: 4 * 2**(len(widths) - 1) pixels a side.

  Parameter names follow the zoo's layers: `format` (formatLayer), `scale0` (groupScale0.0),
  `scale{i}_conv{j}` (scaleLayers.{i-1}.{j}), `to_rgb{i}` (toRGBLayers.{i}); only the toRGB
  layers the forward pass uses exist (the last, and the one before when alpha > 0).
  """

  latent_dim: int = 512
  widths: Sequence[int] = (512, 512, 512, 512, 256, 128)  # 4x4, then one per doubling.
  channels: int = 3
  alpha: float = 0.0

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    last = len(self.widths) - 1
    act = lambda x: pixel_norm(nn.leaky_relu(x, 0.2))
    x = nn.leaky_relu(EqualizedDense(16 * self.widths[0], name="format")(pixel_norm(z)), 0.2)
    x = pixel_norm(x.reshape(len(z), 4, 4, self.widths[0]))
    x = act(EqualizedConv(self.widths[0], 3, name="scale0")(x))
    previous_rgb = None
    for i, width in enumerate(self.widths[1:], start=1):
      if self.alpha > 0 and i == last:
        previous_rgb = upsample(EqualizedConv(self.channels, 1, name=f"to_rgb{i - 1}")(x))
      x = act(EqualizedConv(width, 3, upsample=True, name=f"scale{i}_conv0")(x))
      x = act(EqualizedConv(width, 3, name=f"scale{i}_conv1")(x))
    rgb = EqualizedConv(self.channels, 1, name=f"to_rgb{last}")(x)
    if previous_rgb is not None:
      rgb = self.alpha * previous_rgb + (1.0 - self.alpha) * rgb
    return rgb

  @property
  def image_shape(self) -> tuple[int, int, int]:
    side = 4 * 2 ** (len(self.widths) - 1)
    return (side, side, self.channels)
