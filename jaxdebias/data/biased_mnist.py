"""Biased MNIST (Bahng et al., "Learning De-biased Representations with Biased
Representations", ICML 2020), as NumPy and TFDS: the bias is the BACKGROUND colour.

Every digit pixel (grey value != 0) becomes white, every other pixel the bias colour
(`COLORS[c]`). Colours per class c (`color_assignment`): the class's examples are shuffled; the
first int(n_c * rho) get colour c; the rest are cut into consecutive chunks of ceil(rest / 9)
that get the other colours c+1, ..., c+9 (mod 10) in a shuffled order. The reference shuffles
with an unseeded RNG; here each split has its seed (`ASSIGNMENT_SEEDS`), so a dataset is a pure
function of (raw MNIST, rho).

Splits: `train` (the 60k MNIST training digits, colours with rho), `test` (the 10k MNIST test
digits with rho 0.1: every colour about equally likely per class, the unbiased test set) and
`test_biased` (the same digits with the training rho). `load(config.data)` returns `test`, or
`test_biased` as the test split with data.biased_test.
"""

import dataclasses

from etils import epath
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from jaxdebias.data import mnist_tfds
from jaxdebias.data.records import BiasedDataset
from jaxdebias.errors import InputError

# RGB 0-255; colour c is the colour aligned with digit c (the reference's COLOUR_MAP).
COLORS = np.array(
    [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [225, 225, 0],
        [225, 0, 225],
        [0, 255, 255],
        [255, 128, 0],
        [255, 0, 128],
        [128, 0, 255],
        [128, 128, 128],
    ],
    np.uint8,
)
NUM_COLORS = len(COLORS)
RHOS = (0.999, 0.997, 0.995, 0.99)  # Training colour-label correlations of the benchmark.
TEST_RHO = 0.1  # The unbiased test set.
ASSIGNMENT_SEEDS = {"train": 0, "test": 1, "test_biased": 2}


def config_name(rho: float) -> str:
  """TFDS config name, e.g. 'rho0.997'."""
  return f"rho{rho}"


def color_assignment(
    labels: np.ndarray, rho: float, rng: np.random.Generator, num_colors: int = NUM_COLORS
) -> np.ndarray:
  """Colour (bias label) per example by the reference rule (module doc); `rng` shuffles, class
  by class: the class's examples, then the order of its other colours."""
  colors = np.empty(len(labels), np.int32)
  for c in range(num_colors):
    members = rng.permutation(np.flatnonzero(labels == c))
    correlated = int(len(members) * rho)
    colors[members[:correlated]] = c
    rest = members[correlated:]
    others = rng.permutation([(c + k) % num_colors for k in range(1, num_colors)])
    chunk = max(1, int(np.ceil(len(rest) / (num_colors - 1))))
    for k, start in enumerate(range(0, len(rest), chunk)):
      colors[rest[start : start + chunk]] = others[k]
  return colors


def colorize(grey: np.ndarray, colors: np.ndarray) -> np.ndarray:
  """(N, 28, 28) uint8 digits -> (N, 28, 28, 3) uint8: white digit, background COLORS[colour]."""
  background = COLORS[colors][:, None, None, :]
  return np.where(grey[..., None] != 0, np.uint8(255), background).astype(np.uint8)


def make_split(
    grey: np.ndarray, labels: np.ndarray, split: str, rho: float
) -> tuple[np.ndarray, np.ndarray]:
  """Images (N, 28, 28, 3) uint8 and colours (N,) int32 of one split (module doc)."""
  split_rho = TEST_RHO if split == "test" else rho
  colors = color_assignment(labels, split_rho, np.random.default_rng(ASSIGNMENT_SEEDS[split]))
  return colorize(grey, colors), colors


@dataclasses.dataclass(eq=False)
class BiasedMnistConfig(tfds.core.BuilderConfig):
  """One training rho."""

  rho: float = 0.997


class BiasedMnist(mnist_tfds.MnistDerived):
  """Biased MNIST of ReBias (data/mnist_tfds.py: built from raw MNIST, read without TF)."""

  code_path = epath.Path(__file__)
  SPLITS = {"train": "train", "test": "test", "test_biased": "test"}
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "ReBias protocol: background colours, seeded shuffles."}
  BUILDER_CONFIGS = [
      BiasedMnistConfig(
          name=config_name(rho),
          rho=rho,
          description=f"Background colour = the digit's own for {rho:.1%} of training examples.",
      )
      for rho in RHOS
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            "White MNIST digits on a coloured background; the colour (bias_label) matches the "
            "digit for a fraction rho of the training examples (and of `test_biased`), and for "
            "0.1 of `test` (unbiased). Protocol of Bahng et al., ICML 2020 (ReBias), with the "
            f"colour shuffles seeded {ASSIGNMENT_SEEDS}."
        ),
        features=self.features(NUM_COLORS),
        supervised_keys=("image", "label"),
        homepage="https://arxiv.org/abs/1910.02806",
        metadata=tfds.core.MetadataDict(),
    )

  def make_split(self, grey, labels, split):
    return make_split(grey, labels, split, self.builder_config.rho)


def load(config: ml_collections.ConfigDict) -> BiasedDataset:
  """The source `biased_mnist`: builds the TFDS dataset once (in data_dir), then reads it."""
  if config.rho not in RHOS:
    raise InputError(
        f"Biased MNIST rho {config.rho} is not offered; set --config.data.rho to one of "
        f'{", ".join(map(str, RHOS))}.'
    )
  builder = BiasedMnist(
      config=config_name(config.rho),
      data_dir=config.data_dir,
      file_format="array_record",
      mnist_source=config.mnist_source,
  )
  return mnist_tfds.read_dataset(builder, "test_biased" if config.biased_test else "test")
