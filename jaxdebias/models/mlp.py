"""The LfF Colored MNIST MLP: flatten -> 100 -> 100 -> 100 -> classes, ReLU."""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdebias.models import layers


def _torch_default_bias_init(fan_in: int):
  """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's nn.Linear bias default."""
  bound = fan_in**-0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


# PyTorch nn.Linear's default weight init (kaiming_uniform with a=sqrt(5)) is
# U(-1/sqrt(fan_in), 1/sqrt(fan_in)) = variance_scaling(1/3, fan_in, uniform).
# The published LfF numbers were obtained with it, so we use it too.
_torch_default_kernel_init = layers.variance_scaling(1 / 3, "fan_in", "uniform")


def torch_linear(width: int, fan_in: int, name: str | None = None) -> nn.Dense:
  """nn.Dense initialised as PyTorch's nn.Linear(fan_in, width) is by default."""
  return nn.Dense(
      width,
      kernel_init=_torch_default_kernel_init,
      bias_init=_torch_default_bias_init(fan_in),
      name=name,
  )


class MLP(nn.Module):
  """Multi-layer perceptron on flattened images (the LfF Colored MNIST model).

  Input: images (B, H, W, C) float in [0, 1]. Output: logits (B, num_classes).
  """

  num_classes: int
  hidden: Sequence[int] = (100, 100, 100)

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    x = images.reshape(images.shape[0], -1)
    for i, width in enumerate((*self.hidden, self.num_classes)):
      x = torch_linear(width, x.shape[-1], name=f"dense{i}")(x)
      if i < len(self.hidden):
        x = nn.relu(x)
    return x
