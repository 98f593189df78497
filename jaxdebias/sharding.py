"""Device mesh and shardings: the same training code on 1 CPU, 8 devices, or many hosts.

The mesh has two axes, `data` and `model` (sizes from `config.mesh`; -1 takes the devices left).
Batches are split along `data`; parameters and optimizer states are replicated, or, with a
`model` axis larger than 1, their largest dimension divisible by it is split along `model`.
The images are split by rows along `data` (`shard_rows`: each device holds 1/D of them and each
process reads only its devices' rows from storage) and batches are looked up in them with
`gather_rows`. Everything else (labels, the per-example EMA buffers, scalars) is replicated.
The train step is written for one global batch; `jax.jit` partitions it (gradient all-reduce,
the EMA scatter of a split batch) from these shardings alone.
"""

import math
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxdebias.errors import InputError

DATA, MODEL = "data", "model"


def default_mesh_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({"data": -1, "model": 1})


def make_mesh(config: ml_collections.ConfigDict) -> Mesh:
  """A (data, model) mesh over the devices of all processes (a single process may use fewer)."""
  devices = jax.devices()
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
  value = np.asarray(value)  # Each device takes its slice (global shape = the value's).
  return jax.make_array_from_process_local_data(sharding, value, value.shape)


def shard_rows(rows: np.ndarray, mesh: Mesh) -> jax.Array:
  """A table split by rows along `data`, padded with zero rows to a multiple of its size.

  Each process reads only the rows of its own devices: with `rows` a memory map (as
  `data.load_dataset` returns the images), the other rows are never read from storage.
  """
  per_device = -(-len(rows) // mesh.shape[DATA])
  shape = (per_device * mesh.shape[DATA], *rows.shape[1:])
  table = NamedSharding(mesh, P(DATA))
  starts = {index[0].start or 0 for index in table.addressable_devices_indices_map(shape).values()}
  start, stop = min(starts), max(starts) + per_device
  if stop - start != per_device * len(starts):
    raise InputError(
        f"process {jax.process_index()}'s devices hold rows that are not contiguous along "
        "`data`; build the mesh with jax.make_mesh's default device order (mesh.data=-1)."
    )
  if jax.process_count() > 1:
    logging.info("Process %d reads rows %d-%d of %d.", jax.process_index(), start, stop, len(rows))
  local = np.asarray(rows[start:stop])  # Past len(rows): fewer rows come back; pad with zeros.
  local = np.concatenate([local, np.zeros((stop - start - len(local), *shape[1:]), rows.dtype)])
  return jax.make_array_from_process_local_data(table, local, shape)


def gather_rows(table: jax.Array, index: jax.Array, mesh: Mesh) -> jax.Array:
  """table[index] for a `shard_rows` table: (B, ...) split along `data`.

  Each device looks up the rows of the batch that it holds (zeros for the others), and one
  reduce-scatter over `data` sums the devices' lookups and hands each device its slice of the
  batch: per step, B rows travel instead of the table.
  """
  if mesh.shape[DATA] == 1:
    return table[index]
  per_device = table.shape[0] // mesh.shape[DATA]

  def local(shard, index):
    offset = index - jax.lax.axis_index(DATA) * per_device
    mine = (offset >= 0) & (offset < per_device)
    rows = shard[jnp.clip(offset, 0, per_device - 1)]
    rows = jnp.where(mine.reshape(-1, *(1,) * (rows.ndim - 1)), rows, 0)
    return jax.lax.psum_scatter(rows, DATA, scatter_dimension=0, tiled=True)

  lookup = jax.shard_map(local, mesh=mesh, in_specs=(P(DATA), P()), out_specs=P(DATA))
  return lookup(table, index)
