"""Members: the seeds and swept hyperparameter values of one run, trained side by side in one
compiled program (vmap over a leading member axis), and the jitted chunk of steps they run.

Data lives on the device; each jit call runs the steps up to the next evaluation with
`lax.scan`, gathering its batches on device from the indices `data.sampler` draws for them.
"""

import functools

import jax
from jax.sharding import Mesh
import ml_collections
import numpy as np

from jaxdebias import sharding
from jaxdebias.data import sampler
from jaxdebias.methods import Member, Method, members_of, stack

def init_members(config: ml_collections.ConfigDict, method: Method, mesh: Mesh):
  """The members of a run and their initial state, born in its sharding.

  With several members, the state carries a leading member axis. A member's initial weights
  and batch order come from its seed alone: members that differ only in hyperparameters start
  from the same weights and see the same batches.
  """
  members = members_of(method, config.seed, config.num_seeds)
  init_rng = stack([jax.random.key(m["seed"]) for m in members])
  hparams = stack([{k: np.float32(v) for k, v in m["hparams"].items()} for m in members])
  init = per_member(method.init, len(members))
  shardings = sharding.state_shardings(jax.eval_shape(init, init_rng, hparams), mesh, len(members))
  state = jax.jit(init, out_shardings=shardings)(init_rng, hparams)
  return members, state


def per_member(fn, num_members: int, in_axes=0):
  """`fn` for one member, or vmapped over a leading member axis when several train together."""
  return fn if num_members == 1 else jax.vmap(fn, in_axes=in_axes)


def chunk_indices(
    members: list[Member],
    start_step: int,
    num_steps: int,
    batch_size: int,
    num_examples: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
  """Every member's batch indices ([member,] num_steps, batch_size) for a chunk of steps (host),
  uniform or drawn in proportion to `weights` (data/sampler.py)."""
  indices = [
      sampler.batch_indices(m["seed"], start_step, num_steps, batch_size, num_examples, weights)
      for m in members
  ]
  return indices[0] if len(indices) == 1 else np.stack(indices)


def place_indices(indices: np.ndarray, mesh: Mesh) -> jax.Array:
  """Host batch indices ([member,] steps, batch) as a global array split along the batch."""
  return sharding.global_array(indices, sharding.batch_axis(mesh, indices.ndim, -1))


def chunk_runner(method: Method, num_members: int, mesh: Mesh, state, num_steps: int):
  """The jitted chunk of train steps (state donated, kept in its sharding) of a run of
  `num_steps` steps (which sets the scan's unrolling, `scan_unroll`).

  Takes (state, train data {'image', 'label'[, 'offset']}, global indices from `place_indices`)
  and, where the training images stream (`streaming.py`; then train data has no 'image'), the
  batches' images ([member,] steps, batch, H, W, C); returns (state, per-step metrics). In a pack
  of runs (`pack.py`) the runs' training splits lie one after another in train data, and
  'offset' (member,) is where each member's split starts.
  """
  state_sharding = jax.tree.map(lambda x: x.sharding, state)
  return jax.jit(
      functools.partial(_train_chunk, method, num_members, mesh, scan_unroll(num_steps)),
      out_shardings=(state_sharding, sharding.replicated(mesh)),
      donate_argnums=0,
  )


def scan_unroll(num_steps: int) -> int:
  """Steps per loop iteration of the training scan. Unrolling lets XLA overlap the end of one
  step (the optimizer update of one model) with the start of the next; 5 divides the 235-step
  chunks and measured fastest on CPU (benchmarks/speed.py: LfF 3.4 ms/step against 3.7 with 1).
  But it triples the chunk's compile time (LfF: about 3 s more on a 2-core CPU), which runs
  under 1,000 steps (tests, smoke runs) do not win back: they do not unroll. (Unrolling changes
  the float results in their last bits, so the rule is by length, fixed for a run.)"""
  return 5 if num_steps >= 1000 else 1


def _train_chunk(
    method: Method,
    num_members: int,
    mesh: Mesh,
    unroll: int,
    state,
    train: dict[str, jax.Array],
    indices,
    images=None,
):
  """Runs one train step per row of `indices` ([member,] steps, batch) in one scan, gathering
  each batch's images from train['image'] on device or taking them from streamed `images`.

  With several members, state and indices carry a leading member axis and the whole scan is
  vmapped: all members train in one compiled program. The batch's 'index' is the example's
  index in its own run's split (what per-example state such as LfF's EMA is indexed by).
  """

  def one_member(state, indices, images, offset):
    def step_fn(state, xs):
      index, streamed = xs
      rows = index if offset is None else offset + index
      if streamed is None:
        streamed = sharding.gather_rows(train["image"], rows, mesh)
      batch = {"image": streamed, "label": train["label"][rows], "index": index}
      return method.train_step(state, batch)

    return jax.lax.scan(step_fn, state, (indices, images), unroll=unroll)

  return per_member(one_member, num_members)(state, indices, images, train.get("offset"))
