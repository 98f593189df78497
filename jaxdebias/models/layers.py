"""Dense and Conv layers and initializers: Flax's initial values, compiled fast on CPU.

JAX's default (partitionable) threefry numbers the elements of a random draw by their row-major
index, so a kernel drawn as one flat (1, n) row and reshaped holds the same values as the draw
in its own shape. XLA's CPU backend compiles the draw in the kernel's shape far slower when its
last axis is short (a 4x4x3x8 conv kernel: 3-5 s against 0.5 s; a 3136x10 dense kernel: 2 s),
and every layer's initialisation paid it: a small DCGAN's init took 10 s to compile.
"""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

Initializer = jax.nn.initializers.Initializer


def variance_scaling(scale: float, mode: str, distribution: str) -> Initializer:
  """nn.initializers.variance_scaling(scale, mode, distribution) (fans from the last two axes:
  in, out), drawn as a flat row: variance scale / fan is passed as the scale of a row's draw,
  whose fan_in is 1, so the values are bit-identical (tests/test_models.py)."""

  def init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    receptive_field = math.prod(shape[:-2])
    fan_in, fan_out = shape[-2] * receptive_field, shape[-1] * receptive_field
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    row = nn.initializers.variance_scaling(scale / fan, "fan_in", distribution)
    return row(key, (1, math.prod(shape)), dtype).reshape(shape)

  return init


def random_normal(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
  """jax.random.normal(key, shape, dtype), drawn as a flat vector: the same values."""
  return jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)


def normal(stddev: float) -> Initializer:
  """nn.initializers.normal(stddev), drawn as a flat vector."""
  return lambda key, shape, dtype=jnp.float32: random_normal(key, shape, dtype) * jnp.array(
      stddev, dtype
  )


# nn.Dense's and nn.Conv's default kernel initializer.
lecun_normal = variance_scaling(1.0, "fan_in", "truncated_normal")
# nn.Dense and nn.Conv with their default initial values, compiled fast (same parameter names).
Dense = functools.partial(nn.Dense, kernel_init=lecun_normal)
Conv = functools.partial(nn.Conv, kernel_init=lecun_normal)


def patch_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """A stride-1 'SAME' convolution (NHWC images, HWIO kernel) as one matmul over the images'
  patches (im2col, the patches gathered by slicing, not by a convolution).

  XLA's CPU backend runs its own convolution slowly, and about 10x slower again inside a
  `lax.scan` (the trainer's loop); the matmul it runs at its matmul rate: SimpleConvNet's step
  is 3x faster than with lax.conv outside a scan and 30x faster inside one
  (benchmarks/convnet_cpu.py). Equal to lax.conv up to float rounding.
  """
  size = kernel.shape[0]
  pad = ((size - 1) // 2, size // 2)  # lax.conv's 'SAME' for stride 1.
  height, width = x.shape[1:3]
  padded = jnp.pad(x, ((0, 0), pad, pad, (0, 0)))
  patches = jnp.concatenate(
      [padded[:, i : i + height, j : j + width] for i in range(size) for j in range(size)], -1
  )
  return patches @ kernel.reshape(-1, kernel.shape[-1])


class SameConv(nn.Module):
  """nn.Conv(features, (size, size), padding='SAME', use_bias=False), the same parameter
  ('kernel', HWIO), computed by `patch_conv` on CPU (`patches`: None) or when asked, by
  lax.conv elsewhere (cuDNN on GPU, the TPU's convolution units)."""

  features: int
  kernel_size: int
  kernel_init: Initializer = lecun_normal
  patches: bool | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    shape = (self.kernel_size, self.kernel_size, x.shape[-1], self.features)
    kernel = self.param("kernel", self.kernel_init, shape, jnp.float32)
    patches = jax.default_backend() == "cpu" if self.patches is None else self.patches
    if patches:
      return patch_conv(x, kernel.astype(x.dtype))
    return jax.lax.conv_general_dilated(
        x, kernel.astype(x.dtype), (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
