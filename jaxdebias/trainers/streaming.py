"""Training images on the device, or streamed from the host when they do not fit.

`config.train_images`: "device" puts the whole training split on the devices (split by rows
along `data`, `sharding.shard_rows`) and each step gathers its batch there; "stream" leaves it in
host memory or storage (the data sources memory-map their images) and sends each chunk's
batches to the devices, read while the previous piece trains; "auto" (default) streams when a
device's share of the split exceeds `config.device_images_budget_gib` (default a quarter of the
device's memory; on CPU, of the host's RAM). Both give the same batches in the same order
(`data.sampler`), so the same run either way. The test split follows the same rule on its
own (`evaluator.Evaluator` reads it in pieces at each evaluation when it streams).

Streamed pieces: a chunk of steps is sent in pieces of at most `PIECE_BYTES` per process (a
divisor of the chunk length, so that pieces share one compiled program), each split along the
batch like the device path's batches; every process reads only the rows its own devices take.
One background thread reads the next piece, including the next chunk's first, while the
devices run the current one.
"""

from collections.abc import Callable, Iterator
import concurrent.futures
import itertools
import os

from absl import logging
import jax
from jax.sharding import Mesh
import ml_collections
import numpy as np

from jaxdebias import runs, sharding
from jaxdebias.errors import InputError
from jaxdebias.trainers import loop, members

CHOICES = ("auto", "device", "stream")
PIECE_BYTES = 256 * 2**20


def check(config: ml_collections.ConfigDict) -> None:
  """InputError for a train_images or device_images_budget_gib the module cannot use."""
  if config.train_images not in CHOICES:
    raise InputError(
        f"train_images is {config.train_images!r}; set --config.train_images to one of "
        f"{', '.join(CHOICES)}."
    )
  budget = config.device_images_budget_gib
  if budget is not None and not budget > 0:
    raise InputError(
        f"device_images_budget_gib is {budget}; set it to a number of GiB > 0, or None (a "
        "quarter of the device's memory)."
    )


def streams(
    config: ml_collections.ConfigDict, images: np.ndarray, mesh: Mesh, split: str = "Training"
) -> bool:
  """Whether `config.train_images` streams these images of `split` (module doc; the test split
  follows the same rule); logged."""
  stream = config.train_images == "stream"
  if config.train_images == "auto":
    stream = images.nbytes / mesh.shape[sharding.DATA] > budget_bytes(config)
    stream = runs.process_zero_decides(stream)  # One choice: the processes' hosts may differ.
  logging.info(
      "%s images (%.2f GiB): %s.",
      split,
      images.nbytes / 2**30,
      "streamed from the host" if stream else "on the devices",
  )
  return stream


def budget_bytes(config: ml_collections.ConfigDict) -> int:
  """The bytes of training images a device may hold (`config.device_images_budget_gib`)."""
  budget = config.device_images_budget_gib
  if budget is None:
    return memory_bytes(jax.local_devices()[0]) // 4
  return int(budget * 2**30)


def memory_bytes(device: jax.Device) -> int:
  """The device's memory (its allocator's limit); on CPU, the host's physical RAM."""
  stats = device.memory_stats()
  if stats and "bytes_limit" in stats:
    return int(stats["bytes_limit"])
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def training_batches(
    config: ml_collections.ConfigDict,
    images: np.ndarray,
    mesh: Mesh,
    batch_indices: Callable[[int, int], np.ndarray],
    num_members: int = 1,
) -> "HostBatches":
  """HostBatches of a training schedule: chunks end at evaluations, the next one read ahead."""

  def next_chunk(end: int) -> tuple[int, int] | None:
    if end >= config.num_steps:
      return None
    return end, loop.steps_to_next_evaluation(config, end)

  rows_per_step = num_members * config.batch_size
  return HostBatches(images, mesh, batch_indices, rows_per_step, next_chunk)


class HostBatches:
  """The batches of a chunk of steps, read from host images and placed on the devices.

  batch_indices(step, num_steps) -> the rows of `images` the steps take, ([member,]
  num_steps, batch) (a pure function of its arguments), `rows_per_step` rows a step.
  `pieces(step, num_steps)` yields (global indices, global images) pieces covering the chunk in
  order: indices as `members.place_indices` lays them out, images ([member,] k, batch, H, W, C)
  uint8 split along the batch the same way. next_chunk(end) -> (first step, steps) of the chunk
  after one that ends at `end` (its first piece is read ahead), or None.
  """

  def __init__(
      self,
      images: np.ndarray,
      mesh: Mesh,
      batch_indices: Callable[[int, int], np.ndarray],
      rows_per_step: int,
      next_chunk: Callable[[int], tuple[int, int] | None] = lambda end: None,
  ):
    self.images, self.mesh = images, mesh
    self.batch_indices, self.next_chunk = batch_indices, next_chunk
    self.piece_steps = max(1, PIECE_BYTES // (rows_per_step * images[0].nbytes))
    # Its thread ends when this object is collected.
    self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="stream")
    self.ahead: tuple[tuple[int, int], concurrent.futures.Future] | None = None

  def pieces(self, step: int, num_steps: int) -> Iterator[tuple[jax.Array, jax.Array]]:
    ranges = self._ranges(step, num_steps)
    upcoming, following = ranges[1:], self.next_chunk(step + num_steps)
    if following is not None:  # Read ahead into the next chunk too.
      upcoming.append(self._ranges(*following)[0])
    for piece, after in itertools.zip_longest(ranges, upcoming):
      host = self._read(piece)
      if after is not None:
        self.ahead = after, self.pool.submit(self._host_piece, *after)
      yield self._place(*host)

  def _ranges(self, step: int, num_steps: int) -> list[tuple[int, int]]:
    """(first step, steps) of the pieces of a chunk: equal pieces, the longest divisor of the
    chunk length within PIECE_BYTES."""
    size = max(d for d in range(1, min(num_steps, self.piece_steps) + 1) if num_steps % d == 0)
    return [(s, size) for s in range(step, step + num_steps, size)]

  def _read(self, piece: tuple[int, int]):
    if self.ahead is not None and self.ahead[0] == piece:
      return self.ahead[1].result()
    return self._host_piece(*piece)

  def _host_piece(self, step: int, num_steps: int):
    """This process's part of a piece: the indices, and for each of its devices the image rows
    of its slice of the batches (read here, in the background thread)."""
    indices = self.batch_indices(step, num_steps)
    shape = (*indices.shape, *self.images.shape[1:])
    by_device = self._image_sharding(indices.ndim).addressable_devices_indices_map(shape)
    read = {}  # Devices that differ only along `model` take the same rows: read once.
    for index in by_device.values():
      key = str(index)
      if key not in read:
        mine = indices[index[: indices.ndim]]
        read[key] = self.images[mine.reshape(-1)].reshape(*mine.shape, *shape[indices.ndim :])
    return indices, shape, {device: read[str(index)] for device, index in by_device.items()}

  def _image_sharding(self, ndim: int):
    return sharding.batch_axis(self.mesh, ndim + self.images.ndim - 1, ndim - 1)

  def _place(self, indices: np.ndarray, shape: tuple[int, ...], rows: dict) -> tuple:
    placed = [jax.device_put(r, d) for d, r in rows.items()]
    images = jax.make_array_from_single_device_arrays(
        shape, self._image_sharding(indices.ndim), placed
    )
    return members.place_indices(indices, self.mesh), images
