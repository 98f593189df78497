"""Generated data that enters a dataset's training split, in two kinds:

- added pairs (`data.added_pairs`): latent de-biasing's synthetic pairs, appended to the real
  training examples (`add_pairs`). A pair is one record of an .npz: the latents z and z', the
  images x(z) and x(z'), the target label of x(z) (both images carry it), and the protected
  labels g(z) and the one z' was moved to. Keeping them in one record (one row of every array)
  makes the reference code's pitfall, a label file shifted against the latents, impossible.
  `jaxdebias.latent.pairs` makes them, `save_pairs` writes them.
- a generated training split (`data.generated_train`): the real training examples replaced by a
  class-conditional generator's images (`generated_train`), the bias amplifier's data. The
  caller hands the generator in (an object with `num_classes`, `image_shape`, `sample` and
  `images`, as `latent.generator.ImageGenerator` has).
"""

import pathlib
import zipfile

from absl import logging
import ml_collections
import numpy as np

from jaxdebias.data.records import BiasedDataset, make_split
from jaxdebias.errors import InputError

# Field -> (dtype kind, rank): one row per pair.
FIELDS = {
    "z": ("f", 2),
    "z_pair": ("f", 2),
    "image": ("u", 4),
    "image_pair": ("u", 4),
    "label": ("i", 1),  # Target label of x(z), given to both images.
    "protected": ("i", 1),  # Protected label of x(z).
    "protected_pair": ("i", 1),  # The protected class z' was moved to.
}


def save_pairs(path: str, **arrays: np.ndarray) -> None:
  """Writes the pair arrays (FIELDS, plus any extra per-pair diagnostics) atomically."""
  _check(arrays, path)
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp.npz")
  np.savez(tmp, **arrays)  # np.savez never pickles numeric arrays.
  tmp.replace(path)


def load_pairs(path: str) -> dict[str, np.ndarray]:
  """The pair arrays of `path`, checked; InputError saying what to do otherwise."""
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {k: data[k] for k in data.files}
  except FileNotFoundError as e:
    raise InputError(
        f"No synthetic pairs at {path}; generate them with python -m jaxdebias.recipes.make_pairs "
        "or fix --config.data.added_pairs.path."
    ) from e
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise InputError(
        f"{path} is not a readable pairs file ({e}); generate it again with "
        "python -m jaxdebias.recipes.make_pairs."
    ) from e
  _check(arrays, path)
  return arrays


def _check(arrays: dict[str, np.ndarray], path) -> None:
  missing = sorted(set(FIELDS) - set(arrays))
  if missing:
    raise InputError(f"{path} lacks the pair fields {missing}; generate it again.")
  sizes = {len(a) for a in arrays.values()}
  for name, (kind, rank) in FIELDS.items():
    if arrays[name].dtype.kind != kind or arrays[name].ndim != rank:
      raise InputError(
          f"{path}: `{name}` must be rank {rank} of kind {kind!r}, got "
          f"{arrays[name].dtype}{arrays[name].shape}; generate it again."
      )
  if len(sizes) != 1:
    raise InputError(f"{path}: the pair arrays have different lengths {sorted(sizes)}.")


USES = ("pairs", "unedited")  # data.added_pairs.use: x(z) and x(z'), or x(z) alone (ablation).


def mix(images, label, bias_label, pairs: dict[str, np.ndarray], ratio: float, use: str = "pairs"):
  """The real training arrays followed by round(ratio * N) synthetic images.

  use "pairs": the first round(ratio * N / 2) pairs' 2 images each, x(z) and x(z'), both with the
  target label of x(z); "unedited": x(z) of the first round(ratio * N) pairs (the ablation
  without edits). Their bias labels are the protected labels (evaluation only, never training).
  """
  if use not in USES:
    raise InputError(f"Unknown data.added_pairs.use {use!r}; set it to one of {USES}.")
  if not ratio >= 0:
    raise InputError(
        f"data.added_pairs.ratio must be >= 0 (synthetic images per real one), got {ratio}."
    )
  num_pairs = round(ratio * len(label) / (2 if use == "pairs" else 1))
  if num_pairs > len(pairs["label"]):
    raise InputError(
        f"data.added_pairs.ratio {ratio} needs {num_pairs} pairs but the file has "
        f"{len(pairs['label'])}; generate more pairs or lower the ratio."
    )
  if pairs["image"].shape[1:] != images.shape[1:]:
    raise InputError(
        f"the synthetic images are {pairs['image'].shape[1:]}, the real ones "
        f"{images.shape[1:]}: the pairs come from a generator of another dataset."
    )
  if use == "pairs":
    fields = (("image", "image_pair"), ("label", "label"), ("protected", "protected_pair"))
  else:
    fields = (("image",), ("label",), ("protected",))
  take = lambda names: np.concatenate([pairs[n][:num_pairs] for n in names])
  real = (images, label, bias_label)
  return tuple(np.concatenate([r, take(names)]) for r, names in zip(real, fields))


def add_pairs(dataset: BiasedDataset, options: ml_collections.ConfigDict) -> BiasedDataset:
  """The training split followed by the pairs of `options.path` (`mix`, data.added_pairs); the
  other splits as they are."""
  arrays = load_pairs(options.path)
  if arrays["label"].min() < 0 or arrays["label"].max() >= dataset.num_classes:
    raise InputError(
        f"{options.path}: `label` lies outside 0..{dataset.num_classes - 1} of {dataset.name}; "
        "the pairs were made for another dataset."
    )
  train = dataset.train
  images, label, bias_label = mix(
      train.images, train.label, train.bias_label, arrays, options.ratio, options.use
  )
  # A protected label outside the dataset's bias classes (a pseudo bias read by the amplifier,
  # in class space) is not a bias label: unknown (-1), like generated images'.
  synthetic = bias_label[len(train.label) :]
  synthetic[(synthetic < 0) | (synthetic >= dataset.num_bias_classes)] = -1
  mixed = (images, label, bias_label)
  logging.info(
      "Training on %d real and %d synthetic images from %s.",
      len(train.label),
      len(mixed[1]) - len(train.label),
      options.path,
  )
  return dataset._replace(train=make_split(*mixed), num_synthetic=len(mixed[1]) - len(train.label))


def generated_train(
    dataset: BiasedDataset, generator, options: ml_collections.ConfigDict
) -> BiasedDataset:
  """`dataset` with its training split replaced by `options.per_class` images of every class
  from the class-conditional `generator` (data.generated_train); bias labels -1 (unknown)."""
  if (
      generator.num_classes != dataset.num_classes
      or tuple(generator.image_shape) != dataset.test.images.shape[1:]
  ):
    raise InputError(
        f"{options.generator} is not a class-conditional generator of {dataset.name} "
        f"({generator.num_classes} classes of {generator.image_shape} images); train one on"
        " the same data with --config.trainer=gan --config.gan.conditional=True"
        " (configs/colored_mnist_gan.py:conditional for Colored MNIST)."
    )
  if not options.per_class > 0:
    raise InputError(
        f"data.generated_train.per_class must be > 0, got {options.per_class}; set "
        "--config.data.generated_train.per_class."
    )
  label = np.repeat(np.arange(dataset.num_classes), options.per_class)
  latents = generator.sample(np.random.default_rng(options.seed), len(label), labels=label)
  logging.info("Training on %d images generated by %s.", len(label), options.generator)
  return dataset._replace(
      train=make_split(generator.images(latents), label, np.full_like(label, -1))
  )
