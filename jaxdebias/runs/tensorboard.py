"""TensorBoard event files beside metrics.jsonl, so that sweeps can be watched the usual way
(`tensorboard --logdir=SWEEP_DIR`), written by tensorboardX: no TensorFlow needed.

workdir/tensorboard/MEMBER/: one directory per member (its seed and swept values, e.g.
`seed1,weight_decay=0.1`; `run` for a GAN), every number of each evaluation record as a scalar
at its step, under the record's names (`test/classifier/unbiased_accuracy`, `train/loss`).
A resumed run starts a new event file that purges the steps after its checkpoint, as
metrics.jsonl drops them; a finished run rerun writes nothing. Any path epath opens works
(gs://...).
"""

import numbers
import sys
from typing import Any

from etils import epath

from jaxdebias.runs.files import failed_writes_said, flatten, is_main_process


def _import_without_torch():
  """tensorboardX, imported without PyTorch.

  Its writer module imports torch whenever torch is installed (to accept torch tensors, which
  we never pass): 3 s of every run's start-up on a 2-core CPU. A None entry in sys.modules
  makes that `import torch` fail as if torch were absent; it is removed afterwards, and a torch
  the process imported before is left alone.
  """
  blocked = "torch" not in sys.modules
  if blocked:
    sys.modules["torch"] = None
  try:
    import tensorboardX  # pylint: disable=import-outside-toplevel
    from tensorboardX import record_writer  # pylint: disable=import-outside-toplevel
  finally:
    if blocked:
      del sys.modules["torch"]
  return tensorboardX, record_writer


tensorboardX, record_writer = _import_without_torch()


def member_name(flat: dict[str, Any]) -> str:
  """A member's directory name from its flattened record: seed and swept values."""
  if "seed" not in flat:
    return "run"
  swept = [f"{k[len('hparams/'):]}={v:g}" for k, v in flat.items() if k.startswith("hparams/")]
  return ",".join([f"seed{flat['seed']}", *swept])


class TensorBoardLog:
  """The event files of one training process, opened when its first record comes."""

  def __init__(self, directory: epath.Path, first_step: int):
    self.directory = directory
    self.first_step = first_step
    self.writers: dict[str, tensorboardX.SummaryWriter] = {}

  def write(self, record: dict[str, Any]) -> None:
    if not is_main_process():
      return
    flat = flatten(record)
    writer = self._writer(member_name(flat))
    for tag, value in flat.items():
      if tag in ("step", "seed") or tag.startswith("hparams/"):
        continue
      if isinstance(value, numbers.Real) and not isinstance(value, bool):
        writer.add_scalar(tag, value, flat["step"])

  def flush(self) -> None:
    with failed_writes_said(self.directory):
      for writer in self.writers.values():
        writer.flush()

  def close(self) -> None:
    with failed_writes_said(self.directory):
      for writer in self.writers.values():
        writer.close()

  def _writer(self, name: str) -> tensorboardX.SummaryWriter:
    if name not in self.writers:
      path = str(self.directory / name)
      if "://" in path:  # tensorboardX opens files by scheme: epath's for any non-local one.
        record_writer.register_writer_factory(path.split(":")[0], _EpathFiles())
      with failed_writes_said(self.directory):
        self.writers[name] = tensorboardX.SummaryWriter(
            path,
            # Past the checkpoint the run resumes from: what an earlier process logged there
            # is hidden, as metrics.jsonl drops it.
            purge_step=self.first_step + 1 if self.first_step else None,
            filename_suffix=f".from_step{self.first_step}",  # One file per (re)start.
        )
    return self.writers[name]


class _EpathFiles:
  """tensorboardX's writer factory for paths with a scheme (gs://, s3://): epath opens them."""

  def open(self, path: str):
    return epath.Path(path).open("wb")

  def directory_check(self, path: str) -> None:
    epath.Path(path).mkdir(parents=True, exist_ok=True)
