"""CelebA (TFDS `celeb_a`) as a biased dataset: one binary attribute is the target, another the
protected attribute, both by name (e.g. Smiling and Male, the latent de-biasing paper's setting).

Images are cropped to the central 178x178 square and resized to `image_size` (128: the size of
the paper's Progressive GAN). TFDS must have prepared celeb_a in array_record format (reads go
through `tfds.data_source`; TensorFlow is not needed). Decoding about 200k JPEGs takes minutes,
so the cropped images of every split and all 40 attributes are cached once as .npy files in
`{data_dir}/celeb_a/decoded_{image_size}/`, images memory-mapped on reading.
"""

import os
import pathlib
import shutil

from absl import logging
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

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


def _cache_dir(data_dir: str | None, size: int) -> pathlib.Path:
  root = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
  return pathlib.Path(root).expanduser() / "celeb_a" / f"decoded_{size}"


def _decode(source, size: int, directory: pathlib.Path, name: str) -> None:
  """Writes {name}_images.npy (N, size, size, 3) and {name}_attributes.npy (N, 40) bool."""
  images = np.lib.format.open_memmap(
      directory / f"{name}_images.npy",
      mode="w+",
      dtype=np.uint8,
      shape=(len(source), size, size, 3),
  )
  names = sorted(source[0]["attributes"])
  attributes = np.zeros((len(source), len(names)), bool)
  for i in range(len(source)):
    example = source[i]
    images[i] = crop_and_resize(np.asarray(example["image"]), size)
    attributes[i] = [bool(example["attributes"][k]) for k in names]
  images.flush()
  np.save(directory / f"{name}_attributes.npy", attributes)
  (directory / "attribute_names.txt").write_text("\n".join(names))


def load(
    data_dir: str | None, size: int
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
  """{split: (images, attributes)} for train / valid / test, and the attribute names."""
  sources = {ours: _source(theirs, data_dir) for ours, theirs in SPLITS.items()}
  cache = _cache_dir(data_dir, size)
  fingerprint = " ".join(f"{k}={len(v)}" for k, v in sources.items())
  if not (cache / "fingerprint").exists() or (cache / "fingerprint").read_text() != fingerprint:
    logging.info("Decoding CelebA into %s (once).", cache)
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, source in sources.items():
      _decode(source, size, tmp, name)
    (tmp / "fingerprint").write_text(fingerprint)  # Last: its presence means the rest is there.
    shutil.rmtree(cache, ignore_errors=True)
    tmp.rename(cache)
  names = (cache / "attribute_names.txt").read_text().split("\n")
  splits = {
      name: (
          np.load(cache / f"{name}_images.npy", mmap_mode="r"),
          np.load(cache / f"{name}_attributes.npy"),
      )
      for name in SPLITS
  }
  return splits, names


def attribute_column(names: list[str], attribute: str, field: str) -> int:
  """The column of `attribute`; InputError listing the names otherwise."""
  if attribute not in names:
    raise InputError(
        f"CelebA has no attribute {attribute!r}; set --config.data.{field} to one of "
        f"{', '.join(names)}."
    )
  return names.index(attribute)
