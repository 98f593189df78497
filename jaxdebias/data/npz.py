"""A user's own biased dataset stored as one .npz of NumPy arrays.

Required keys, for each split s in ('train', 'test'):
  `{s}_images`      (N, H, W, C) uint8, the same H, W, C in every split;
  `{s}_label`       (N,) integer class labels.
Optional: `{s}_bias_label` (N,) integer bias labels (the shortcut attribute), -1 where
unknown; a split without them has every bias label unknown. No method but the GroupDRO
oracle trains with them: they serve evaluation (the group metrics count the examples whose
bias label is known; accuracy counts all). Bias value k is read as the one aligned with class
k (the aligned / conflicting accuracies: groups with bias == / != label), so number them that
way where the two correspond; the unbiased and worst-group accuracies need no such order.
Optional too: `valid_images`, `valid_label` (both or neither, with `valid_bias_label` if
known), and scalars `num_classes`, `num_bias_classes`;
without them the class count is 1 + the largest training label, the bias count 1 + the largest
known bias label of any split (1 if none is known), and every split's labels must lie in
0..count-1. Counts are at most MAX_CLASSES, and their product (the number of (label, bias)
groups the metrics count) at most MAX_GROUPS. Arrays are read without unpickling: object
arrays are refused.

Write one with, e.g.,
`np.savez(path, train_images=..., train_label=..., train_bias_label=..., ...)`.
"""

import os
import pathlib
import zipfile
import zlib

from absl import logging
import ml_collections
import numpy as np

from jaxdebias.data.records import BiasedDataset, make_split
from jaxdebias.errors import InputError

SPLITS = ("train", "test")
OPTIONAL_SPLIT = "valid"
FIELDS = ("images", "label", "bias_label")
REQUIRED_FIELDS = FIELDS[:2]
UNKNOWN_BIAS = -1  # A bias label not known.
# Split name -> (images, label, bias_label).
Arrays = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
MAX_CLASSES = 10_000
MAX_GROUPS = 1_000_000


def _array(data: np.lib.npyio.NpzFile, key: str, path: pathlib.Path) -> np.ndarray:
  """data[key], a damaged or object member an InputError."""
  try:
    array = data[key]
  except (OSError, ValueError, EOFError, MemoryError, zipfile.BadZipFile, zlib.error) as e:
    reason = "an object array, which is not read (no unpickling)" if "allow_pickle" in str(e) else e
    cause = e
  else:
    if isinstance(array, np.ndarray):
      return array
    reason, cause = "its bytes are not in NumPy's .npy format", None
  raise InputError(
      f"{path}: `{key}` cannot be read ({reason}); write it again with np.savez from a "
      "numeric NumPy array."
  ) from cause


def _count(
    data: np.lib.npyio.NpzFile, key: str, labels: np.ndarray, what: str, path: pathlib.Path
) -> int:
  """The npz's scalar `key` if present, else 1 + the largest of `labels` (`what`; 1 if none)."""
  if key not in data:
    count = int(labels.max(initial=0)) + 1
    if count > MAX_CLASSES:
      raise InputError(
          f"{path}: the {what} go up to {count - 1}, so {key} would be {count}, over "
          f"the limit of {MAX_CLASSES}; relabel them 0..K-1."
      )
    return count
  value = _array(data, key, path)
  if value.shape or not np.issubdtype(value.dtype, np.integer) or not 1 <= value <= MAX_CLASSES:
    raise InputError(
        f"{path}: `{key}` must be an integer scalar in 1..{MAX_CLASSES}; "
        f"store it as e.g. np.int64(10) or leave it out."
    )
  return int(value)


def _check_split(
    path: pathlib.Path, split: str, images: np.ndarray, labels: dict[str, np.ndarray]
) -> None:
  """Checks one split's dtypes, ranks and lengths."""
  if images.dtype != np.uint8 or images.ndim != 4:
    raise InputError(
        f"{path}: `{split}_images` is {images.dtype} with shape "
        f"{images.shape}; store images as uint8 with shape (N, H, W, C)."
    )
  if not len(images):
    raise InputError(f"{path}: split `{split}` is empty; store at least one example in it.")
  for field, label in labels.items():
    if label.ndim != 1 or not np.issubdtype(label.dtype, np.integer):
      raise InputError(
          f"{path}: `{split}_{field}` is {label.dtype} with shape "
          f"{label.shape}; store it as a 1-D integer array."
      )
    if len(label) != len(images):
      raise InputError(
          f"{path}: `{split}_{field}` has {len(label)} entries but "
          f"`{split}_images` has {len(images)}; store one label per image."
      )


def read(path: str | os.PathLike[str]) -> tuple[Arrays, int, int]:
  """Reads and validates the .npz at `path`.

  Returns:
    ({split: (images, label int32, bias_label int32)} for 'train', 'test' and
    'valid' if present, num_classes, num_bias_classes).
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise InputError(
        f"{path} does not exist; set --config.data.path to an "
        f".npz file with the keys listed in jaxdebias/data/npz.py."
    )
  try:
    data = np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise InputError(f"{path} is not a readable .npz ({e}); write it with np.savez.") from e
  if not isinstance(data, np.lib.npyio.NpzFile):
    raise InputError(
        f"{path} holds a single array, not the named arrays of an .npz; write them with "
        "np.savez (layout in jaxdebias/data/npz.py)."
    )
  with data:
    splits = SPLITS + (
        (OPTIONAL_SPLIT,) if any(key.startswith(OPTIONAL_SPLIT + "_") for key in data) else ()
    )
    missing = [
        f"{split}_{field}"
        for split in splits
        for field in REQUIRED_FIELDS
        if f"{split}_{field}" not in data
    ]
    if missing:
      raise InputError(
          f'{path} lacks the arrays {", ".join(missing)}; add '
          f"them (see jaxdebias/data/npz.py for the layout)."
      )
    arrays = {}
    for split in splits:
      images = _array(data, f"{split}_images", path)
      labels = {
          field: _array(data, f"{split}_{field}", path)
          if f"{split}_{field}" in data
          else np.full(len(images), UNKNOWN_BIAS)
          for field in FIELDS[1:]
      }
      _check_split(path, split, images, labels)
      if split != "train" and images.shape[1:] != arrays["train"][0].shape[1:]:
        raise InputError(
            f"{path}: `{split}_images` has image shape {images.shape[1:]} but "
            f'`train_images` has {arrays["train"][0].shape[1:]}; store every '
            f"split at the same (H, W, C)."
        )
      arrays[split] = (images, labels["label"], labels["bias_label"])
    num_classes = _count(data, "num_classes", arrays["train"][1], "training labels", path)
    if num_classes < 2:
      raise InputError(
          f"{path} has one class; a classifier needs at least 2: store labels 0..K-1, K >= 2."
      )
    every_bias = np.concatenate([bias for _, _, bias in arrays.values()])
    num_bias_classes = _count(data, "num_bias_classes", every_bias, "bias labels", path)
  if num_classes * num_bias_classes > MAX_GROUPS:
    raise InputError(
        f"{path}: {num_classes} classes x {num_bias_classes} bias classes is over the limit of "
        f"{MAX_GROUPS} groups; merge classes or relabel them 0..K-1."
    )
  for split, (images, label, bias_label) in arrays.items():
    for field, values, count, count_name, lowest in (
        ("label", label, num_classes, "num_classes", 0),
        ("bias_label", bias_label, num_bias_classes, "num_bias_classes", UNKNOWN_BIAS),
    ):
      if values.min() < lowest or values.max() >= count:
        unknown = " (or -1: unknown)" if lowest < 0 else ""
        raise InputError(
            f"{path}: `{split}_{field}` has values in {values.min()}..{values.max()}, outside"
            f" 0..{count - 1}{unknown} (the range set by {count_name} or the labels); relabel"
            " them into that range."
        )
    arrays[split] = (images, label.astype(np.int32), bias_label.astype(np.int32))
  return arrays, num_classes, num_bias_classes


def load(config: ml_collections.ConfigDict) -> BiasedDataset:
  """The source `npz`: the user's file at config.path (layout in the module doc)."""
  if not config.path:
    raise InputError(
        "Dataset npz needs a file; set --config.data.path=FILE.npz "
        "(layout in jaxdebias/data/npz.py)."
    )
  logging.info("Reading %s.", config.path)
  arrays, num_classes, num_bias_classes = read(config.path)
  splits = {name: make_split(*split) for name, split in arrays.items()}
  return BiasedDataset(
      name=f"npz/{pathlib.Path(config.path).stem}",
      train=splits["train"],
      test=splits["test"],
      valid=splits.get("valid"),
      num_classes=num_classes,
      num_bias_classes=num_bias_classes,
  )
