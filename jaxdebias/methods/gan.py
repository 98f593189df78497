"""The GAN of latent de-biasing and synthetic bias amplification: a DCGAN (models/dcgan.py) with
the non-saturating loss (Goodfellow et al. 2014), Adam for both networks, and one discriminator
then one generator update per step, as pure functions over a state pytree (`trainers/gan.py`
runs them).

gan.conditional: class-conditional, the class as a one-hot after z in the latent and a
projection discriminator; fake batches take the real batch's classes. gan.pseudo_bias (with
gan.conditional): conditional on two factors, the class and the bias amplifier's pseudo bias
label (`methods.amplified.pseudo_bias`), each a one-hot in the latent and an embedding in the
projection, added; the trainer draws `gan.pseudo_conflicting_share` of its batches from the
examples whose pseudo bias differs from their class, so the rare combinations are learnt, and
sampling any (class, pseudo bias) pair then makes the groups the data lacks, knowing only what
the amplifier reads as the bias. gan.tinted: the generator
draws a grey mask times a colour set by its own style part, the tint (an opt-in prior: it knows
that the bias is a colour).
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxdebias import models
from jaxdebias.errors import InputError
from jaxdebias.models import dcgan, layers


def default_config() -> ml_collections.ConfigDict:
  """config.gan: a small DCGAN for 28x28 images."""
  return ml_collections.ConfigDict(
      {
          "latent_dim": 64,
          # Seed channels, then one per doubling of the side; None: from the image shape
          # (dcgan.widths_for, which gives these for 28x28 images; the recipes use None).
          "generator_widths": ml_collections.FieldReference((96, 48, 24), field_type=tuple),
          # Channels of each stride-2 convolution; None: from the image shape.
          "discriminator_widths": ml_collections.FieldReference((64, 128), field_type=tuple),
          "learning_rate": 2e-4,
          "beta1": 0.5,
          "conditional": False,  # Module doc.
          "pseudo_bias": False,  # Module doc; needs amplifier.workdir.
          # With pseudo_bias: the share of the rows drawn whose pseudo bias is not their class
          # (its examples repeated; fixed in advance: at 1% conflicting Colored MNIST, 0.5
          # collapsed every image to one colour, 0.3 gave the requested pseudo bias most often
          # of 0, 0.15 and 0.3 after 500 steps).
          "pseudo_conflicting_share": 0.3,
          "tinted": False,  # Module doc.
      }
  )


def generator_module(
    gan_config: ml_collections.ConfigDict, image_shape, num_classes: int = 0
) -> dcgan.Generator:
  """The generator network a GAN config describes; class-conditional with num_classes > 0."""
  if not isinstance(gan_config.latent_dim, int) or gan_config.latent_dim < 1:
    raise InputError(
        f"gan.latent_dim must be a positive integer, got {gan_config.latent_dim!r}; "
        "set --config.gan.latent_dim."
    )
  widths = tuple(gan_config.generator_widths or dcgan.widths_for(image_shape)[0])
  if 2 ** (len(widths) - 1) > min(image_shape[:2]):  # Sides that do not halve whole: cropped.
    raise InputError(
        f"{len(widths) - 1} doublings would start images of shape {tuple(image_shape)} from a"
        " seed under one pixel; change --config.gan.generator_widths (one width per doubling)"
        " or leave it None to fit the image shape."
    )
  return dcgan.Generator(
      image_shape=tuple(image_shape),
      latent_dim=gan_config.latent_dim,
      widths=widths,
      num_classes=num_classes,
      tinted=gan_config.tinted,
  )


@flax.struct.dataclass
class GANState:
  step: jax.Array
  generator: Any  # Generator params.
  discriminator: Any
  generator_opt: Any
  discriminator_opt: Any


class GAN:
  """The generator and discriminator with their losses and one update step (pure)."""

  def __init__(
      self, config: ml_collections.ConfigDict, image_shape: tuple[int, int, int], num_classes: int
  ):
    """num_classes: the entries of the conditioning (with gan.conditional only): the dataset's
    classes, or with gan.pseudo_bias the classes then the pseudo bias classes."""
    gan = config.gan
    if not gan.learning_rate > 0 or not 0 <= gan.beta1 < 1:
      raise InputError(
          f"gan.learning_rate must be > 0 and gan.beta1 in [0, 1), got {gan.learning_rate} and "
          f"{gan.beta1}; set --config.gan.learning_rate / --config.gan.beta1."
      )
    self.num_classes = num_classes if gan.conditional else 0
    self.generator = models.in_compute_dtype(
        generator_module(gan, image_shape, self.num_classes), config.compute_dtype
    )
    discriminator = dcgan.Discriminator(
        widths=tuple(gan.discriminator_widths or dcgan.widths_for(image_shape)[1]),
        num_classes=self.num_classes,
    )
    self.discriminator = models.in_compute_dtype(discriminator, config.compute_dtype)
    self.latent_dim, self.image_shape, self.seed = gan.latent_dim, image_shape, config.seed
    self.tx = optax.adam(gan.learning_rate, b1=gan.beta1)

  def init(self, rng: jax.Array) -> GANState:
    g_rng, d_rng = jax.random.split(rng)
    g = self.generator.init(g_rng, jnp.zeros((1, self.latent_dim + self.num_classes)))
    d = self.discriminator.init(
        d_rng, jnp.zeros((1, *self.image_shape)), jnp.zeros((1,), jnp.int32)
    )
    return GANState(jnp.zeros((), jnp.int32), g, d, self.tx.init(g), self.tx.init(d))

  def latents(self, z: jax.Array, labels: jax.Array) -> jax.Array:
    """The generator's input for z (B, latent_dim) and classes (B,) (used when conditional)."""
    if not self.num_classes:
      return z
    return dcgan.conditional_latents(z, labels, self.num_classes)

  def images(self, state: GANState, latents: jax.Array) -> jax.Array:
    """uint8 images of the generator's `latents` (from `latents`)."""
    return models.to_uint8(self.generator.apply(state.generator, latents))

  def train_step(
      self, state: GANState, images: jax.Array, labels: jax.Array
  ) -> tuple[GANState, dict[str, jax.Array]]:
    """One discriminator then one generator update on uint8 `images` (B, H, W, C) of classes
    `labels` (B,); a conditional GAN generates the same classes as the real batch has."""
    real = models.to_signed(images)
    # The latents of step t depend on (seed, t) only: resuming redraws the same ones.
    z = layers.random_normal(
        jax.random.fold_in(jax.random.key(self.seed), state.step), (len(real), self.latent_dim)
    )
    z = self.latents(z, labels)
    fake = self.generator.apply(state.generator, z)

    def d_loss(params):
      real_logits = self.discriminator.apply(params, real, labels)
      fake_logits = self.discriminator.apply(params, fake, labels)
      loss = jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))
      return loss, (jnp.mean(real_logits > 0), jnp.mean(fake_logits < 0))

    (d_value, (real_acc, fake_acc)), d_grads = jax.value_and_grad(d_loss, has_aux=True)(
        state.discriminator
    )
    updates, d_opt = self.tx.update(d_grads, state.discriminator_opt, state.discriminator)
    discriminator = optax.apply_updates(state.discriminator, updates)

    def g_loss(params):  # Non-saturating: maximise log D(G(z)).
      logits = self.discriminator.apply(discriminator, self.generator.apply(params, z), labels)
      return jnp.mean(jax.nn.softplus(-logits))

    g_value, g_grads = jax.value_and_grad(g_loss)(state.generator)
    updates, g_opt = self.tx.update(g_grads, state.generator_opt, state.generator)
    state = GANState(
        state.step + 1, optax.apply_updates(state.generator, updates), discriminator, g_opt, d_opt
    )
    metrics = {
        "loss": d_value + g_value,
        "discriminator_loss": d_value,
        "generator_loss": g_value,
        "discriminator_real_accuracy": real_acc,
        "discriminator_fake_accuracy": fake_acc,
    }
    return state, metrics
