"""Biased MNIST (ReBias protocol, ../shared/reference/biased-mnist.md): colour counts per
(class, colour), white digits, the colour on background pixels only, the unbiased test set at
rho 0.1, and the TFDS builder end to end."""

import math
import sys

import numpy as np
import pytest

from jaxdebias import data
from jaxdebias.data import biased_mnist
from jaxdebias.errors import InputError
from tests.test_data import counts_table, fake_raw, write_keras_npz


def reference_assignment(labels: np.ndarray, rho: float, rng: np.random.Generator) -> np.ndarray:
  """ReBias's `_update_bias_indices` loop over the labels, in NumPy (its shuffles seeded)."""
  bias_indices = {c: [] for c in range(10)}
  for label in range(10):
    indices = rng.permutation(np.where(labels == label)[0])
    n_correlated = int(len(indices) * rho)
    per_colour = int(np.ceil((len(indices) - n_correlated) / 9))
    bias_indices[label] += list(indices[:n_correlated])
    rest = indices[n_correlated:]
    decorrelated = [rest[i : i + per_colour] for i in range(0, len(rest), max(per_colour, 1))]
    other_labels = rng.permutation([other % 10 for other in range(label + 1, label + 10)])
    for idx, chunk in enumerate(decorrelated):
      bias_indices[other_labels[idx]] += list(chunk)
  colors = np.full(len(labels), -1)
  for colour, indices in bias_indices.items():
    colors[np.array(indices, int)] = colour
  return colors


def expected_row(n: int, rho: float) -> tuple[int, list[int]]:
  """A class's count of its own colour, and its other colours' counts sorted: int(n rho) and
  chunks of ceil(rest / 9) (the last one what remains), the colours without a chunk 0."""
  rest = n - int(n * rho)
  per = math.ceil(rest / 9)
  chunks = [min(per, rest - start) for start in range(0, rest, max(per, 1))]
  return int(n * rho), sorted(chunks + [0] * (9 - len(chunks)))


@pytest.mark.parametrize("rho", biased_mnist.RHOS)
def test_colour_counts_per_class_and_colour_on_mnist(hub, rho):
  colors = biased_mnist.color_assignment(hub.train_labels, rho, np.random.default_rng(0))
  np.testing.assert_array_equal(
      colors, reference_assignment(hub.train_labels, rho, np.random.default_rng(0))
  )
  table = counts_table(hub.train_labels, colors)
  for c in range(10):
    own, others = expected_row(int(np.sum(hub.train_labels == c)), rho)
    assert table[c, c] == own
    assert sorted(np.delete(table[c], c)) == others
  if rho == 0.997:  # Exact for seed 0: class 0 (5,923 digits) keeps 5,905, nine pairs move.
    assert table[0, 0] == 5905 and sorted(np.delete(table[0], 0)) == [2] * 9


def test_the_unbiased_test_split_has_rho_0_1_and_the_biased_one_the_training_rho(hub):
  images, colors = biased_mnist.make_split(hub.test_images, hub.test_labels, "test", 0.999)
  table = counts_table(hub.test_labels, colors)
  for c in range(10):
    n = int(np.sum(hub.test_labels == c))
    assert table[c, c] == int(n * 0.1)
    assert sorted(np.delete(table[c], c)) == expected_row(n, 0.1)[1]
  _, biased = biased_mnist.make_split(hub.test_images, hub.test_labels, "test_biased", 0.999)
  assert np.mean(biased == hub.test_labels) > 0.99
  assert images.shape == (10000, 28, 28, 3) and images.dtype == np.uint8


def test_digits_are_white_and_the_colour_is_on_background_pixels_only():
  grey, labels, _, _ = fake_raw()
  images, colors = biased_mnist.make_split(grey, labels, "train", 0.99)
  digit = grey != 0
  assert np.all(images[digit] == 255)  # Every channel of every stroke pixel, whatever its grey.
  background = np.broadcast_to(biased_mnist.COLORS[colors][:, None, None, :], images.shape)
  np.testing.assert_array_equal(images[~digit], background[~digit])
  assert len({tuple(c) for c in biased_mnist.COLORS}) == 10
  assert not np.any(np.all(biased_mnist.COLORS == 255, axis=1))  # No colour hides a digit.


def test_builder_end_to_end_without_tensorflow(tmp_path):
  raw = fake_raw()
  config = data.default_config()
  config.update(
      name="biased_mnist",
      rho=0.99,
      data_dir=str(tmp_path / "tfds"),
      mnist_source=write_keras_npz(tmp_path / "fake.npz", *raw),
  )
  dataset = data.load_dataset(config)
  assert "tensorflow" not in sys.modules
  assert dataset.name == "biased_mnist/rho0.99"
  assert (dataset.num_classes, dataset.num_bias_classes, dataset.valid) == (10, 10, None)
  config.biased_test = True
  biased = data.load_dataset(config)
  assert biased.name == "biased_mnist/rho0.99/test_biased"
  train_x, train_y, test_x, test_y = raw
  for got, grey, labels, split in (
      (dataset.train, train_x, train_y, "train"),
      (dataset.test, test_x, test_y, "test"),
      (biased.test, test_x, test_y, "test_biased"),
  ):
    images, colors = biased_mnist.make_split(grey, labels, split, 0.99)
    np.testing.assert_array_equal(got.images, images)
    np.testing.assert_array_equal(got.label, labels)
    np.testing.assert_array_equal(got.bias_label, colors)
    np.testing.assert_array_equal(got.index, np.arange(len(labels)))


def test_an_unoffered_rho_is_one_sentence(tmp_path):
  config = data.default_config()
  config.update(name="biased_mnist", rho=0.5, data_dir=str(tmp_path))
  with pytest.raises(InputError, match=r"set --config\.data\.rho to one of 0\.999, 0\.997"):
    data.load_dataset(config)
