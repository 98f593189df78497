"""The arrays every data source returns: splits whose row i is example i."""

from typing import NamedTuple

import numpy as np


class Split(NamedTuple):
  """One split; row i is example i."""

  images: np.ndarray  # (N, H, W, C) uint8; cached sources' are memory-mapped (read on use).
  label: np.ndarray  # (N,) int32
  bias_label: np.ndarray  # (N,) int32; -1 where unknown (generated training images)
  index: np.ndarray  # (N,) int32, equals np.arange(N)


class BiasedDataset(NamedTuple):
  """Train and test splits (and an optional validation split) of one dataset."""

  name: str
  train: Split
  test: Split
  valid: Split | None
  num_classes: int
  num_bias_classes: int
  num_synthetic: int = 0  # The last num_synthetic training rows are generated (added pairs).


def make_split(images: np.ndarray, label: np.ndarray, bias_label: np.ndarray) -> Split:
  """A Split of these rows, labels as int32 and the index 0..N-1."""
  return Split(
      images,
      label.astype(np.int32),
      bias_label.astype(np.int32),
      np.arange(len(label), dtype=np.int32),
  )
