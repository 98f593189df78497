"""Views of a dataset that a config asks for: the binary variant, a validation split cut from
the training split, and the bias attribute as the target."""

import numpy as np

from jaxdebias.data.records import BiasedDataset, make_split
from jaxdebias.errors import InputError


def binary(dataset: BiasedDataset) -> BiasedDataset:
  """Labels and bias labels halved into 0 (lower half of the classes) and 1 (upper half); an
  unknown bias label (-1) stays unknown."""
  upper_bias = lambda b: np.where(b < 0, -1, b >= dataset.num_bias_classes // 2)
  halve = lambda s: s and s._replace(
      label=(s.label >= dataset.num_classes // 2).astype(np.int32),
      bias_label=upper_bias(s.bias_label).astype(np.int32),
  )
  return dataset._replace(
      name=f"{dataset.name}/binary",
      train=halve(dataset.train),
      test=halve(dataset.test),
      valid=halve(dataset.valid),
      num_classes=2,
      num_bias_classes=2,
  )


def split_off_valid(
    dataset: BiasedDataset, fraction: float, seed: int | None = None
) -> BiasedDataset:
  """`fraction` of the training examples become the validation split: the last rows, or with a
  `seed` rows drawn at random with it (both splits keep their rows in order)."""
  if not 0 < fraction < 1:
    raise InputError(
        f"data.valid_fraction must lie in (0, 1), got {fraction}; set "
        "--config.data.valid_fraction."
    )
  if dataset.valid is not None:
    raise InputError(
        f"{dataset.name} has a validation split already; leave data.valid_fraction at 0."
    )
  train = dataset.train
  held = split_off_rows(len(train.label), fraction, seed)
  fit, valid = np.flatnonzero(~held), np.flatnonzero(held)
  part = lambda rows: make_split(train.images[rows], train.label[rows], train.bias_label[rows])
  return dataset._replace(train=part(fit), valid=part(valid))


def split_off_rows(num_examples: int, fraction: float, seed: int | None = None) -> np.ndarray:
  """The rows `split_off_valid` makes the validation split, as a boolean mask."""
  held = np.zeros(num_examples, bool)
  num_valid = round(fraction * num_examples)
  if seed is None:
    held[num_examples - num_valid :] = True
  else:
    held[np.random.default_rng(seed).choice(num_examples, num_valid, replace=False)] = True
  return held


def check_bias_labels_known(dataset: BiasedDataset) -> None:
  """Refuses a dataset with an unknown bias label (-1) where bias labels become the target."""
  splits = (dataset.train, dataset.test, dataset.valid)
  if any(s is not None and (s.bias_label < 0).any() for s in splits):
    raise InputError(
        f"{dataset.name} lacks some examples' bias labels (unknown, -1), so a classifier of the"
        " bias (data.target='bias_label', recipe.protected='bias_labels') has no label to"
        " learn for them; add the bias labels or use recipe.protected='amplifier', which needs"
        " none."
    )


def bias_as_target(dataset: BiasedDataset) -> BiasedDataset:
  """Label and bias label swapped in every split (a classifier of the protected attribute)."""
  check_bias_labels_known(dataset)
  swap = lambda s: s and s._replace(label=s.bias_label, bias_label=s.label)
  return dataset._replace(
      train=swap(dataset.train),
      test=swap(dataset.test),
      valid=swap(dataset.valid),
      num_classes=dataset.num_bias_classes,
      num_bias_classes=dataset.num_classes,
  )
