"""Learning from Failure (Nam et al., NeurIPS 2020), both models in one jitted step.

f_B (biased) is trained with generalized cross-entropy, which emphasises the easy samples and so
amplifies the shortcut; f_D (debiased, the classifier we report) is trained with cross-entropy
weighted by the relative difficulty W = CE_B / (CE_B + CE_D + 1e-8), so samples f_B fails on
(the bias-conflicting ones) get large weights. CE_B and CE_D in W are per-example EMAs
(`jaxdebias.ema`, both losses side by side in one buffer), updated with this batch before they
are read and divided by their class-wise maximum. Loss = mean(GCE_B) + mean(W * CE_D); one
backward pass; one Adam over {biased, debiased} (Adam is element-wise, so this is exactly two
Adams stepping in lockstep). `AmplifiedLfF` keeps all of this but replaces f_B by a frozen bias
amplifier trained on generated images (synthetic bias amplification).
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxdebias import ema, losses
from jaxdebias.errors import InputError
from jaxdebias.methods import amplified, common


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

  def __init__(
      self,
      config: ml_collections.ConfigDict,
      model,
      train_labels: np.ndarray,
      num_classes: int,
      image_shape: tuple[int, ...],
      num_synthetic: int = 0,
      train_images: np.ndarray | None = None,
  ):
    del train_images  # f_B and f_D see the images through train_step only.
    self.hparam_grid = {
        "q": common.hparam_values(config.lff.q, "lff.q", lambda q: 0 < q <= 1, "(0, 1]"),
        "ema_alpha": common.hparam_values(
            config.lff.ema_alpha, "lff.ema_alpha", lambda a: 0 <= a < 1, "[0, 1)"
        ),
    }
    self.model = model
    self.num_classes = num_classes
    self.image_shape = image_shape
    self.train_labels = np.asarray(train_labels, np.int32)
    # f_B amplifies the bias of the real data: with lff.synthetic_in_biased False, generated
    # examples (indices from here on) are left out of its loss; f_D still sees them all.
    self.first_synthetic = len(self.train_labels) - num_synthetic
    self.synthetic_in_biased = config.lff.synthetic_in_biased
    self.synthetic_weight = config.lff.synthetic_weight
    if self.synthetic_weight is not None and not self.synthetic_weight >= 0:
      raise InputError(
          f"lff.synthetic_weight is {self.synthetic_weight}; set it to a weight >= 0 (1: plain "
          "cross-entropy on the generated examples) or None (relative difficulty)."
      )
    self.tx = common.optimizer(config)
    self.to_float = common.input_scaler(config)

  def init_params(self, rng: jax.Array) -> dict[str, Any]:
    rng_biased, rng_debiased = jax.random.split(rng)
    return {
        "biased": common.init_params(self.model, rng_biased, self.image_shape),
        "debiased": common.init_params(self.model, rng_debiased, self.image_shape),
    }

  def biased_logits(self, params, raw_images: jax.Array, images: jax.Array) -> jax.Array:
    """f_B's logits of the uint8 `raw_images` (`images`: the same as model inputs)."""
    return jax.named_call(self.model.apply, name="f_B")(params["biased"], images)

  def init(self, rng: jax.Array, hparams: dict[str, jax.Array]) -> LfFState:
    params = self.init_params(rng)
    return LfFState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=self.tx.init(params),
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
      buffer = ema.update(state.ema, index, jnp.stack([ce_b, ce_d], axis=1), alpha)
      normalized = ema.normalized(buffer, index, self.num_classes)
      weight = losses.relative_difficulty(normalized[:, 0], normalized[:, 1])
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
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    state = state.replace(
        step=state.step + 1,
        params=optax.apply_updates(state.params, updates),
        opt_state=opt_state,
        ema=aux["ema"],
    )
    metrics = {
        "loss": loss,
        "loss_biased": aux["loss_b"],
        "loss_debiased": aux["loss_d"],
        "ce_biased": aux["ce_b"].mean(),
        "ce_debiased": aux["ce_d"].mean(),
        "weight_mean": aux["weight"].mean(),
        "accuracy_biased": common.batch_accuracy(aux["logits_b"], labels),
        "accuracy_debiased": common.batch_accuracy(aux["logits_d"], labels),
    }
    return state, metrics

  def predict(self, state: LfFState, images: jax.Array) -> dict[str, jax.Array]:
    raw, images = images, self.to_float(images)
    return {
        "classifier": self.model.apply(state.params["debiased"], images),
        "biased": self.biased_logits(state.params, raw, images),
    }


class AmplifiedLfF(LfF):
  """Synthetic bias amplification, end-to-end recipe (Ciranni et al., NeurIPS 2025): LfF's f_D,
  with a frozen bias amplifier in place of the GCE-trained f_B.

  The amplifier (`amplifier.workdir`) is a finished classifier run trained only on images of a
  class-conditional generator (`data.generated`), so it carries the dataset's bias without having
  seen a real bias-conflicting example. W, the per-example EMAs and their class-wise
  normalisation are LfF's, with the amplifier's logits divided by `amplifier.temperature`;
  `lff.q` is unused.
  """

  def __init__(self, config: ml_collections.ConfigDict, *args, **kwargs):
    super().__init__(config, *args, **kwargs)
    self.temperature = config.amplifier.temperature
    if not self.temperature > 0:
      raise InputError(
          f"amplifier.temperature is {self.temperature}; set it to a number > 0 (1: the "
          "amplifier's own logits)."
      )
    self.amplifier = amplified.amplifier_fn(config)
    del self.hparam_grid["q"]

  def init_params(self, rng: jax.Array) -> dict[str, Any]:
    return {"debiased": common.init_params(self.model, rng, self.image_shape)}

  def biased_logits(self, params, raw_images, images):
    """The frozen amplifier's logits over the temperature (it scales its inputs as it was
    trained)."""
    return jax.lax.stop_gradient(self.amplifier(raw_images)) / self.temperature
