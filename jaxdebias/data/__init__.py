"""Biased datasets as in-memory NumPy arrays, from a registry of sources.

`load_dataset(config.data)` returns a `BiasedDataset` (data/records.py); every split's rows are
sorted by their stable example index, so row i is example i. Sources (`SOURCES`): Colored MNIST
and Biased MNIST (TFDS builders, data/mnist_tfds.py), CelebA (TFDS) and a user's .npz; the TFDS
ones read through one decoded cache (data/cache.py). Then, as the config asks: the training
split replaced by generated images or synthetic pairs added to it (data/added.py), the binary
variant, a validation split cut from the training split, the bias attribute as the target
(data/transforms.py).
"""

import ml_collections

from jaxdebias.data import added, biased_mnist, celeba, colored_mnist, npz, transforms
from jaxdebias.data.records import BiasedDataset, Split
from jaxdebias.errors import InputError

# config.data.name -> the function that reads it (config.data -> BiasedDataset).
SOURCES = {
    "colored_mnist": colored_mnist.load,
    "celeb_a": celeba.load,
    "npz": npz.load,
    "biased_mnist": biased_mnist.load,
}
TARGETS = ("label", "bias_label")


def default_config() -> ml_collections.ConfigDict:
  """config.data: its fields and their defaults (LfF's headline Colored MNIST setting)."""
  config = ml_collections.ConfigDict()
  config.name = "colored_mnist"  # One of SOURCES.
  config.ratio = 0.01  # colored_mnist: fraction of bias-conflicting train examples.
  config.severity = 4  # colored_mnist: 1..4, higher = cleaner colour.
  # biased_mnist: the training colour-label correlation (0.999, 0.997, 0.995, 0.99); the test
  # split is the unbiased one (rho 0.1), or with biased_test the one with the training rho.
  config.rho = 0.997
  config.biased_test = False
  # celeb_a: the binary target and protected attributes by name, and the image side after the
  # central 178x178 crop (128 as in the latent de-biasing paper).
  config.target_attribute = "Smiling"
  config.protected_attribute = "Male"
  config.image_size = 128
  # colored_mnist, biased_mnist, celeb_a: TFDS data dir; None = $TFDS_DATA_DIR or
  # ~/tensorflow_datasets.
  config.data_dir = ml_collections.config_dict.placeholder(str)
  # colored_mnist, biased_mnist: raw MNIST, 'auto' or a path (see data/mnist_source.py).
  config.mnist_source = "auto"
  config.path = ml_collections.config_dict.placeholder(str)  # npz: the file.
  # Binary variant: class y -> y >= num_classes // 2, bias b -> b >= num_bias_classes // 2 (for
  # Colored MNIST: digits 0-4 vs 5-9 and the colours of each half).
  config.binary = False
  # A validation split taken from the training split (datasets without one), for thresholds
  # and knobs chosen on validation data; those examples are not trained on. valid_seed None:
  # the last rows; a seed: rows drawn at random with it, a split as biased as the rest
  # whatever the row order (Colored MNIST assigns its colours by row order).
  config.valid_fraction = 0.0
  config.valid_seed = ml_collections.config_dict.placeholder(int)
  # What the classifier learns: "label" (the task) or "bias_label" (the protected attribute:
  # the labellers of latent de-biasing). Swaps the two attributes in every split.
  config.target = "label"
  # Latent de-biasing: synthetic pairs (data/added.py) appended to the training split, `ratio`
  # synthetic images per real one (the paper: about 2); `use` "pairs" (x(z) and x(z')) or
  # "unedited" (x(z) alone: the ablation without edits).
  config.added_pairs = ml_collections.ConfigDict(
      {"path": ml_collections.config_dict.placeholder(str), "ratio": 1.0, "use": "pairs"}
  )
  # Synthetic bias amplification: the training split replaced by `per_class` images of every
  # class from a class-conditional GAN run (`generator`, its workdir): the bias amplifier's data.
  # Their bias labels are unknown (-1); the test split stays real.
  config.generated_train = ml_collections.ConfigDict(
      {"generator": ml_collections.config_dict.placeholder(str), "per_class": 6000, "seed": 0}
  )
  return config


def load_dataset(config: ml_collections.ConfigDict, generator=None) -> BiasedDataset:
  """The dataset `config` (see `default_config`) names.

  generator: with config.generated_train.generator set, that run's generator, loaded by the
  caller (`runs.load_dataset` does it).
  """
  if config.target not in TARGETS:
    raise InputError(
        f"Unknown data.target {config.target!r}; set --config.data.target to one of "
        f"{', '.join(TARGETS)}."
    )
  if config.name not in SOURCES:
    raise InputError(
        f"Unknown dataset {config.name!r}; set --config.data.name to one of "
        f"{', '.join(SOURCES)}."
    )
  dataset = SOURCES[config.name](config)
  if config.generated_train.generator:
    if config.added_pairs.path:
      raise InputError(
          "data.generated_train replaces the training split and data.added_pairs adds to it; "
          "set only one."
      )
    if generator is None:
      raise ValueError("data.generated_train needs the generator handed in; load it first.")
    dataset = added.generated_train(dataset, generator, config.generated_train)
  if config.binary:
    dataset = transforms.binary(dataset)
  if config.valid_fraction:
    dataset = transforms.split_off_valid(dataset, config.valid_fraction, config.valid_seed)
  if config.added_pairs.path:
    dataset = added.add_pairs(dataset, config.added_pairs)
  if config.target == "bias_label":
    dataset = transforms.bias_as_target(dataset)
  return dataset
