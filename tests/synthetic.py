"""A tiny biased dataset for fast end-to-end tests: the digit is a bar position, the bias a colour."""

import numpy as np


def biased_arrays(
    num_train: int = 512,
    num_test: int = 200,
    num_classes: int = 4,
    conflicting: float = 0.05,
    size: int = 8,
    seed: int = 0,
) -> dict[str, np.ndarray]:
  """Arrays in the layout `jaxdebias.data.npz` reads.

  Class y draws a vertical bar in column 2y (+ noise pixels); the bias attribute is the colour of
  the bar: equal to y for a fraction 1 - `conflicting` of training examples (uniform in test).
  """
  rng = np.random.default_rng(seed)
  palette = rng.uniform(0.3, 1.0, (num_classes, 3))

  def split(n, aligned_fraction):
    label = rng.integers(0, num_classes, n)
    aligned = rng.random(n) < aligned_fraction
    other = (label + rng.integers(1, num_classes, n)) % num_classes
    bias = np.where(aligned, label, other)
    grey = (rng.random((n, size, size)) < 0.05).astype(np.float32)
    grey[np.arange(n), :, 2 * label] = 1.0
    images = (grey[..., None] * palette[bias][:, None, None, :] * 255).astype(np.uint8)
    return images, label.astype(np.int64), bias.astype(np.int64)

  arrays = {}
  for name, fraction in (("train", 1 - conflicting), ("test", 1 / num_classes)):
    count = num_train if name == "train" else num_test
    images, label, bias = split(count, fraction)
    arrays.update({f"{name}_images": images, f"{name}_label": label, f"{name}_bias_label": bias})
  return arrays


def write_npz(path, **kwargs) -> str:
  np.savez(path, **biased_arrays(**kwargs))
  return str(path)
