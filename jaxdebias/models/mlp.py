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


class TorchLinear(nn.Module):
  """PyTorch's nn.Linear(fan_in, width): y = x @ weight.T + bias, with its default init.

  The weight is stored as PyTorch stores it, (width, fan_in), not as nn.Dense's kernel
  (fan_in, width): XLA's CPU matmul computes the weight gradient of the MLP's first layer,
  (256, 100)^T @ (256, 2352), about 20% faster into a (100, 2352) array than into a
  (2352, 100) one, which made the LfF step about 15% faster (one-off timings on a 2-core AMD
  EPYC; the end-to-end effect is in results/official_lff.md). The values are
  bit for bit those of the kernel layout: the initial weight is the kernel nn.Dense would draw,
  transposed, and XLA's matmul gives the same numbers in either layout.
  """

  width: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    fan_in = x.shape[-1]
    init = lambda key, shape: _torch_default_kernel_init(key, shape[::-1]).T
    weight = self.param("weight", init, (self.width, fan_in))
    bias = self.param("bias", _torch_default_bias_init(fan_in), (self.width,))
    return x @ weight.T + bias


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
      x = TorchLinear(width, name=f"dense{i}")(x)
      if i < len(self.hidden):
        x = nn.relu(x)
    return x
