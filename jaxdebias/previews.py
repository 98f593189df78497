"""PNG previews of images a run makes (a GAN's samples, latent pairs), for a person to look at."""

import os

import numpy as np
from PIL import Image


def write_png(path: str | os.PathLike, image: np.ndarray, scale: int = 1) -> None:
  """Writes an (H, W, C) uint8 image to `path`, each pixel a `scale` x `scale` block:
  grayscale, RGB or RGBA as stored, any other channel count (a PNG holds none) as its first
  channel."""
  if image.shape[-1] not in (1, 3, 4):
    image = image[..., :1]
  picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  size = (picture.width * scale, picture.height * scale)
  picture.resize(size, Image.Resampling.NEAREST).save(path)
