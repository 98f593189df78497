"""The GAN trainer: the generator of latent de-biasing and synthetic bias amplification.

`python -m jaxdebias.main --config=configs/colored_mnist_gan.py --workdir=DIR` (trainer=gan)
trains `methods.gan.GAN` on the dataset's training images through the shared loop (`loop.py`):
config.json, metrics.jsonl, Orbax checkpoints, exact resume, a clear error on a non-finite loss,
results.json at the end; every `eval_every` steps samples/step_N.png, a grid of images from
fixed latents (conditional: row r shows class r; with gan.pseudo_bias, column c pseudo bias c).
generator.json records what builds the module; `runs.load_generator(DIR)` reads the trained
generator back.

Steps run as one jit call each rather than in a `lax.scan`: XLA's CPU backend runs convolutions
inside a while loop about 20x slower than outside one (measured: 1.0 s against 0.05 s per step).
"""

import functools
import time
from typing import Any

from etils import epath
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdebias import data, previews, runs, sharding
from jaxdebias.data import sampler
from jaxdebias.errors import InputError
from jaxdebias.methods import amplified
from jaxdebias.methods.gan import GAN
from jaxdebias.models import dcgan, layers
from jaxdebias.trainers import loop, members, streaming

GRID = 10  # Sample grids are GRID x GRID images.


@runs.locked
def train_gan(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the GAN of `config` on its dataset's training images; returns results.json (the
  last evaluation's training metrics)."""
  if not 0 <= config.gan.pseudo_conflicting_share < 1:
    raise InputError(
        f"gan.pseudo_conflicting_share must lie in [0, 1), got "
        f"{config.gan.pseudo_conflicting_share}; set --config.gan.pseudo_conflicting_share."
    )
  if config.gan.pseudo_bias and not (config.gan.conditional and config.amplifier.workdir):
    raise InputError(
        "gan.pseudo_bias conditions a class-conditional GAN on the bias amplifier's pseudo bias "
        "labels; set --config.gan.conditional and --config.amplifier.workdir (a finished "
        "amplifier run)."
    )
  workdir, finished = loop.start(config, workdir)
  if finished is not None:
    return finished
  mesh = sharding.make_mesh(config.mesh)
  streaming.check(config)
  dataset, data_read = loop.read_dataset(config.data)
  split = dataset.train
  factors, conditions, rows = _conditions(config, dataset)
  gan = GAN(config, split.images.shape[1:], sum(factors))
  started = time.perf_counter()
  state = jax.jit(gan.init, out_shardings=sharding.replicated(mesh))(jax.random.key(config.seed))
  labels = sharding.global_array(conditions, sharding.replicated(mesh))

  @functools.partial(jax.jit, donate_argnums=0)
  def step_fn(state, table, images, labels, index):
    """One step on a batch: its images streamed, or (None) gathered from the table."""
    if images is None:
      images = sharding.gather_rows(table, index, mesh)
    return gan.train_step(state, images, labels[index])

  def batch_rows(step: int, num_steps: int) -> np.ndarray:
    positions = sampler.batch_indices(config.seed, step, num_steps, config.batch_size, len(rows))
    return rows[positions]

  streamed = streaming.streams(config, split.images, mesh)
  if streamed:
    host = streaming.training_batches(config, split.images, mesh, batch_rows)
    batches = lambda step, num_steps: (
        (None, images[i], indices[i])
        for indices, images in host.pieces(step, num_steps)
        for i in range(len(indices))
    )
  else:
    table = sharding.shard_rows(split.images, mesh)
    batches = lambda step, num_steps: (
        (table, None, members.place_indices(index, mesh)) for index in batch_rows(step, num_steps)
    )
  fixed_z = gan.latents(
      layers.random_normal(jax.random.key(config.seed + 1), (GRID * GRID, gan.latent_dim)),
      jnp.asarray(_grid_conditions(factors)),
  )

  def run_chunk(state, step: int, num_steps: int):
    chunk = []
    for table, images, index in batches(step, num_steps):
      state, metrics = step_fn(state, table, images, labels, index)
      chunk.append(metrics)
    return state, {k: jnp.stack([m[k] for m in chunk]) for k in chunk[0]}

  images = jax.jit(gan.images)

  def evaluate(state, step: int):
    samples = images(state, fixed_z)

    def records(train_means: dict[str, np.ndarray]):
      _write_grid(workdir / "samples" / f"step_{step}.png", gan.image_shape, samples)
      return [{"step": step, **{k: float(v[0]) for k, v in train_means.items()}}]

    return records

  def progress(records) -> dict[str, str]:
    record = records[0]
    return {
        "D loss": f"{record['discriminator_loss']:.3f}",
        "G loss": f"{record['generator_loss']:.3f}",
    }

  architecture = {
      "kind": "dcgan",
      "latent_dim": gan.latent_dim,
      "num_classes": gan.num_classes,
      "factors": factors,  # Sizes of the conditioning's factors: [classes(, pseudo bias)].
      "image_shape": gan.image_shape,
  }
  workdir.mkdir(parents=True, exist_ok=True)
  runs.write_json(workdir / runs.GENERATOR_JSON, architecture)
  (last,), seconds = loop.train(
      [loop.Part(config, workdir)],
      state,
      run_chunk,
      evaluate,
      name="gan",
      progress=progress,
      learning_rate_key="gan.learning_rate",
      data_read_seconds=data_read,
  )
  results = {
      **last,
      "trainer": "gan",
      "dataset": dataset.name,
      "train_images": "streamed" if streamed else "device",
      "train_seconds_this_run": round(time.perf_counter() - started, 2),
      "seconds_this_run": seconds,  # loop.SECONDS says what each is.
  }
  runs.write_json(workdir / "results.json", results)
  return results


def _conditions(config: ml_collections.ConfigDict, dataset: data.BiasedDataset):
  """(factor sizes, per-example conditioning, training rows): unconditional: [], labels, all
  rows; class-conditional: [K], the labels, all rows; with gan.pseudo_bias: [K, K], (label,
  K + the amplifier's pseudo bias) per example, and every row plus the pseudo-conflicting ones
  repeated until they are gan.pseudo_conflicting_share of the rows (methods/gan.py)."""
  split = dataset.train
  rows = np.arange(len(split.label))
  if not config.gan.conditional:
    return [], split.label, rows
  if not config.gan.pseudo_bias:
    return [dataset.num_classes], split.label, rows
  logits = runs.load_classifier(config.amplifier.workdir)(split.images)
  if logits.shape[-1] != dataset.num_classes:
    raise InputError(
        f"the amplifier at {config.amplifier.workdir} has {logits.shape[-1]} classes, the data "
        f"{dataset.num_classes}; set --config.amplifier.workdir to an amplifier of this data."
    )
  bias = amplified.pseudo_bias(logits, split.label, min_loss=config.amplifier.min_loss)
  conflicting = np.flatnonzero(bias != split.label)
  share = config.gan.pseudo_conflicting_share
  extra = round(share * len(rows) / (1 - share)) - len(conflicting)
  if len(conflicting) and extra > 0:
    rows = np.concatenate([rows, np.resize(conflicting, extra)])
  factors = [dataset.num_classes] * 2
  conditions = dcgan.factor_entries(np.stack([split.label, bias], axis=1), factors)
  return factors, conditions.astype(np.int32), rows


def _grid_conditions(factors: list[int]) -> np.ndarray:
  """The conditioning of the sample grid's cells: row r shows class r % K; with a second
  factor, column c its value c % K' (offset into its one-hot entries)."""
  cell = np.arange(GRID * GRID)
  if not factors:
    return np.zeros_like(cell)  # Unused: unconditional.
  grid_row = cell // GRID % factors[0]
  if len(factors) == 1:
    return grid_row
  return dcgan.factor_entries(np.stack([grid_row, cell % GRID % factors[1]], axis=1), factors)


def _write_grid(path: epath.Path, image_shape, images: jax.Array) -> None:
  """A GRID x GRID PNG of GRID**2 `images` (process 0 only)."""
  if not runs.is_main_process():
    return
  h, w, c = image_shape
  grid = np.asarray(images).reshape(GRID, GRID, h, w, c).transpose(0, 2, 1, 3, 4)
  path.parent.mkdir(parents=True, exist_ok=True)
  previews.write_png(path, grid.reshape(GRID * h, GRID * w, c))
