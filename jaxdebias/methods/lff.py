"""Learning from Failure (Nam et al., NeurIPS 2020), both models in one jitted step.

f_B (biased) is trained with generalized cross-entropy, which emphasises the easy samples and so
amplifies the shortcut; f_D (debiased, the classifier we report) is trained with cross-entropy
weighted by the relative difficulty W = CE_B / (CE_B + CE_D + 1e-8), so samples f_B fails on
(the bias-conflicting ones) get large weights. CE_B and CE_D in W are per-example EMAs
(`jaxdebias.ema`, both losses side by side in one buffer), updated with this batch before they
are read and divided by their class-wise maximum. Loss = mean(GCE_B) + mean(W * CE_D); one
backward pass; one Adam over {biased, debiased} (Adam is element-wise, so this is exactly two
Adams stepping in lockstep). `amplified.AmplifiedLfF` keeps all of this but replaces f_B by a
frozen bias amplifier trained on generated images (synthetic bias amplification).
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdebias import ema, losses, models
from jaxdebias.errors import InputError
from jaxdebias.methods import optimizer
from jaxdebias.methods.interface import TrainSet, swept_values
from jaxdebias.metrics import batch_accuracy


def default_config() -> ml_collections.ConfigDict:
  """config.lff: the LfF paper's Colored MNIST values."""
  # A number, or a tuple of numbers: every combination trains side by side (vmap), e.g.
  # --config.lff.q="(0.5,0.7,0.9)".
  sweepable = lambda value: ml_collections.FieldReference(value, field_type=object)
  return ml_collections.ConfigDict(
      {
          "q": sweepable(0.7),
          "ema_alpha": sweepable(0.7),
          # With data.added_pairs: does f_B train on the generated examples too (False: real
          # only).
          "synthetic_in_biased": True,
          # With data.added_pairs: f_D's weight of the generated examples; None: relative
          # difficulty like the real ones, a number: that fixed weight (1: plain cross-entropy).
          "synthetic_weight": ml_collections.FieldReference(None, field_type=float),
      }
  )


@flax.struct.dataclass
class LfFState:
  step: jax.Array
  params: Any  # {'biased': f_B params, 'debiased': f_D params}
  opt_state: Any
  ema: ema.SampleLossEMA  # value (N, 2): [:, 0] the EMA of CE_B, [:, 1] that of CE_D.
  hparams: dict[str, jax.Array]  # {'q', 'ema_alpha'}: float32 scalars, traced (vmap to sweep).


class LfF:
  """Learning from Failure; hyperparameters in `config.lff`.

  `q` and `ema_alpha` are each a number, or a tuple of numbers: the trainer then trains every
  combination side by side in one program (`hparam_grid`).
  """

  sized_by_images = False
  sampling_weights = None
  packable = True

  def __init__(self, config: ml_collections.ConfigDict, model, train: TrainSet):
    self.hparam_grid = {
        "q": swept_values(config.lff.q, "lff.q", lambda q: 0 < q <= 1, "(0, 1]"),
        "ema_alpha": swept_values(
            config.lff.ema_alpha, "lff.ema_alpha", lambda a: 0 <= a < 1, "[0, 1)"
        ),
        **optimizer.swept(config),
    }
    self.model = model
    self.num_classes = train.num_classes
    self.image_shape = train.image_shape
    self.train_labels = np.asarray(train.labels, np.int32)
    # f_B amplifies the bias of the real data: with lff.synthetic_in_biased False, generated
    # examples (indices from here on) are left out of its loss; f_D still sees them all.
    self.first_synthetic = len(self.train_labels) - train.num_synthetic
    self.synthetic_in_biased = config.lff.synthetic_in_biased
    self.synthetic_weight = config.lff.synthetic_weight
    if self.synthetic_weight is not None and not self.synthetic_weight >= 0:
      raise InputError(
          f"lff.synthetic_weight is {self.synthetic_weight}; set it to a weight >= 0 (1: plain "
          "cross-entropy on the generated examples) or None (relative difficulty)."
      )
    self.tx = optimizer.create(config)
    self.to_float = models.input_scaler(config.input_scaling)

  def init_params(self, rng: jax.Array) -> dict[str, Any]:
    rng_biased, rng_debiased = jax.random.split(rng)
    return {
        "biased": models.init_params(self.model, rng_biased, self.image_shape),
        "debiased": models.init_params(self.model, rng_debiased, self.image_shape),
    }

  def biased_logits(self, params, raw_images: jax.Array, images: jax.Array) -> jax.Array:
    """f_B's logits of the uint8 `raw_images` (`images`: the same as model inputs)."""
    return jax.named_call(self.model.apply, name="f_B")(params["biased"], images)

  def init(self, rng: jax.Array, hparams: dict[str, jax.Array]) -> LfFState:
    params = self.init_params(rng)
    return LfFState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(self.tx, params, hparams),
        ema=ema.init(jnp.asarray(self.train_labels), shape=(2,)),
        hparams={k: jnp.asarray(hparams[k], jnp.float32) for k in self.hparam_grid},
    )

  def train_step(self, state: LfFState, batch):
    images, labels, index = self.to_float(batch["image"]), batch["label"], batch["index"]
    alpha = state.hparams["ema_alpha"]

    def loss_fn(params):
      logits_b = self.biased_logits(params, batch["image"], images)
      logits_d = jax.named_call(self.model.apply, name="f_D")(params["debiased"], images)
      ce_b = jax.lax.stop_gradient(losses.cross_entropy(logits_b, labels))
      ce_d = jax.lax.stop_gradient(losses.cross_entropy(logits_d, labels))
      buffer, weight = ema.difficulty_weights(state.ema, index, ce_b, ce_d, alpha, self.num_classes)
      real = index < self.first_synthetic
      if self.synthetic_weight is not None:
        weight = jnp.where(real, weight, self.synthetic_weight)
      if "biased" not in params:  # A frozen f_B (AmplifiedLfF): nothing to train.
        loss_b = jnp.zeros((), logits_d.dtype)
      else:
        gce = losses.generalized_cross_entropy_reference(logits_b, labels, state.hparams["q"])
        if self.synthetic_in_biased:
          loss_b = gce.mean()
        else:
          loss_b = jnp.sum(gce * real) / jnp.maximum(jnp.sum(real), 1.0)
      loss_d = losses.weighted_cross_entropy(logits_d, labels, weight).mean()
      aux = dict(
          ema=buffer,
          weight=weight,
          ce_b=ce_b,
          ce_d=ce_d,
          logits_b=logits_b,
          logits_d=logits_d,
          loss_b=loss_b,
          loss_d=loss_d,
      )
      return loss_b + loss_d, aux

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = optimizer.apply(self.tx, state, grads, ema=aux["ema"])
    metrics = {
        "loss": loss,
        "loss_biased": aux["loss_b"],
        "loss_debiased": aux["loss_d"],
        "ce_biased": aux["ce_b"].mean(),
        "ce_debiased": aux["ce_d"].mean(),
        "weight_mean": aux["weight"].mean(),
        "accuracy_biased": batch_accuracy(aux["logits_b"], labels),
        "accuracy_debiased": batch_accuracy(aux["logits_d"], labels),
    }
    return state, metrics

  def predict(self, state: LfFState, images: jax.Array) -> dict[str, jax.Array]:
    raw, images = images, self.to_float(images)
    return {
        "classifier": self.model.apply(state.params["debiased"], images),
        "biased": self.biased_logits(state.params, raw, images),
    }
