"""Biased datasets as in-memory NumPy arrays: Colored MNIST and CelebA (via TFDS) or an .npz.

`load_dataset(config.data)` returns a `BiasedDataset`; every split's rows are
sorted by their stable example index, so row i is example i.
"""

import hashlib
import os
import pathlib
import shutil
import time
from typing import NamedTuple

from absl import logging
import ml_collections
import numpy as np

from jaxdebias.data import celeba
from jaxdebias.data import colored_mnist
from jaxdebias.data import mnist_source
from jaxdebias.data import npz
from jaxdebias.data import pairs
from jaxdebias.errors import InputError

DATASETS = ("colored_mnist", "celeb_a", "npz")
TARGETS = ("label", "bias_label")


class Split(NamedTuple):
  """One split; row i is example i."""

  images: np.ndarray  # (N, H, W, C) uint8; Colored MNIST's are memory-mapped (read on use).
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
  num_synthetic: int = 0  # The last num_synthetic training rows are generated (data.synthetic).


def default_data_config() -> ml_collections.ConfigDict:
  """Data config fields and their defaults (LfF's headline Colored MNIST setting)."""
  config = ml_collections.ConfigDict()
  config.name = "colored_mnist"  # One of DATASETS.
  config.ratio = 0.01  # colored_mnist: fraction of bias-conflicting train examples.
  config.severity = 4  # colored_mnist: 1..4, higher = cleaner colour.
  # celeb_a: the binary target and protected attributes by name, and the image side after the
  # central 178x178 crop (128 as in the latent de-biasing paper).
  config.target_attribute = "Smiling"
  config.protected_attribute = "Male"
  config.image_size = 128
  # colored_mnist, celeb_a: TFDS data dir; None = $TFDS_DATA_DIR or ~/tensorflow_datasets.
  config.data_dir = ml_collections.config_dict.placeholder(str)
  # colored_mnist: raw MNIST, 'auto' or a path (see data/mnist_source.py).
  config.mnist_source = "auto"
  config.path = ml_collections.config_dict.placeholder(str)  # npz: the file.
  # Binary variant: class y -> y >= num_classes // 2, bias b -> b >= num_bias_classes // 2 (for
  # Colored MNIST: digits 0-4 vs 5-9 and the colours of each half).
  config.binary = False
  # A validation split taken from the end of the training split (datasets without one), for
  # thresholds chosen on validation data; those examples are not trained on.
  config.valid_fraction = 0.0
  # What the classifier learns: "label" (the task) or "bias_label" (the protected attribute:
  # the labellers of latent de-biasing). Swaps the two attributes in every split.
  config.target = "label"
  # Latent de-biasing: synthetic pairs (jaxdebias/data/pairs.py) appended to the training split,
  # `ratio` synthetic images per real one (the paper: about 2); `use` "pairs" (x(z) and x(z'))
  # or "unedited" (x(z) alone: the ablation without edits).
  config.synthetic = ml_collections.ConfigDict(
      {"path": ml_collections.config_dict.placeholder(str), "ratio": 1.0, "use": "pairs"}
  )
  # Synthetic bias amplification: the training split replaced by `per_class` images of every
  # class from a class-conditional GAN run (`generator`, its workdir): the bias amplifier's data.
  # Their bias labels are unknown (-1); the test split stays real.
  config.generated = ml_collections.ConfigDict(
      {"generator": ml_collections.config_dict.placeholder(str), "per_class": 6000, "seed": 0}
  )
  return config


def _split(images: np.ndarray, label: np.ndarray, bias_label: np.ndarray) -> Split:
  return Split(
      images,
      label.astype(np.int32),
      bias_label.astype(np.int32),
      np.arange(len(label), dtype=np.int32),
  )


# The splits as plain .npy arrays next to the TFDS files (or, for a remote data dir, under
# ~/.cache/jaxdebias): read in ~0.1 s instead of ~4 s of decoding 70,000 records one by one, and
# the images are memory-mapped, so a process of a multi-host run reads from storage only the rows
# its devices hold (`sharding.shard_rows`). Keyed by the dataset's dataset_info.json; rewritten
# when absent, stale or damaged.
_DECODED = "decoded"
_SPLITS, _FIELDS = ("train", "test"), ("images", "label", "bias_label")


def _cache_dir(builder) -> pathlib.Path:
  directory = str(builder.data_dir)
  if "://" not in directory:
    return pathlib.Path(directory) / _DECODED
  return pathlib.Path("~/.cache/jaxdebias").expanduser() / builder.info.full_name / _DECODED


def _read_cache(cache: pathlib.Path, fingerprint: str) -> dict[str, Split] | None:
  """The cached splits (images memory-mapped), or None when absent, stale or damaged."""
  try:
    if (cache / "fingerprint").read_text() != fingerprint:
      return None
    splits = {}
    for name in _SPLITS:
      images, label, bias_label = (
          np.load(cache / f"{name}_{k}.npy", mmap_mode="r" if k == "images" else None)
          for k in _FIELDS
      )
      if not len(images) == len(label) == len(bias_label):
        raise ValueError(f"{name} arrays of different lengths")
      splits[name] = _split(images, label, bias_label)
    return splits
  except FileNotFoundError:
    return None
  except (OSError, ValueError, EOFError) as error:
    logging.warning("Ignoring the damaged cache %s (%s); decoding the records again.", cache, error)
    return None


def _write_cache(cache: pathlib.Path, fingerprint: str, splits: dict[str, Split]) -> None:
  """Writes a fresh directory and renames it into place: concurrent runs never see half a cache."""
  tmp = cache.with_name(f"{_DECODED}.{os.getpid()}.tmp")
  shutil.rmtree(tmp, ignore_errors=True)
  tmp.mkdir(parents=True)
  for name in _SPLITS:
    for k in _FIELDS:
      np.save(tmp / f"{name}_{k}.npy", getattr(splits[name], k))
  (tmp / "fingerprint").write_text(fingerprint)  # Last: its presence means the rest is there.
  shutil.rmtree(cache, ignore_errors=True)  # A stale or damaged cache.
  try:
    tmp.rename(cache)
  except OSError:  # Another process renamed its identical cache into place first.
    shutil.rmtree(tmp, ignore_errors=True)


def _read_decoded(builder) -> dict[str, Split]:
  """Every split of the prepared builder, from the decoded cache or from its records."""
  cache = _cache_dir(builder)
  fingerprint = hashlib.sha256((builder.data_path / "dataset_info.json").read_bytes()).hexdigest()
  splits = _read_cache(cache, fingerprint)
  if splits is not None:
    return splits
  splits = {}
  for name, source in builder.as_data_source().items():
    records = mnist_source.read_records(source)
    index = np.array([record["index"] for record in records])
    order = np.argsort(index)
    if not np.array_equal(index[order], np.arange(len(index))):
      raise InputError(
          f"{builder.data_dir} has a corrupt `{name}` split; "
          f"delete that directory and rerun to rebuild it."
      )
    splits[name] = _split(
        np.stack([records[i]["image"] for i in order]),
        np.array([records[i]["label"] for i in order]),
        np.array([records[i]["bias_label"] for i in order]),
    )
  _write_cache(cache, fingerprint, splits)
  return _read_cache(cache, fingerprint) or splits  # Memory-mapped from now on.


def _load_colored_mnist(config: ml_collections.ConfigDict) -> BiasedDataset:
  """Builds the TFDS dataset once (cached in data_dir), then reads it all."""
  if config.ratio not in colored_mnist.RATIOS:
    raise InputError(
        f"Colored MNIST ratio {config.ratio} is not supported; set "
        f'--config.data.ratio to one of {", ".join(map(str, colored_mnist.RATIOS))}.'
    )
  if config.severity not in colored_mnist.NOISE_STD:
    raise InputError(
        f"Colored MNIST severity {config.severity} is not supported; set "
        f"--config.data.severity to one of 1, 2, 3, 4."
    )
  builder = colored_mnist.ColoredMnist(
      config=colored_mnist.config_name(config.ratio, config.severity),
      data_dir=config.data_dir,
      file_format="array_record",
      mnist_source=config.mnist_source,
  )
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
  if sha256 != mnist_source.MNIST_SHA256:
    logging.warning(
        "%s was built from %s, not the full official MNIST.",
        builder.data_dir,
        builder.info.metadata["mnist_origin"],
    )
  start = time.perf_counter()
  splits = _read_decoded(builder)
  logging.info(
      "Read %s in %.1f s: %d train, %d test examples.",
      builder.info.full_name,
      time.perf_counter() - start,
      len(splits["train"].index),
      len(splits["test"].index),
  )
  return BiasedDataset(
      name=builder.info.full_name.rsplit("/", 1)[0],
      train=splits["train"],
      test=splits["test"],
      valid=None,
      num_classes=10,
      num_bias_classes=colored_mnist.NUM_COLORS,
  )


def _load_celeb_a(config: ml_collections.ConfigDict) -> BiasedDataset:
  """CelebA with label = target attribute, bias_label = protected attribute (data/celeba.py)."""
  splits, names = celeba.load(config.data_dir, config.image_size)
  target = celeba.attribute_column(names, config.target_attribute, "target_attribute")
  protected = celeba.attribute_column(names, config.protected_attribute, "protected_attribute")
  split = lambda name: _split(
      splits[name][0], splits[name][1][:, target], splits[name][1][:, protected]
  )
  return BiasedDataset(
      name=f"celeb_a/{config.target_attribute}-{config.protected_attribute}",
      train=split("train"),
      test=split("test"),
      valid=split("valid"),
      num_classes=2,
      num_bias_classes=2,
  )


def _load_npz(config: ml_collections.ConfigDict) -> BiasedDataset:
  """Reads a user's .npz (layout in data/npz.py)."""
  if not config.path:
    raise InputError(
        "Dataset npz needs a file; set --config.data.path=FILE.npz "
        "(layout in jaxdebias/data/npz.py)."
    )
  logging.info("Reading %s.", config.path)
  arrays, num_classes, num_bias_classes = npz.load(config.path)
  splits = {name: _split(*split) for name, split in arrays.items()}
  return BiasedDataset(
      name=f"npz/{pathlib.Path(config.path).stem}",
      train=splits["train"],
      test=splits["test"],
      valid=splits.get("valid"),
      num_classes=num_classes,
      num_bias_classes=num_bias_classes,
  )


def load_dataset(data_config: ml_collections.ConfigDict) -> BiasedDataset:
  """Loads the dataset that `data_config` (see `default_data_config`) names."""
  if data_config.target not in TARGETS:
    raise InputError(
        f"Unknown data.target {data_config.target!r}; set --config.data.target to one of "
        f"{', '.join(TARGETS)}."
    )
  if data_config.name == "colored_mnist":
    dataset = _load_colored_mnist(data_config)
  elif data_config.name == "celeb_a":
    dataset = _load_celeb_a(data_config)
  elif data_config.name == "npz":
    dataset = _load_npz(data_config)
  else:
    raise InputError(
        f"Unknown dataset {data_config.name!r}; set "
        f'--config.data.name to one of {", ".join(DATASETS)}.'
    )
  if data_config.generated.generator:
    if data_config.synthetic.path:
      raise InputError(
          "data.generated replaces the training split and data.synthetic adds to it; set only one."
      )
    dataset = _generated_train(dataset, data_config.generated)
  if data_config.binary:
    dataset = _binary(dataset)
  if data_config.valid_fraction:
    dataset = _split_off_valid(dataset, data_config.valid_fraction)
  if data_config.synthetic.path:
    dataset = _with_synthetic(dataset, data_config.synthetic)
  if data_config.target == "bias_label":
    swap = lambda s: s and s._replace(label=s.bias_label, bias_label=s.label)
    dataset = dataset._replace(
        train=swap(dataset.train),
        test=swap(dataset.test),
        valid=swap(dataset.valid),
        num_classes=dataset.num_bias_classes,
        num_bias_classes=dataset.num_classes,
    )
  return dataset


def _binary(dataset: BiasedDataset) -> BiasedDataset:
  """Labels and bias labels halved into 0 (lower half of the classes) and 1 (upper half)."""
  halve = lambda s: s and s._replace(
      label=(s.label >= dataset.num_classes // 2).astype(np.int32),
      bias_label=(s.bias_label >= dataset.num_bias_classes // 2).astype(np.int32),
  )
  return dataset._replace(
      name=f"{dataset.name}/binary",
      train=halve(dataset.train),
      test=halve(dataset.test),
      valid=halve(dataset.valid),
      num_classes=2,
      num_bias_classes=2,
  )


def _split_off_valid(dataset: BiasedDataset, fraction: float) -> BiasedDataset:
  """The last `fraction` of the training examples become the validation split."""
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
  cut = len(train.label) - round(fraction * len(train.label))
  part = lambda rows: _split(train.images[rows], train.label[rows], train.bias_label[rows])
  return dataset._replace(train=part(slice(None, cut)), valid=part(slice(cut, None)))


def _generated_train(dataset: BiasedDataset, generated: ml_collections.ConfigDict) -> BiasedDataset:
  """`dataset` with its training split replaced by generated images (see `data.generated`)."""
  from jaxdebias.latent import generator  # pylint: disable=g-import-not-at-top (it imports us)

  gen = generator.load(generated.generator)
  if gen.num_classes != dataset.num_classes or gen.image_shape != dataset.test.images.shape[1:]:
    raise InputError(
        f"{generated.generator} is not a class-conditional generator of {dataset.name} "
        f"({gen.num_classes} classes of {gen.image_shape} images); train one with "
        "configs/colored_mnist_gan.py:conditional."
    )
  if not generated.per_class > 0:
    raise InputError(f"data.generated.per_class must be > 0, got {generated.per_class}.")
  label = np.repeat(np.arange(dataset.num_classes), generated.per_class)
  latents = gen.sample(np.random.default_rng(generated.seed), len(label), labels=label)
  logging.info("Training on %d images generated by %s.", len(label), generated.generator)
  return dataset._replace(train=_split(gen.images(latents), label, np.full_like(label, -1)))


def _with_synthetic(dataset: BiasedDataset, synthetic: ml_collections.ConfigDict) -> BiasedDataset:
  """The training split followed by synthetic pairs (`pairs.mix`); the other splits as they are."""
  arrays = pairs.load(synthetic.path)
  for name, count in (("label", dataset.num_classes), ("protected", dataset.num_bias_classes)):
    if arrays[name].min() < 0 or arrays[name].max() >= count:
      raise InputError(
          f"{synthetic.path}: `{name}` lies outside 0..{count - 1} of {dataset.name}; the pairs "
          "were made for another dataset."
      )
  train = dataset.train
  mixed = pairs.mix(
      train.images, train.label, train.bias_label, arrays, synthetic.ratio, synthetic.use
  )
  logging.info(
      "Training on %d real and %d synthetic images from %s.",
      len(train.label),
      len(mixed[1]) - len(train.label),
      synthetic.path,
  )
  return dataset._replace(train=_split(*mixed), num_synthetic=len(mixed[1]) - len(train.label))
