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

`load(config.data)` builds the TFDS dataset once per (ratio, severity) and reads it back as arrays
(data/mnist_tfds.py).
"""

import dataclasses

from etils import epath
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from jaxdebias.data import mnist_tfds
from jaxdebias.data.records import BiasedDataset
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


class ColoredMnist(mnist_tfds.MnistDerived):
  """Colored MNIST of LfF (data/mnist_tfds.py: built from raw MNIST, read without TF)."""

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

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            "MNIST digits with coloured strokes; the colour (bias_label) "
            "matches the digit for all but `ratio` of the training examples, "
            "and is balanced (10% per colour and digit) on the test set. "
            'Protocol of Nam et al., "Learning from Failure", NeurIPS 2020.'
        ),
        features=self.features(NUM_COLORS),
        supervised_keys=("image", "label"),
        homepage="https://arxiv.org/abs/2007.02561",
        metadata=tfds.core.MetadataDict(),
    )

  def make_split(self, grey, labels, split):
    config = self.builder_config
    return make_split(grey, labels, split, config.ratio, config.severity)


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
  return mnist_tfds.read_dataset(builder)
