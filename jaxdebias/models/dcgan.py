"""A DCGAN-style generator and discriminator for small images (28x28 Colored MNIST by default).

Chosen because it trains on a 2-core CPU in minutes: each doubling of the resolution is a 3x3
convolution at the lower resolution into 4x the channels, rearranged into 2x2 pixels (sub-pixel
convolution; on CPU its gradient is 4x faster than a transposed convolution's and 1.5x faster
than upsampling then convolving), about 8M multiply-adds per 28x28 image; pixel normalisation
(as in Progressive GAN) replaces batch normalisation, so the generator is a pure function of
(params, z) with no batch statistics to carry or to freeze for sampling; and, as in StyleGAN, a
small mapping MLP turns z into a style w that scales and shifts every layer's channels. Without
the style, samples mixed several colours within one digit (each pixel chose its colour from
local features); with it a global attribute like colour is set for the whole image.
Images are NHWC in [-1, 1].
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def pixel_norm(x: jax.Array, eps: float = 1e-8) -> jax.Array:
  """Scales each feature vector (last axis) to unit root mean square."""
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


def depth_to_space(x: jax.Array) -> jax.Array:
  """(B, H, W, 4C) -> (B, 2H, 2W, C): each pixel's channels become a 2x2 block."""
  b, h, w, c = x.shape
  x = x.reshape(b, h, w, 2, 2, c // 4).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c // 4)


class Generator(nn.Module):
  """z (B, latent_dim) -> images (B, H, W, C) in [-1, 1], as synthesis(mapping(z)).

  mapping: z -> the synthesis input s = [z, w] (B, 2 latent_dim), w the style from an MLP.
  synthesis: a seed of H / 2**(len(widths) - 1) pixels a side from z, doubled once per width
  after the first, every layer's channels scaled and shifted by an affine map of w. (A seed
  from w alone collapsed to a few digit shapes in training.)
  """

  image_shape: tuple[int, int, int] = (28, 28, 3)
  latent_dim: int = 64
  widths: Sequence[int] = (96, 48, 24)  # Seed channels, then one per doubling.
  mapping_layers: int = 2

  def setup(self):
    side = self.image_shape[0] // 2 ** (len(self.widths) - 1)
    self.mapping_mlp = [nn.Dense(self.latent_dim) for _ in range(self.mapping_layers)]
    self.seed = nn.Dense(side * side * self.widths[0])
    self.styles = [nn.Dense(2 * width) for width in self.widths]
    self.upsamples = [nn.Conv(4 * width, (3, 3)) for width in self.widths[1:]]
    self.to_rgb = nn.Conv(self.image_shape[-1], (3, 3))

  def __call__(self, z: jax.Array) -> jax.Array:
    return self.synthesis(self.mapping(z))

  def mapping(self, z: jax.Array) -> jax.Array:
    z = pixel_norm(z)
    w = z
    for dense in self.mapping_mlp:
      w = nn.leaky_relu(dense(w), 0.2)
    return jnp.concatenate([z, w], axis=-1)

  def synthesis(self, s: jax.Array) -> jax.Array:
    z, w = jnp.split(s, 2, axis=-1)
    side = self.image_shape[0] // 2 ** (len(self.widths) - 1)
    x = self.seed(z).reshape(-1, side, side, self.widths[0])
    for i, style in enumerate(self.styles):
      if i:
        x = depth_to_space(self.upsamples[i - 1](x))
      x = pixel_norm(nn.leaky_relu(x, 0.2))
      scale, shift = jnp.split(style(w), 2, axis=-1)
      x = x * (1 + scale[:, None, None]) + shift[:, None, None]
    return jnp.tanh(self.to_rgb(x))


class Discriminator(nn.Module):
  """Images (B, H, W, C) in [-1, 1] -> real-vs-generated logits (B,)."""

  widths: Sequence[int] = (64, 128)

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    x = images
    for width in self.widths:
      x = nn.leaky_relu(nn.Conv(width, (4, 4), strides=(2, 2))(x), 0.2)
    return nn.Dense(1)(x.reshape(len(x), -1))[:, 0]
