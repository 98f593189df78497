"""ERM ("vanilla"): one classifier trained with plain cross-entropy."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections

from jaxdebias import losses, models
from jaxdebias.methods import optimizer
from jaxdebias.methods.interface import TrainSet
from jaxdebias.metrics import batch_accuracy


@flax.struct.dataclass
class ERMState:
  step: jax.Array
  params: Any
  opt_state: Any


class ERM:
  """Empirical risk minimisation: the biased baseline every method is compared with."""

  sized_by_images = False  # Whether the state's shapes depend on the training images.
  sampling_weights = None  # Uniform batches (subclasses may draw in proportion to weights).
  packable = True  # Reads the training split only through batches and its state (interface).

  def __init__(self, config: ml_collections.ConfigDict, model, train: TrainSet):
    self.example_weights = None  # (N,) per training example (subclasses), or None: all 1.
    self.model = model
    self.image_shape = train.image_shape
    self.tx = optimizer.create(config)
    self.to_float = models.input_scaler(config.input_scaling)
    self.hparam_grid = optimizer.swept(config)  # Weight decay values, if several.

  def init(self, rng: jax.Array, hparams: dict[str, jax.Array]) -> ERMState:
    params = models.init_params(self.model, rng, self.image_shape)
    opt_state = optimizer.init(self.tx, params, hparams)
    return ERMState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state)

  def train_step(self, state: ERMState, batch):
    images, labels = self.to_float(batch["image"]), batch["label"]

    def loss_fn(params):
      logits = self.model.apply(params, images)
      if self.example_weights is None:
        return losses.cross_entropy(logits, labels).mean(), logits
      weight = jnp.asarray(self.example_weights)[batch["index"]]
      return losses.weighted_cross_entropy(logits, labels, weight).mean(), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = optimizer.apply(self.tx, state, grads)
    metrics = {"loss": loss, "accuracy": batch_accuracy(logits, labels)}
    return state, metrics

  def predict(self, state: ERMState, images: jax.Array) -> dict[str, jax.Array]:
    return {"classifier": self.model.apply(state.params, self.to_float(images))}
