"""CelebA (TFDS `celeb_a`) as a biased dataset: one binary attribute is the target, another the
protected attribute, both by name (e.g. Smiling and Male, the latent de-biasing paper's setting).

Images are cropped to the central 178x178 square and resized to `image_size` (128: the size of
the paper's Progressive GAN). TFDS must have prepared celeb_a in array_record format (reads go
through `tfds.data_source`; TensorFlow is not needed). Decoding about 200k JPEGs takes minutes,
so the cropped images of every split and all 40 attributes are decoded once into the decoded
cache (data/cache.py) in `{data_dir}/celeb_a/decoded_{image_size}/`, images memory-mapped.
"""

import os
import pathlib

from absl import logging
import ml_collections
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from jaxdebias.data import cache
from jaxdebias.data.records import BiasedDataset, make_split
from jaxdebias.errors import InputError

SPLITS = {"train": "train", "valid": "validation", "test": "test"}  # Ours -> TFDS's.
CROP = 178


def crop_and_resize(image: np.ndarray, size: int) -> np.ndarray:
  """(218, 178, 3) uint8 -> the central square, resized (bilinear, antialiased) to (size, size, 3)."""
  height, width = image.shape[:2]
  side = min(height, width, CROP)
  top, left = (height - side) // 2, (width - side) // 2
  square = Image.fromarray(image[top : top + side, left : left + side])
  return np.asarray(square.resize((size, size), Image.BILINEAR))


def _source(split: str, data_dir: str | None):
  try:
    return tfds.data_source(
        "celeb_a",
        split=split,
        data_dir=data_dir,
        download=False,
        builder_kwargs={"file_format": "array_record"},
    )
  except (KeyError, FileNotFoundError, AssertionError) as e:
    raise InputError(
        f"CelebA is not prepared in {data_dir or 'the TFDS data dir'}; prepare it once with "
        "`tfds.builder('celeb_a', file_format='array_record').download_and_prepare()` (downloads "
        "about 1.4 GB), or set --config.data.data_dir."
    ) from e


def _decode(sources: dict, size: int, directory: pathlib.Path) -> None:
  """Writes {split}_images.npy (N, size, size, 3), {split}_attributes.npy (N, 40) bool and
  attribute_names.npy (40,); the images straight into memory-mapped files."""
  names = sorted(sources["train"][0]["attributes"])
  for split, source in sources.items():
    images = np.lib.format.open_memmap(
        directory / f"{split}_images.npy",
        mode="w+",
        dtype=np.uint8,
        shape=(len(source), size, size, 3),
    )
    attributes = np.zeros((len(source), len(names)), bool)
    for i in range(len(source)):
      example = source[i]
      images[i] = crop_and_resize(np.asarray(example["image"]), size)
      attributes[i] = [bool(example["attributes"][k]) for k in names]
    images.flush()
    del images
    np.save(directory / f"{split}_attributes.npy", attributes)
  np.save(directory / "attribute_names.npy", np.array(names))


def load(config: ml_collections.ConfigDict) -> BiasedDataset:
  """The source `celeb_a`: label = the target attribute, bias_label = the protected one."""
  sources = {ours: _source(theirs, config.data_dir) for ours, theirs in SPLITS.items()}
  root = config.data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
  directory = cache.location(
      f"{root}/celeb_a/decoded_{config.image_size}", f"celeb_a/decoded_{config.image_size}"
  )
  fingerprint = " ".join(f"{k}={len(v)}" for k, v in sources.items())
  logging.info("Reading CelebA through the decoded cache %s (decoded once).", directory)
  arrays = cache.cached(
      directory, fingerprint, lambda tmp: _decode(sources, config.image_size, tmp)
  )
  names = arrays["attribute_names"].tolist()
  target = attribute_column(names, config.target_attribute, "target_attribute")
  protected = attribute_column(names, config.protected_attribute, "protected_attribute")
  split = lambda name: make_split(
      arrays[f"{name}_images"],
      arrays[f"{name}_attributes"][:, target],
      arrays[f"{name}_attributes"][:, protected],
  )
  return BiasedDataset(
      name=f"celeb_a/{config.target_attribute}-{config.protected_attribute}",
      train=split("train"),
      test=split("test"),
      valid=split("valid"),
      num_classes=2,
      num_bias_classes=2,
  )


def attribute_column(names: list[str], attribute: str, field: str) -> int:
  """The column of `attribute`; InputError listing the names otherwise."""
  if attribute not in names:
    raise InputError(
        f"CelebA has no attribute {attribute!r}; set --config.data.{field} to one of "
        f"{', '.join(names)}."
    )
  return names.index(attribute)
