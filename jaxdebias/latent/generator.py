"""The generator interface of latent de-biasing: latents -> images, whatever made the weights.

An `ImageGenerator` is a Flax module mapping z (B, latent_dim) to images (B, H, W, C) in
[-1, 1], its parameters, and those two sizes. `load(workdir)` reads the one a GAN run trained
(`gan.py`); a ported generator (e.g. a PyTorch Progressive GAN converted to Flax) fills the same
fields, so the hyperplane, edit and pair-generation code never asks where it came from.
"""

import dataclasses
import functools
import json
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdebias import checkpoint
from jaxdebias.errors import InputError
from jaxdebias.models import dcgan, pgan


def to_signed(images: jax.Array) -> jax.Array:
  """uint8 pixels -> float32 in [-1, 1], the generator's range."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def to_uint8(images: jax.Array) -> jax.Array:
  """Generator output in [-1, 1] (clipped) -> uint8 pixels."""
  return jnp.round((jnp.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(jnp.uint8)


def dcgan_module(
    gan_config: ml_collections.ConfigDict, image_shape, num_classes: int = 0
) -> dcgan.Generator:
  """The generator network a GAN config describes; class-conditional with num_classes > 0."""
  if not isinstance(gan_config.latent_dim, int) or gan_config.latent_dim < 1:
    raise InputError(
        f"gan.latent_dim must be a positive integer, got {gan_config.latent_dim!r}; "
        "set --config.gan.latent_dim."
    )
  widths = tuple(gan_config.generator_widths)
  if image_shape[0] != image_shape[1] or image_shape[0] % 2 ** (len(widths) - 1):
    raise InputError(
        f"images of shape {tuple(image_shape)} are not square with a side divisible by "
        f"2**{len(widths) - 1}; change --config.gan.generator_widths (one width per doubling)."
    )
  return dcgan.Generator(
      image_shape=tuple(image_shape),
      latent_dim=gan_config.latent_dim,
      widths=widths,
      num_classes=num_classes,
      tinted=gan_config.tinted,
  )


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
  num_classes: int = 0

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
    """`num` latents: z ~ N(0, I) (with the one-hot `labels` when conditional, uniformly drawn
    classes by default), mapped for latent space 'w'."""
    z = rng.standard_normal((num, self.latent_dim)).astype(np.float32)
    if self.num_classes:
      labels = rng.integers(0, self.num_classes, num) if labels is None else labels
      z = np.asarray(dcgan.conditional_latents(z, labels, self.num_classes))
    elif labels is not None:
      raise InputError("this generator is not class-conditional; sample without labels.")
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
    return to_uint8(out) if uint8 else out

  return jax.jit(run)


GENERATOR_JSON = "generator.json"  # What builds the module: kind, latent_dim, image_shape, widths.


def load(workdir: str, latent_space: str = "z") -> ImageGenerator:
  """The generator in `workdir`: a finished GAN run, or a ported one (tools/port_pgan.py).

  Its generator.json says which kind; the params are the last checkpoint.
  """
  from jaxdebias import train  # pylint: disable=g-import-not-at-top (train imports this module)

  workdir = train.absolute(workdir)
  if not (workdir / GENERATOR_JSON).exists():
    raise InputError(f"{workdir} holds no trained generator ({GENERATOR_JSON}); train one first.")
  record = json.loads((workdir / GENERATOR_JSON).read_text())
  image_shape = tuple(record["image_shape"])
  if record["kind"] == "pgan":
    module = pgan.Generator(
        latent_dim=record["latent_dim"],
        widths=tuple(record["widths"]),
        channels=record["channels"],
        alpha=record["alpha"],
    )
    like = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, record["latent_dim"])))
    params = _restore(workdir, like, expected_step=0, keep=1)
    return ImageGenerator(module, params, record["latent_dim"], image_shape, latent_space)
  from jaxdebias.latent import gan  # pylint: disable=g-import-not-at-top

  config = train.read_config(workdir)
  model = gan.GAN(config, image_shape, record.get("num_classes", 0))
  like = jax.eval_shape(model.init, jax.random.key(0))
  state = _restore(workdir, like, config.num_steps, config.keep_checkpoints)
  return ImageGenerator(
      model.generator,
      state.generator,
      model.latent_dim,
      image_shape,
      latent_space,
      model.num_classes,
  )


def _restore(workdir, like, expected_step: int, keep: int):
  """The checkpoint at `expected_step` (the end of training); InputError if it is not there."""
  ckpt = checkpoint.Checkpointer(workdir / "checkpoints", keep=keep)
  try:
    step = ckpt.latest_step()
    if step is None:
      raise InputError(f"{workdir} holds no generator checkpoint; train or convert one first.")
    if step != expected_step:
      raise InputError(
          f"the generator in {workdir} is at step {step} of {expected_step}; "
          "rerun its training command to finish it."
      )
    return ckpt.restore(step, like)
  finally:
    ckpt.close()
