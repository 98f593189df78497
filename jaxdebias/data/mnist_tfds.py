"""What the MNIST-derived datasets (Colored MNIST, Biased MNIST) share: a TFDS builder made
from raw MNIST (data/mnist_source.py) by a protocol's `make_split`, built once and read back as
arrays through the decoded cache (data/cache.py), without TensorFlow.

Records carry `index`, the example's position in its MNIST split: TFDS stores records shuffled,
and every split is sorted by it when read. The raw MNIST source is a constructor argument, not
part of the dataset identity: the sha256 of the raw digits used is recorded in
`info.metadata['mnist_sha256']`.
"""

import abc
import hashlib
import os
import pathlib
import time

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from jaxdebias.data import cache
from jaxdebias.data import mnist_source as mnist_source_lib
from jaxdebias.data.records import BiasedDataset, make_split
from jaxdebias.errors import InputError

class MnistDerived(tfds.core.GeneratorBasedBuilder):
  """A dataset whose splits are `make_split(grey, labels, split)` of raw MNIST; build with
  file_format='array_record' to read without TensorFlow. Subclasses set SPLITS and
  `make_split`."""

  # Split name -> the MNIST split it is made from ("train" or "test").
  SPLITS: dict[str, str] = {"train": "train", "test": "test"}
  # TFDS derives this from the package via `importlib_resources`, which it only declares as a
  # dependency for Python < 3.9; subclasses set it directly: epath.Path(__file__).
  code_path: epath.Path

  def __init__(self, *, mnist_source: str | os.PathLike[str] = "auto", **kwargs):
    """`mnist_source` is passed to `mnist_source.load` when building."""
    self._mnist_source = mnist_source
    super().__init__(**kwargs)

  @abc.abstractmethod
  def make_split(
      self, grey: np.ndarray, labels: np.ndarray, split: str
  ) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28, 3) uint8, bias labels (N,)) of `split` from its MNIST digits."""

  def features(self, num_bias_classes: int) -> tfds.features.FeaturesDict:
    return tfds.features.FeaturesDict(
        {
            "image": tfds.features.Tensor(shape=(28, 28, 3), dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=10),
            "bias_label": tfds.features.ClassLabel(num_classes=num_bias_classes),
            "index": np.int64,
        }
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing is downloaded.
    raw = mnist_source_lib.load(self._mnist_source, str(self.data_dir_root))
    self.info.metadata["mnist_sha256"] = raw.sha256
    self.info.metadata["mnist_origin"] = raw.origin
    digits = {
        "train": (raw.train_images, raw.train_labels),
        "test": (raw.test_images, raw.test_labels),
    }
    return {
        split: self._generate_examples(*digits[source], split)
        for split, source in self.SPLITS.items()
    }

  def _generate_examples(self, grey: np.ndarray, labels: np.ndarray, split: str):
    images, bias = self.make_split(grey, labels, split)
    for i, (image, label, color) in enumerate(zip(images, labels, bias)):
      yield i, {"image": image, "label": label, "bias_label": color, "index": i}


def read(builder: MnistDerived) -> dict[str, np.ndarray]:
  """Every split of `builder` as arrays {split}_{images,label,bias_label}, sorted by index:
  built once (in its data_dir), then read through the decoded cache."""
  if not builder.is_prepared():
    logging.info(
        "Building %s into %s (once, about 20 s on 2 cores).",
        builder.info.full_name,
        builder.data_dir,
    )
    start = time.perf_counter()
    builder.download_and_prepare()
    logging.info("Built %s in %.1f s.", builder.info.full_name, time.perf_counter() - start)
  sha256 = builder.info.metadata["mnist_sha256"]
  logging.info(
      "Reading %s from %s (raw MNIST sha256 %s).", builder.info.full_name, builder.data_dir, sha256
  )
  if sha256 != mnist_source_lib.MNIST_SHA256:
    logging.warning(
        "%s was built from %s, not the full official MNIST.",
        builder.data_dir,
        builder.info.metadata["mnist_origin"],
    )
  start = time.perf_counter()
  arrays = cache.cached(
      cache_dir(builder),
      hashlib.sha256((builder.data_path / "dataset_info.json").read_bytes()).hexdigest(),
      lambda directory: cache.write_arrays(directory, _decode(builder)),
  )
  logging.info(
      "Read %s in %.1f s: %s examples.",
      builder.info.full_name,
      time.perf_counter() - start,
      ", ".join(f"{len(arrays[f'{split}_label'])} {split}" for split in builder.SPLITS),
  )
  return arrays


def read_dataset(builder: MnistDerived, test_split: str = "test") -> BiasedDataset:
  """`read(builder)` as a BiasedDataset: its train split, and `test_split` as the test split
  (named in the dataset's name unless it is `test`)."""
  arrays = read(builder)
  train, test = (
      make_split(*(arrays[f"{name}_{field}"] for field in ("images", "label", "bias_label")))
      for name in ("train", test_split)
  )
  name = builder.info.full_name.rsplit("/", 1)[0]
  return BiasedDataset(
      name=name if test_split == "test" else f"{name}/{test_split}",
      train=train,
      test=test,
      valid=None,
      num_classes=builder.info.features["label"].num_classes,
      num_bias_classes=builder.info.features["bias_label"].num_classes,
  )


def cache_dir(builder) -> pathlib.Path:
  """Where the decoded splits of `builder` live (data/cache.py)."""
  return cache.location(f"{builder.data_dir}/decoded", f"{builder.info.full_name}/decoded")


def _decode(builder) -> dict[str, np.ndarray]:
  """Every split's records as arrays {split}_{images,label,bias_label}, sorted by index."""
  arrays = {}
  for name, source in builder.as_data_source().items():
    records = mnist_source_lib.read_records(source)
    index = np.array([record["index"] for record in records])
    order = np.argsort(index)
    if not np.array_equal(index[order], np.arange(len(index))):
      raise InputError(
          f"{builder.data_dir} has a corrupt `{name}` split; "
          f"delete that directory and rerun to rebuild it."
      )
    arrays[f"{name}_images"] = np.stack([records[i]["image"] for i in order])
    for field in ("label", "bias_label"):
      arrays[f"{name}_{field}"] = np.array([records[i][field] for i in order])
  return arrays
