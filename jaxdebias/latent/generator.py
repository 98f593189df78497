"""The generator interface of latent de-biasing: latents -> images, whatever made the weights.

An `ImageGenerator` is a Flax module mapping z (B, latent_dim) to images (B, H, W, C) in
[-1, 1], its parameters, and those two sizes. `runs.load_generator(workdir)` makes one from a
GAN run or a ported generator (e.g. a PyTorch Progressive GAN converted to Flax): the
hyperplane, edit and pair-generation code never asks where it came from.
"""

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from jaxdebias import models
from jaxdebias.errors import InputError
from jaxdebias.models import dcgan


LATENT_SPACES = ("z", "w")


@dataclasses.dataclass(frozen=True)
class ImageGenerator:
  """latents (B, latent_dim [+ num_classes]) -> images (B, *image_shape) in [-1, 1].

  latent_space 'z': the input, z ~ N(0, I) (followed by the one-hot class for a class-
  conditional generator, num_classes > 0). 'w': what a mapping network makes of z,
  module.mapping(z), decoded by module.synthesis (for the DCGAN here: z with its style w, where
  global attributes such as colour are closer to linear); only for modules with both methods.
  """

  module: nn.Module
  params: Any
  latent_dim: int
  image_shape: tuple[int, int, int]
  latent_space: str = "z"
  num_classes: int = 0  # Entries of the conditioning one-hots, all factors together.
  factors: tuple[int, ...] = ()  # Their sizes: () unconditional, (classes,), (classes, bias).

  def __post_init__(self):
    if self.latent_space not in LATENT_SPACES:
      raise InputError(f"Unknown latent space {self.latent_space!r}; use one of {LATENT_SPACES}.")
    if self.latent_space == "w" and not hasattr(self.module, "mapping"):
      raise InputError(f"{type(self.module).__name__} has no mapping network; use latent space z.")

  @property
  def tint_dims(self) -> slice | None:
    """The latent coordinates that set the images' colour and nothing else: the tint t of a
    tinted DCGAN in latent space 'w' (its last C); None for any other generator."""
    if getattr(self.module, "tinted", False) and self.latent_space == "w":
      return slice(-self.image_shape[-1], None)
    return None

  def sample(
      self, rng: np.random.Generator, num: int, labels: np.ndarray | None = None
  ) -> np.ndarray:
    """`num` latents (`latents`) of z ~ N(0, I); a conditional generator's `labels` are drawn
    uniformly (every factor) unless given."""
    z = rng.standard_normal((num, self.latent_dim)).astype(np.float32)
    if self.factors and labels is None:
      labels = np.stack([rng.integers(0, size, num) for size in self.factors], axis=1)
      labels = labels[:, 0] if len(self.factors) == 1 else labels
    return self.latents(z, labels)

  def latents(self, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """The latents of z (N, latent_dim) in this generator's latent space: with a conditional
    generator's `labels` ((N,) classes, or (N, F) one value per factor) after z, mapped for
    latent space 'w'."""
    if self.factors:
      if labels is None:
        raise InputError("this generator is conditional; give the labels to condition on.")
      labels = np.asarray(labels)
      if labels.ndim == 2:
        labels = dcgan.factor_entries(labels, self.factors)
      z = np.asarray(dcgan.conditional_latents(z, labels, self.num_classes))
    elif labels is not None:
      raise InputError("this generator is not conditional; sample without labels.")
    if self.latent_space == "z":
      return z
    return np.asarray(_jitted(self.module, "mapping")(self.params, z))

  def __call__(self, latents: jax.Array) -> jax.Array:
    method = "synthesis" if self.latent_space == "w" else "__call__"
    return self.module.apply(self.params, latents, method=method)

  def images(self, latents: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """uint8 images (N, *image_shape) of `latents` (N, latent_dim), `batch_size` at a time."""
    method = "synthesis" if self.latent_space == "w" else "__call__"
    generate = _jitted(self.module, method, uint8=True)
    return np.concatenate(
        [
            np.asarray(generate(self.params, latents[i : i + batch_size]))
            for i in range(0, len(latents), batch_size)
        ]
    )


@functools.cache
def _jitted(module: nn.Module, method: str, uint8: bool = False):
  def run(params, x):
    out = module.apply(params, x, method=method)
    return models.to_uint8(out) if uint8 else out

  return jax.jit(run)
