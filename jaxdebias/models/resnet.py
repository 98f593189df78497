"""ResNet classifiers (He et al., 2016) for larger images such as 128x128 CelebA.

GroupNorm (Wu & He, 2018) stands in for BatchNorm, so the classifier is a pure function of
(params, images): the methods vmap seeds, run f_B and f_D in one step and evaluate with the same
apply, with no batch statistics to carry. No ImageNet pre-training (nothing is downloaded at run
time); the latent de-biasing paper fine-tunes an ImageNet ResNet-50 instead. ResNet-18:
stage_sizes (2, 2, 2, 2); ResNet-50: (3, 4, 6, 3) with bottleneck blocks.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax

from jaxdebias.models import layers


def _norm(channels: int) -> nn.GroupNorm:
  return nn.GroupNorm(num_groups=min(32, channels))


class Block(nn.Module):
  """A residual block: basic (two 3x3 convs) or bottleneck (1x1, 3x3, 1x1 to 4x width)."""

  width: int
  strides: int
  bottleneck: bool
  patches: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    out_channels = 4 * self.width if self.bottleneck else self.width
    if self.bottleneck:
      kernels = ((1, self.width, 1), (3, self.width, self.strides), (1, out_channels, 1))
    else:
      kernels = ((3, self.width, self.strides), (3, out_channels, 1))
    y = x
    for i, (k, channels, strides) in enumerate(kernels):
      y = layers.Conv(channels, (k, k), strides, use_bias=False, patches=self.patches)(y)
      y = _norm(channels)(y)
      if i < len(kernels) - 1:
        y = nn.relu(y)
    if x.shape[-1] != out_channels or self.strides != 1:
      x = _norm(out_channels)(
          layers.Conv(out_channels, (1, 1), self.strides, use_bias=False, patches=self.patches)(x)
      )
    return nn.relu(x + y)


class ResNet(nn.Module):
  """Images (B, H, W, C) float -> logits (B, num_classes)."""

  num_classes: int
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  bottleneck: bool = False
  width: int = 64
  # Convolutions as matmuls over patches (layers.Conv): None, on CPU only.
  patch_conv: bool | None = None

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    patches = jax.default_backend() == "cpu" if self.patch_conv is None else self.patch_conv
    x = layers.Conv(self.width, (7, 7), 2, use_bias=False, patches=patches)(images)
    x = nn.relu(_norm(self.width)(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
    for i, blocks in enumerate(self.stage_sizes):
      for j in range(blocks):
        x = Block(self.width * 2**i, 2 if i and not j else 1, self.bottleneck, patches)(x)
    return layers.Dense(self.num_classes)(x.mean(axis=(1, 2)))
