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
# nn.Dense with its default initial values, compiled fast (same parameter names).
Dense = functools.partial(nn.Dense, kernel_init=lecun_normal)


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """lax.conv's 'SAME' padding of one side: outputs ceil(size / stride)."""
  total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def patch_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int] = (1, 1)) -> jax.Array:
  """A 'SAME' convolution (NHWC images, HWIO kernel) as one matmul over the images' patches
  (im2col, the patches gathered by strided slices, not by a convolution).

  XLA's CPU backend runs its own convolution slowly, and about 10x slower again inside a
  `lax.scan` (the trainer's loop); the matmul it runs at its matmul rate: SimpleConvNet's step
  is 3x faster than with lax.conv outside a scan and 30x faster inside one
  (benchmarks/convnet_cpu.py). Equal to lax.conv up to float rounding.
  """
  (kh, kw), (sh, sw) = kernel.shape[:2], strides
  height, width = x.shape[1:3]
  pads = _same_padding(height, kh, sh), _same_padding(width, kw, sw)
  padded = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  out_h, out_w = -(-height // sh), -(-width // sw)
  patches = jnp.concatenate(
      [
          padded[:, i : i + sh * (out_h - 1) + 1 : sh, j : j + sw * (out_w - 1) + 1 : sw]
          for i in range(kh)
          for j in range(kw)
      ],
      axis=-1,
  )
  return patches @ kernel.reshape(-1, kernel.shape[-1])


class Conv(nn.Module):
  """nn.Conv(features, kernel_size, strides, padding='SAME') with the same parameters ('kernel'
  HWIO, 'bias') and Flax's initial values (compiled fast), computed by lax.conv or, with
  `patches`, by `patch_conv`. SimpleConvNet and the ResNets take patches on CPU, where
  lax.conv inside the trainer's scan is 10-30x slower (benchmarks/convnet_cpu.py; ResNet-18 at
  batch 16 in a one-off run, 0.7 against 11.5 images/s); the DCGAN, stepped one call at a time
  (no scan), keeps lax.conv, the faster there for its 3x3 and 4x4 kernels in a one-off timing."""

  features: int
  kernel_size: tuple[int, int]
  strides: int | tuple[int, int] = 1
  use_bias: bool = True
  kernel_init: Initializer = lecun_normal
  patches: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    shape = (*self.kernel_size, x.shape[-1], self.features)
    kernel = self.param("kernel", self.kernel_init, shape, jnp.float32)
    dtype = jnp.result_type(x, kernel)
    x, kernel = x.astype(dtype), kernel.astype(dtype)
    strides = (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides)
    if self.patches:
      y = patch_conv(x, kernel, strides)
    else:
      y = jax.lax.conv_general_dilated(
          x, kernel, strides, "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
      )
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
    return y
