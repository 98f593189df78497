"""Classifier networks chosen by `config.model.name`, how uint8 pixels become the inputs of
classifiers and generators, and how a jitted network runs over host arrays."""

from collections.abc import Callable
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdebias.errors import InputError
from jaxdebias.models.convnet import SimpleConvNet
from jaxdebias.models.mlp import MLP
from jaxdebias.models.resnet import ResNet

MODELS = {"mlp": MLP, "resnet": ResNet, "simple_convnet": SimpleConvNet}


def _divided_by(divisor: float) -> Callable[[jax.Array], jax.Array]:
  return lambda images: images.astype(jnp.float32) / divisor


def to_signed(images: jax.Array) -> jax.Array:
  """uint8 pixels -> float32 in [-1, 1], the generators' range."""
  return images.astype(jnp.float32) / 127.5 - 1.0


# config.input_scaling -> uint8 images to float32 model inputs.
INPUT_SCALINGS = {
    "unit": _divided_by(255.0),  # [0, 1], as the LfF paper describes.
    # The LfF reference code divides by 255 twice (by accident): inputs in [0, 1/255]. Its
    # published Colored MNIST numbers were obtained that way; see README "Results".
    "lff_reference": _divided_by(255.0**2),
    # [-1, 1]: ToTensor then Normalize(0.5, 0.5), the ReBias inputs (configs/biased_mnist.py).
    "signed": to_signed,
}


def default_config() -> ml_collections.ConfigDict:
  """config.model: the LfF protocol's MLP."""
  return ml_collections.ConfigDict({"name": "mlp", "hidden": (100, 100, 100)})


# config.compute_dtype -> the dtype networks compute in (parameters stay float32).
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class MixedPrecision:
  """A Flax module computing in a lower precision with float32 parameters: `apply` casts the
  parameters and floating inputs to `dtype` and the floating outputs back to float32. Gradients,
  optimizer states, EMAs and losses stay float32 (the usual mixed-precision recipe); only the
  network's own arithmetic (the matmuls, which bound the step on accelerators) is bfloat16."""

  def __init__(self, module: nn.Module, dtype):
    self.module, self.dtype = module, dtype

  def init(self, *args, **kwargs):
    return self.module.init(*args, **kwargs)

  def apply(self, variables, *args, **kwargs):
    variables, args = _cast((variables, args), self.dtype)
    return _cast(self.module.apply(variables, *args, **kwargs), jnp.float32)

  def clone(self, **updates) -> "MixedPrecision":
    return MixedPrecision(self.module.clone(**updates), self.dtype)


def _cast(tree, dtype):
  floating = lambda x: hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)
  return jax.tree.map(lambda x: x.astype(dtype) if floating(x) else x, tree)


def in_compute_dtype(module: nn.Module, compute_dtype: str):
  """`module`, computing in `compute_dtype` (COMPUTE_DTYPES) with float32 parameters."""
  if compute_dtype not in COMPUTE_DTYPES:
    raise InputError(
        f"compute_dtype is {compute_dtype!r}; set --config.compute_dtype to one of "
        f"{sorted(COMPUTE_DTYPES)}."
    )
  if compute_dtype == "float32":
    return module
  return MixedPrecision(module, COMPUTE_DTYPES[compute_dtype])


def create(
    model_config: ml_collections.ConfigDict, num_classes: int, compute_dtype: str = "float32"
) -> nn.Module:
  """Builds the classifier named by `model_config.name` with `num_classes` outputs, computing
  in `compute_dtype` (`in_compute_dtype`)."""
  if model_config.name not in MODELS:
    raise InputError(
        f"Unknown model {model_config.name!r}; set --config.model.name to one of "
        f"{sorted(MODELS)}."
    )
  # Fields of other models are ignored (config files over base_config keep the MLP's `hidden`);
  # fields of no model are typos.
  fields = lambda cls: {f.name for f in dataclasses.fields(cls)} - {"num_classes", "parent", "name"}
  unknown = set(model_config) - {"name"} - set().union(*map(fields, MODELS.values()))
  if unknown:
    raise InputError(
        f"Unknown model field(s) {sorted(unknown)}; --config.model.* takes "
        f"{sorted(fields(MODELS[model_config.name]))} for {model_config.name}."
    )
  model = MODELS[model_config.name]
  kwargs = {k: v for k, v in model_config.items() if k in fields(model)}
  for key, value in kwargs.items():  # Sizes: widths, depths, stage sizes.
    sizes = value if isinstance(value, (tuple, list)) else (value,)
    if any(isinstance(v, int) and not isinstance(v, bool) and v < 1 for v in sizes):
      raise InputError(
          f"model.{key} is {value!r}; sizes must be positive integers: set --config.model.{key}."
      )
  return in_compute_dtype(model(num_classes=num_classes, **kwargs), compute_dtype)


def init_params(model: nn.Module, rng: jax.Array, image_shape: tuple[int, ...]):
  """Initialises `model` on a dummy batch of one image."""
  return model.init(rng, jnp.zeros((1, *image_shape), jnp.float32))


def input_scaler(input_scaling: str) -> Callable[[jax.Array], jax.Array]:
  """uint8 images -> float32 model inputs, scaled as `input_scaling` (INPUT_SCALINGS) names."""
  if input_scaling not in INPUT_SCALINGS:
    raise InputError(
        f"Unknown input_scaling {input_scaling!r}; set --config.input_scaling to one of "
        f"{sorted(INPUT_SCALINGS)}."
    )
  return INPUT_SCALINGS[input_scaling]


def to_uint8(images: jax.Array) -> jax.Array:
  """Generator output in [-1, 1] (clipped) -> uint8 pixels."""
  return jnp.round((jnp.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(jnp.uint8)


def on_host(fn: Callable[[jax.Array], jax.Array], batch_size: int = 1000):
  """jit(fn) as a host function on NumPy arrays, `batch_size` rows at a time."""
  jitted = jax.jit(fn)
  return lambda x: np.concatenate(
      [np.asarray(jitted(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
  )
