"""Online GroupDRO (Sagawa et al., "Distributionally Robust Neural Networks", ICLR 2020,
Algorithm 1) over given groups of the training examples, and its oracle: the groups (class,
true bias label), the one method here that reads training bias labels (marked so in results).

As the authors' code (kohpangwei/group_DRO, loss.py, with --reweight_groups): batches are
group-balanced, drawn with replacement in proportion to 1 / |group of i|; L_g is the mean loss of
group g's examples in the batch (0 where the batch has none); the group weights q on the simplex
follow q_g <- q_g exp(eta L_g), normalised, and the loss is sum_g q_g L_g (eta: the step size,
the paper's 0.01).
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdebias import losses
from jaxdebias.errors import InputError
from jaxdebias.methods import optimizer
from jaxdebias.methods.erm import ERM
from jaxdebias.methods.interface import TrainSet
from jaxdebias.metrics import batch_accuracy


def default_config() -> ml_collections.ConfigDict:
  """config.group_dro: the oracle's step size eta of the group weights (Sagawa et al.: 0.01)."""
  return ml_collections.ConfigDict({"step_size": 0.01})


@flax.struct.dataclass
class GroupDROState:
  step: jax.Array
  params: Any
  opt_state: Any
  group_weights: jax.Array  # (G,) q, on the simplex: the adversary's weight of each group.


class GroupDRO(ERM):
  """Online GroupDRO over `groups` (N, k): one row per training example, a group per distinct
  row (module doc); ERM's model and optimizer."""

  sized_by_images = True  # Its state holds a weight per non-empty group.
  packable = False  # Its groups are its training split's.

  def __init__(
      self,
      config: ml_collections.ConfigDict,
      model,
      train: TrainSet,
      groups: np.ndarray,
      step_size: float,
      step_size_field: str,
  ):
    if not step_size >= 0:
      raise InputError(
          f"{step_size_field} is {step_size}; set it to a number >= 0 (0: the group weights "
          "stay uniform)."
      )
    super().__init__(config, model, train)
    self.step_size = step_size
    _, group_index, counts = np.unique(groups, return_inverse=True, return_counts=True, axis=0)
    self.group_index = group_index.reshape(-1).astype(np.int32)
    self.num_groups = len(counts)
    self.sampling_weights = 1 / counts[self.group_index]  # Group-balanced batches.

  def init(self, rng: jax.Array, hparams: dict[str, jax.Array]) -> GroupDROState:
    state = super().init(rng, hparams)
    return GroupDROState(
        step=state.step,
        params=state.params,
        opt_state=state.opt_state,
        group_weights=jnp.full((self.num_groups,), 1 / self.num_groups, jnp.float32),
    )

  def train_step(self, state: GroupDROState, batch):
    images, labels = self.to_float(batch["image"]), batch["label"]
    index = batch["index"]
    in_group = jax.nn.one_hot(jnp.asarray(self.group_index)[index], self.num_groups)
    group_size = jnp.maximum(in_group.sum(0), 1)  # In the batch; 1 where absent (loss 0).

    def loss_fn(params):
      logits = self.model.apply(params, images)
      group_loss = losses.cross_entropy(logits, labels) @ in_group / group_size
      q = state.group_weights * jnp.exp(self.step_size * jax.lax.stop_gradient(group_loss))
      q = q / q.sum()
      return group_loss @ q, (logits, q)

    (loss, (logits, q)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = optimizer.apply(self.tx, state, grads, group_weights=q)
    metrics = {
        "loss": loss,
        "accuracy": batch_accuracy(logits, labels),
        "max_group_weight": q.max(),
    }
    return state, metrics


class GroupDROOracle(GroupDRO):
  """GroupDRO over the true (class, bias label) groups of the training split: an upper
  reference that uses what the other methods do without (module doc)."""

  def __init__(self, config: ml_collections.ConfigDict, model, train: TrainSet):
    if train.bias_labels is None or np.any(train.bias_labels < 0):
      raise InputError(
          "group_dro_oracle needs the bias label of every training example; this dataset has "
          "none (or unknown ones, -1): use a method that needs no bias labels."
      )
    groups = np.stack([train.labels, train.bias_labels], axis=1)
    step_size = config.group_dro.step_size
    super().__init__(config, model, train, groups, step_size, "group_dro.step_size")
