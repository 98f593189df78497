"""Device mesh and shardings: the same training code on 1 CPU, 8 devices, or many hosts.

The mesh has two axes, `data` and `model` (sizes from `config.mesh`; -1 takes the devices left).
Batches are split along `data`; parameters and optimizer states are replicated, or, with a
`model` axis larger than 1, their largest dimension divisible by it is split along `model`.
Everything else (the training set held on device, the per-example EMA buffers, scalars) is
replicated. The train step is written for one global batch; `jax.jit` partitions it (gradient
all-reduce, the EMA scatter of a split batch) from these shardings alone.
"""

from collections.abc import Sequence
import math
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxdebias.errors import InputError

DATA, MODEL = "data", "model"


def default_mesh_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({"data": -1, "model": 1})


def make_mesh(
    config: ml_collections.ConfigDict, devices: Sequence[jax.Device] | None = None
) -> Mesh:
  """A (data, model) mesh over `devices` (default: all devices of all processes)."""
  devices = list(jax.devices() if devices is None else devices)
  sizes = {DATA: config.data, MODEL: config.model}
  for name, size in sizes.items():
    if not isinstance(size, int) or size == 0 or size < -1:
      raise InputError(
          f"mesh.{name} must be a positive integer or -1 (all devices left), got {size!r}; "
          f"set --config.mesh.{name}."
      )
  fixed = math.prod(s for s in sizes.values() if s != -1)
  if list(sizes.values()).count(-1) > 1 or fixed > len(devices):
    raise InputError(
        f"mesh {sizes} does not fit the {len(devices)} devices; set --config.mesh.data and "
        "--config.mesh.model (at most one -1) so that their product is at most the device count."
    )
  shape = [len(devices) // fixed if s == -1 else s for s in sizes.values()]
  if math.prod(shape) != len(devices) and jax.process_count() > 1:
    raise InputError(
        f"mesh {dict(zip(sizes, shape))} leaves some of the {len(devices)} devices out, which "
        "a multi-process run cannot do; use mesh.data=-1 or a product equal to the device count."
    )
  devices = devices[: math.prod(shape)]  # A single process may use fewer devices than it has.
  # Auto axes: jit propagates shardings through the unannotated method code (no explicit
  # sharding-in-types annotations needed in the methods).
  auto = (jax.sharding.AxisType.Auto,) * 2
  return jax.make_mesh(shape, (DATA, MODEL), axis_types=auto, devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_axis(mesh: Mesh, ndim: int, axis: int) -> NamedSharding:
  """Arrays of rank `ndim` split along `data` at dimension `axis` (the batch dimension)."""
  spec = [None] * ndim
  spec[axis] = DATA
  return NamedSharding(mesh, P(*spec))


def state_shardings(state: Any, mesh: Mesh, num_members: int) -> Any:
  """Shardings of a method state: parameters and optimizer moments split along `model`.

  A parameter leaf of rank >= 2 (not counting the leading member axis when several members
  train side by side) is split along its largest dimension that `model` divides; all else (EMA
  buffers, step, hyperparameters, small leaves) is replicated. With `model` = 1: all replicated.
  """
  model_size = mesh.shape[MODEL]
  skip = 1 if num_members > 1 else 0

  def sharding(path, leaf) -> NamedSharding:
    if model_size == 1 or not _is_parameter(path):
      return replicated(mesh)
    dims = [d for d in range(skip, leaf.ndim) if leaf.shape[d] % model_size == 0]
    if leaf.ndim - skip < 2 or not dims:
      return replicated(mesh)
    spec = [None] * leaf.ndim
    spec[max(dims, key=lambda d: leaf.shape[d])] = MODEL
    return NamedSharding(mesh, P(*spec))

  return jax.tree_util.tree_map_with_path(sharding, state)


def _is_parameter(path) -> bool:
  """Parameters and optimizer moments (Adam's mu/nu mirror the parameter tree)."""
  names = [getattr(k, "name", getattr(k, "key", "")) for k in path]
  return any(n in ("params", "opt_state") for n in names)


def global_array(value: np.ndarray, sharding: NamedSharding) -> jax.Array:
  """`value`, known in full to every process, as one global array laid out as `sharding`."""
  value = np.asarray(value)
  return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])
