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
A tinted generator is layered, for images that are a grey shape times one colour per image
(Colored MNIST's strokes): the network draws a grey mask, and a separate part of the style, the
tint t, sets the colour, so an edit of t changes the colour and nothing else.
Images are NHWC in [-1, 1].
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxdebias.models import layers


def pixel_norm(x: jax.Array, eps: float = 1e-8) -> jax.Array:
  """Scales each feature vector (last axis) to unit root mean square."""
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


def depth_to_space(x: jax.Array) -> jax.Array:
  """(B, H, W, 4C) -> (B, 2H, 2W, C): each pixel's channels become a 2x2 block."""
  b, h, w, c = x.shape
  x = x.reshape(b, h, w, 2, 2, c // 4).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c // 4)


class Generator(nn.Module):
  """latents (B, latent_dim [+ num_classes]) -> images (B, H, W, C) in [-1, 1], as
  synthesis(mapping(latents)).

  Class-conditional with num_classes > 0: the latent carries the class as a one-hot after z,
  so a conditional generator is still a function of one array (`conditional_latents`).
  mapping: latents -> the synthesis input s = [h, w]: h = [pixel-normed z, one-hot class] and
  the style w = MLP(h) (B, latent_dim).
  synthesis: a seed of (H, W) / 2**(len(widths) - 1) pixels (rounded up) from h, doubled once
  per width after the first, every layer's channels scaled and shifted by an affine map of w,
  and cropped to (H, W) where the sides do not halve whole. (A seed
  from w alone collapsed to a few digit shapes in training.)
  Tinted: mapping also makes the tint t = MLP_t(h) (B, C), the colour's logits, appended to s;
  synthesis draws a one-channel mask m in [0, 1] from h and w, and the image is
  2 m sigmoid(t) - 1. Only t sets the colour and t sets nothing else; t has exactly C
  coordinates because any more would span directions that leave the colour unchanged (which a
  colour boundary fitted in t would then partly move along).
  """

  image_shape: tuple[int, int, int] = (28, 28, 3)
  latent_dim: int = 64
  widths: Sequence[int] = (96, 48, 24)  # Seed channels, then one per doubling.
  mapping_layers: int = 2
  num_classes: int = 0
  tinted: bool = False

  def setup(self):
    height, width = self.seed_shape
    self.mapping_mlp = [layers.Dense(self.latent_dim) for _ in range(self.mapping_layers)]
    self.seed = layers.Dense(height * width * self.widths[0])
    self.styles = [layers.Dense(2 * width) for width in self.widths]
    self.upsamples = [layers.Conv(4 * width, (3, 3)) for width in self.widths[1:]]
    self.to_rgb = layers.Conv(1 if self.tinted else self.image_shape[-1], (3, 3))
    if self.tinted:  # Hidden layers as wide as the mapping's: t must tell the digit from h.
      hidden = [layers.Dense(self.latent_dim) for _ in range(self.mapping_layers)]
      self.tint_mlp = hidden + [layers.Dense(self.image_shape[-1])]

  @property
  def seed_shape(self) -> tuple[int, int]:
    """(height, width) of the seed: the image's, halved once per doubling, rounded up."""
    doublings = 2 ** (len(self.widths) - 1)
    return -(-self.image_shape[0] // doublings), -(-self.image_shape[1] // doublings)

  def __call__(self, latents: jax.Array) -> jax.Array:
    return self.synthesis(self.mapping(latents))

  def mapping(self, latents: jax.Array) -> jax.Array:
    z, one_hot = latents[:, : self.latent_dim], latents[:, self.latent_dim :]
    h = jnp.concatenate([pixel_norm(z), one_hot], axis=-1)
    w = h
    for dense in self.mapping_mlp:
      w = nn.leaky_relu(dense(w), 0.2)
    if not self.tinted:
      return jnp.concatenate([h, w], axis=-1)
    t = h
    for dense in self.tint_mlp[:-1]:
      t = nn.leaky_relu(dense(t), 0.2)
    return jnp.concatenate([h, w, self.tint_mlp[-1](t)], axis=-1)

  def synthesis(self, s: jax.Array) -> jax.Array:
    tint_dim = self.image_shape[-1] if self.tinted else 0
    s, t = s[:, : s.shape[-1] - tint_dim], s[:, s.shape[-1] - tint_dim :]
    h, w = s[:, : -self.latent_dim], s[:, -self.latent_dim :]
    x = self.seed(h).reshape(-1, *self.seed_shape, self.widths[0])
    for i, style in enumerate(self.styles):
      if i:
        x = depth_to_space(self.upsamples[i - 1](x))
      x = pixel_norm(nn.leaky_relu(x, 0.2))
      scale, shift = jnp.split(style(w), 2, axis=-1)
      x = x * (1 + scale[:, None, None]) + shift[:, None, None]
    x = _center_crop(x, self.image_shape[:2])
    if not self.tinted:
      return jnp.tanh(self.to_rgb(x))
    mask = nn.sigmoid(self.to_rgb(x))
    return 2 * mask * nn.sigmoid(t)[:, None, None] - 1


def _center_crop(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """The middle (height, width) = `size` pixels of NHWC `x` (itself where it is that size)."""
  top, left = (x.shape[1] - size[0]) // 2, (x.shape[2] - size[1]) // 2
  return x[:, top : top + size[0], left : left + size[1]]


def factor_entries(values: np.ndarray, factors) -> np.ndarray:
  """Per-factor values (N, F) -> their entries of one one-hot table: factor f's values index
  the entries after those of the factors before it (sizes `factors`)."""
  return np.asarray(values) + np.cumsum([0, *factors[:-1]])


def conditional_latents(z: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
  """The latents of a conditional Generator: z followed by the one-hot class, or for labels
  (B, F) of F factors (indices into one table of num_classes entries), their multi-hot sum."""
  one_hot = jax.nn.one_hot(labels, num_classes, dtype=z.dtype)
  return jnp.concatenate([z, one_hot if one_hot.ndim == 2 else one_hot.sum(1)], axis=-1)


class Discriminator(nn.Module):
  """Images (B, H, W, C) in [-1, 1] -> real-vs-generated logits (B,).

  With num_classes > 0, a projection discriminator (Miyato & Koyama, 2018): the logit adds the
  inner product of the features with a learned embedding of the image's class.
  """

  widths: Sequence[int] = (64, 128)
  num_classes: int = 0

  @nn.compact
  def __call__(self, images: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    x = images
    for width in self.widths:
      x = nn.leaky_relu(layers.Conv(width, (4, 4), strides=(2, 2))(x), 0.2)
    features = x.reshape(len(x), -1)
    logits = layers.Dense(1)(features)[:, 0]
    if self.num_classes:
      embedding = nn.Embed(self.num_classes, features.shape[-1], name="class_embedding")
      embedded = embedding(labels)  # (B, D), or (B, F, D) for F factors: their sum.
      embedded = embedded if embedded.ndim == 2 else embedded.sum(1)
      logits = logits + jnp.sum(embedded * features, axis=-1)
    return logits


def widths_for(image_shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """(generator widths, discriminator widths) for images of `image_shape` (H, W, C): one
  doubling per halving of the smaller side that keeps the seed at least 4 pixels (at most 4;
  sides that do not halve whole are generated larger and cropped), channels doubling (up to
  256) towards the seed; for 28x28 the widths the Colored MNIST GAN was tuned with, (96, 48,
  24) and (64, 128)."""
  doublings = 0
  while doublings < 4 and min(image_shape[:2]) // 2 ** (doublings + 1) >= 4:
    doublings += 1
  generator = tuple(min(256, 24 * 2**k) for k in range(doublings, -1, -1))
  discriminator = (64, 128) + (256,) * max(0, doublings - 2)
  return generator, discriminator
