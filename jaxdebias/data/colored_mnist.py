"""Colored MNIST, the LfF protocol (Nam et al., NeurIPS 2020), as NumPy and TFDS.

The digit strokes are coloured, the background stays black:
image = uint8(clip(PALETTE[colour] + noise, 0, 1) * grey), truncated, with ONE
N(0, NOISE_STD[severity]^2) RGB offset per image. Colours are assigned
deterministically by index order within each class (`color_assignment`): train
uses aligned fraction 1 - ratio, test uses 0.1 (every colour 10% of each digit).

Noise seeding: split s draws `np.random.default_rng(NOISE_SEEDS[s]).normal(0,
std, (N, 3))` once, row i for example i, so a dataset is a pure function of
(raw MNIST, split, ratio, severity), and configs share the same standard-normal
draws scaled by their std.

`load(config.data)` builds the TFDS dataset once per (ratio, severity) and reads it through the
decoded cache (data/cache.py); TFDS stores records shuffled, and every split is sorted by `index`.
"""

import dataclasses
import hashlib
import os
import pathlib
import time

from absl import logging
from etils import epath
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from jaxdebias.data import cache
from jaxdebias.data import mnist_source as mnist_source_lib
from jaxdebias.data.records import BiasedDataset, make_split as split_of
from jaxdebias.errors import InputError

# RGB in [0, 1]; colour c is the colour aligned with digit c.
PALETTE = np.array(
    [
        [0.9836823344, 0.3125190139, 0.1685753465],
        [0.9905296564, 0.9156052470, 0.3515121937],
        [0.6729639769, 0.4610704780, 0.5798081756],
        [0.7832519412, 0.8315559030, 0.6013293862],
        [0.0880157948, 0.7779633403, 0.9818077683],
        [0.3213933706, 0.9610545635, 0.4464498758],
        [0.0246158838, 0.2356504798, 0.7586662769],
        [0.5552469492, 0.1015801430, 0.7617631555],
        [0.2077232003, 0.3929485083, 0.0187023878],
        [0.8336576223, 0.2024092674, 0.2669430971],
    ]
)
NUM_COLORS = len(PALETTE)
# Higher severity = cleaner colour = stronger shortcut.
NOISE_STD = {1: 0.05, 2: 0.02, 3: 0.01, 4: 0.005}
# Fractions of bias-conflicting training examples.
RATIOS = (0.005, 0.01, 0.02, 0.05)
TEST_ALIGNED_FRACTION = 0.1
NOISE_SEEDS = {"train": 0, "test": 1}
_CHUNK = 8192  # Images coloured per float64 batch (about 150 MB).


def config_name(ratio: float, severity: int) -> str:
  """TFDS config name, e.g. 'ratio0.01_severity4'."""
  return f"ratio{ratio}_severity{severity}"


def color_assignment(
    labels: np.ndarray, aligned_fraction: float, num_colors: int = NUM_COLORS
) -> np.ndarray:
  """Colour (bias label) per example, by the LfF milestone rule.

  For class c with N_c examples in index order: p = aligned_fraction on colour
  c and (1 - aligned_fraction) / (num_colors - 1) on the others, milestones =
  round(N_c * cumsum(p)), and the k-th example gets the smallest colour j with
  milestones[j] > k. Colours thus come in consecutive blocks in increasing
  colour order 0..9 (the cumsum order), the large aligned block being the c-th;
  it is first only for class 0, whatever a looser reading of "the first
  N_c(1-r) samples get colour c" suggests.

  Args:
    labels: (N,) integer class labels in 0..num_colors-1.
    aligned_fraction: 1 - ratio for train, 0.1 for test.
    num_colors: number of colours (= number of classes).

  Returns:
    (N,) int32 colours.
  """
  colors = np.empty(len(labels), np.int32)
  for c in range(num_colors):
    members = np.flatnonzero(labels == c)
    p = np.full(num_colors, (1 - aligned_fraction) / (num_colors - 1))
    p[c] = aligned_fraction
    milestones = np.round(len(members) * np.cumsum(p))
    colors[members] = np.searchsorted(milestones, np.arange(len(members)), side="right")
  return colors


def colorize(
    grey: np.ndarray, colors: np.ndarray, severity: int, rng: np.random.Generator
) -> np.ndarray:
  """Colours grey digits: uint8(clip(PALETTE[c] + noise, 0, 1) * grey).

  Args:
    grey: (N, 28, 28) uint8 digits.
    colors: (N,) colour per digit.
    severity: 1..4, selects the noise std.
    rng: draws the (N, 3) noise, one RGB offset per image, in index order.

  Returns:
    (N, 28, 28, 3) uint8, truncated (not rounded) like the reference.
  """
  noise = rng.normal(0.0, NOISE_STD[severity], size=(len(colors), 3))
  rgb = np.clip(PALETTE[colors] + noise, 0.0, 1.0)
  out = np.empty(grey.shape + (3,), np.uint8)
  for start in range(0, len(grey), _CHUNK):
    chunk = slice(start, start + _CHUNK)
    # Assigning float64 in [0, 255] to uint8 truncates, as astype does.
    out[chunk] = rgb[chunk, None, None, :] * grey[chunk, ..., None].astype(np.float64)
  return out


def make_split(
    grey: np.ndarray, labels: np.ndarray, split: str, ratio: float, severity: int
) -> tuple[np.ndarray, np.ndarray]:
  """Coloured images (N, 28, 28, 3) uint8 and colours (N,) int32 of one split."""
  aligned = 1 - ratio if split == "train" else TEST_ALIGNED_FRACTION
  colors = color_assignment(labels, aligned)
  rng = np.random.default_rng(NOISE_SEEDS[split])
  return colorize(grey, colors, severity, rng), colors


@dataclasses.dataclass(eq=False)
class ColoredMnistConfig(tfds.core.BuilderConfig):
  """One (ratio, severity) setting."""

  ratio: float = 0.01
  severity: int = 4


class ColoredMnist(tfds.core.GeneratorBasedBuilder):
  """Colored MNIST of LfF; build with file_format='array_record' to read without TF.

  `index` is the example's position in the MNIST split; TFDS stores records
  shuffled, so sort by it after reading. The raw MNIST source is a constructor
  argument, not part of the dataset identity: the sha256 of the raw digits used
  is recorded in `info.metadata['mnist_sha256']`.
  """

  # TFDS derives this from the package via `importlib_resources`, which it only
  # declares as a dependency for Python < 3.9; set it directly instead.
  code_path = epath.Path(__file__)
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "LfF protocol: milestone colours, one noise offset per image."}
  BUILDER_CONFIGS = [
      ColoredMnistConfig(
          name=config_name(ratio, severity),
          ratio=ratio,
          severity=severity,
          description=f"{ratio:.1%} bias-conflicting training "
          f"examples, colour noise std {std}.",
      )
      for ratio in RATIOS
      for severity, std in NOISE_STD.items()
  ]

  def __init__(self, *, mnist_source: str | os.PathLike[str] = "auto", **kwargs):
    """`mnist_source` is passed to `mnist_source_lib.load` when building."""
    self._mnist_source = mnist_source
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            "MNIST digits with coloured strokes; the colour (bias_label) "
            "matches the digit for all but `ratio` of the training examples, "
            "and is balanced (10% per colour and digit) on the test set. "
            'Protocol of Nam et al., "Learning from Failure", NeurIPS 2020.'
        ),
        features=tfds.features.FeaturesDict(
            {
                "image": tfds.features.Tensor(shape=(28, 28, 3), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=10),
                "bias_label": tfds.features.ClassLabel(num_classes=NUM_COLORS),
                "index": np.int64,
            }
        ),
        supervised_keys=("image", "label"),
        homepage="https://arxiv.org/abs/2007.02561",
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing is downloaded.
    raw = mnist_source_lib.load(self._mnist_source, str(self.data_dir_root))
    self.info.metadata["mnist_sha256"] = raw.sha256
    self.info.metadata["mnist_origin"] = raw.origin
    return {
        "train": self._generate_examples(raw.train_images, raw.train_labels, "train"),
        "test": self._generate_examples(raw.test_images, raw.test_labels, "test"),
    }

  def _generate_examples(self, grey: np.ndarray, labels: np.ndarray, split: str):
    images, colors = make_split(
        grey, labels, split, self.builder_config.ratio, self.builder_config.severity
    )
    for i, (image, label, color) in enumerate(zip(images, labels, colors)):
      yield i, {"image": image, "label": label, "bias_label": color, "index": i}


def load(config: ml_collections.ConfigDict) -> BiasedDataset:
  """The source `colored_mnist`: builds the TFDS dataset once (in data_dir), then reads it."""
  if config.ratio not in RATIOS:
    raise InputError(
        f"Colored MNIST ratio {config.ratio} is not supported; set "
        f'--config.data.ratio to one of {", ".join(map(str, RATIOS))}.'
    )
  if config.severity not in NOISE_STD:
    raise InputError(
        f"Colored MNIST severity {config.severity} is not supported; set "
        f"--config.data.severity to one of 1, 2, 3, 4."
    )
  builder = ColoredMnist(
      config=config_name(config.ratio, config.severity),
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
  train, test = (
      split_of(*(arrays[f"{name}_{k}"] for k in ("images", "label", "bias_label")))
      for name in ("train", "test")
  )
  logging.info(
      "Read %s in %.1f s: %d train, %d test examples.",
      builder.info.full_name,
      time.perf_counter() - start,
      len(train.index),
      len(test.index),
  )
  return BiasedDataset(
      name=builder.info.full_name.rsplit("/", 1)[0],
      train=train,
      test=test,
      valid=None,
      num_classes=10,
      num_bias_classes=NUM_COLORS,
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
