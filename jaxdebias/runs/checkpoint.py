"""Orbax checkpoints of the whole training state, with resume and clear errors."""

from typing import Any

from etils import epath
import jax
import orbax.checkpoint as ocp

from jaxdebias.errors import InputError


class Checkpointer:
  """Saves the training pytree every eval and restores the latest one on rerun.

  The pytree holds everything a run needs to continue exactly: the method state (params of
  every model, optimizer states, EMA buffers, step). The data order needs no saving: it is a
  function of (seed, step) (data/sampler.py).
  """

  def __init__(self, directory: epath.PathLike, keep: int):
    self.directory = epath.Path(directory)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            preservation_policy=ocp.checkpoint_managers.LatestN(keep), create=True
        ),
    )

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, tree: Any) -> None:
    self.manager.save(step, args=ocp.args.StandardSave(tree))

  def restore(self, step: int, like: Any) -> Any:
    """Restores `step` into the structure, shapes and dtypes of `like` (abstract or concrete)."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    where = self.directory / str(step)
    try:
      restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # Orbax/tensorstore raise many types for damaged or foreign files.
      raise InputError(
          f"The checkpoint {where} cannot be restored ({type(e).__name__}: {_first_line(e)}); "
          "it was left untouched: move it away to resume from an earlier one, or use a new "
          "--workdir."
      ) from e
    mismatched = [
        jax.tree_util.keystr(path)
        for path, got, want in _zip_with_path(restored, abstract)
        if got.shape != want.shape or got.dtype != want.dtype
    ]
    if mismatched:
      raise InputError(
          f"The checkpoint {where} does not fit this config (shape or dtype differs at "
          f"{', '.join(mismatched[:3])}); use a new --workdir for a different model or dataset."
      )
    return restored

  def wait_until_finished(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def _zip_with_path(tree, other):
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return [(path, leaf, want) for (path, leaf), want in zip(leaves, jax.tree.leaves(other))]


def _first_line(e: Exception) -> str:
  text = str(e).strip().splitlines()
  return text[0][:200] if text else "no message"
