"""DisEnt / DFA: Learning Debiased Representation via Disentangled Feature Augmentation (Lee et
al., NeurIPS 2021), both branches in one jitted step.

Two encoders, intrinsic E_i and bias E_b, each followed by a linear head on the concatenated
features z = [z_i, z_b]: C_i is trained through z_i only (z_b held constant) and C_b through z_b
only. The bias side takes generalized cross-entropy (GCE, LfF's reference form) and so learns
the shortcut; the intrinsic side takes cross-entropy weighted by LfF's relative difficulty
W = CE_b / (CE_b + CE_i + 1e-8), from per-example EMAs of both losses divided by their
class-wise maximum (`jaxdebias.ema`, as LfF). Its equations:

  L_dis  = W CE(C_i(z), y) + lambda_dis_align GCE(C_b(z), y)                       (Eq. 2)
  L_swap = W CE(C_i(z_swap), y) + lambda_swap_align GCE(C_b(z_swap), y_perm)       (Eq. 3)
  L      = L_dis + lambda_swap L_swap, L_swap only after `swap_after` steps         (Eq. 4)

where z_swap = [z_i, z_b[perm]] with a random permutation `perm` of the batch (features and
labels of the bias side swapped together). The classifier is C_i([z_i, z_b]).

Each encoder is the config's classifier network with `feature_dim` outputs and a ReLU: the MLP
of model.hidden = (100, 100) and feature_dim 16 is the paper's Colored MNIST network
(784*3 -> 100 -> 100 -> 16 per encoder, heads 32 -> 10). `paper_schedule` sets the rest of
the paper's Colored MNIST settings. No bias labels.
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdebias import ema, losses, models
from jaxdebias.errors import check_integer
from jaxdebias.methods import optimizer
from jaxdebias.methods.interface import TrainSet, swept_values
from jaxdebias.metrics import batch_accuracy
from jaxdebias.models.mlp import TorchLinear

_BRANCHES = ("intrinsic", "bias")


def default_config() -> ml_collections.ConfigDict:
  """config.disent: the paper's Colored MNIST values (its scripts/run_cmnist_ours.sh)."""
  sweepable = lambda value: ml_collections.FieldReference(value, field_type=object)
  return ml_collections.ConfigDict(
      {
          "q": sweepable(0.7),  # GCE's exponent on the bias side.
          "ema_alpha": sweepable(0.7),
          "lambda_dis_align": sweepable(10.0),
          "lambda_swap_align": sweepable(10.0),
          "lambda_swap": sweepable(1.0),
          "swap_after": 10_000,  # Steps before the feature swap starts (the paper's curr_step).
          "feature_dim": 16,  # Each encoder's output width.
      }
  )


def paper_schedule(config: ml_collections.ConfigDict) -> None:
  """The DisEnt paper's Colored MNIST schedule, in place: encoders 100 -> 100 -> 16, Adam
  0.01, batch 256, 50,000 steps, the rate halved every 10,000 steps from the swap on."""
  config.model.hidden = (100, 100)
  config.optimizer.update(
      learning_rate=0.01,
      decay_every=10_000,
      decay_factor=0.5,
      decay_begin=config.disent.get_ref("swap_after"),
  )
  config.update(batch_size=256, num_steps=50_000)


@flax.struct.dataclass
class DisEntState:
  step: jax.Array
  params: Any  # {'intrinsic': {'encoder', 'head'}, 'bias': {'encoder', 'head'}}
  opt_state: Any
  ema: ema.SampleLossEMA  # value (N, 2): [:, 0] the EMA of CE_b, [:, 1] that of CE_i.
  rng: jax.Array  # The swap permutations' key data (uint32; folded with the step).
  hparams: dict[str, jax.Array]  # q, ema_alpha and the lambdas: float32 scalars, traced.


class DisEnt:
  """DisEnt (module doc); hyperparameters in `config.disent`, each but swap_after and
  feature_dim a number or a tuple of numbers to train side by side."""

  sized_by_images = False
  sampling_weights = None
  packable = True

  def __init__(self, config: ml_collections.ConfigDict, model, train: TrainSet):
    cfg = config.disent
    positive = lambda v: v >= 0
    self.hparam_grid = {
        "q": swept_values(cfg.q, "disent.q", lambda q: 0 < q <= 1, "(0, 1]"),
        "ema_alpha": swept_values(
            cfg.ema_alpha, "disent.ema_alpha", lambda a: 0 <= a < 1, "[0, 1)"
        ),
        **{
            name: swept_values(cfg[name], f"disent.{name}", positive, "[0, inf)")
            for name in ("lambda_dis_align", "lambda_swap_align", "lambda_swap")
        },
        **optimizer.swept(config),
    }
    check_integer("disent.swap_after", cfg.swap_after, 0)
    check_integer("disent.feature_dim", cfg.feature_dim, 1)
    self.swap_after = cfg.swap_after
    self.encoder = model.clone(num_classes=cfg.feature_dim)
    self.head = TorchLinear(train.num_classes)
    self.feature_dim = cfg.feature_dim
    self.num_classes = train.num_classes
    self.image_shape = train.image_shape
    self.train_labels = np.asarray(train.labels, np.int32)
    self.tx = optimizer.create(config)
    self.to_float = models.input_scaler(config.input_scaling)

  def init(self, rng: jax.Array, hparams: dict[str, jax.Array]) -> DisEntState:
    keys = jax.random.split(rng, 5)
    features = jnp.zeros((1, 2 * self.feature_dim), jnp.float32)
    params = {
        branch: {
            "encoder": models.init_params(self.encoder, keys[2 * k], self.image_shape),
            "head": self.head.init(keys[2 * k + 1], features),
        }
        for k, branch in enumerate(_BRANCHES)
    }
    return DisEntState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(self.tx, params, hparams),
        ema=ema.init(jnp.asarray(self.train_labels), shape=(2,)),
        rng=jax.random.key_data(keys[4]),
        hparams={k: jnp.asarray(hparams[k], jnp.float32) for k in self.hparam_grid},
    )

  def features(self, params, images: jax.Array) -> jax.Array:
    """An encoder's features of float `images`: ReLU of the network's `feature_dim` outputs."""
    return jax.nn.relu(self.encoder.apply(params["encoder"], images))

  def logits(self, params, z_i: jax.Array, z_b: jax.Array) -> jax.Array:
    """A branch's head on z = [z_i, z_b]."""
    return self.head.apply(params["head"], jnp.concatenate([z_i, z_b], axis=-1))

  def swap_permutation(self, state: DisEntState, batch_size: int) -> jax.Array:
    """The batch permutation of this step's feature swap."""
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    return jax.random.permutation(key, batch_size)

  def train_step(self, state: DisEntState, batch):
    images, labels, index = self.to_float(batch["image"]), batch["label"], batch["index"]
    h = state.hparams
    perm = self.swap_permutation(state, labels.shape[0])
    lambda_swap = jnp.where(state.step > self.swap_after, h["lambda_swap"], 0.0)
    held = jax.lax.stop_gradient

    def loss_fn(params):
      z_i = self.features(params["intrinsic"], images)
      z_b = self.features(params["bias"], images)
      logits_i = self.logits(params["intrinsic"], z_i, held(z_b))
      logits_b = self.logits(params["bias"], held(z_i), z_b)
      ce_i = held(losses.cross_entropy(logits_i, labels))
      ce_b = held(losses.cross_entropy(logits_b, labels))
      buffer, weight = ema.difficulty_weights(
          state.ema, index, ce_b, ce_i, h["ema_alpha"], self.num_classes
      )
      gce = lambda logits, y: losses.generalized_cross_entropy_reference(logits, y, h["q"])
      loss_dis = (
          losses.weighted_cross_entropy(logits_i, labels, weight).mean()
          + h["lambda_dis_align"] * gce(logits_b, labels).mean()
      )
      z_b_swap = z_b[perm]
      swap_i = self.logits(params["intrinsic"], z_i, held(z_b_swap))
      swap_b = self.logits(params["bias"], held(z_i), z_b_swap)
      loss_swap = (
          losses.weighted_cross_entropy(swap_i, labels, weight).mean()
          + h["lambda_swap_align"] * gce(swap_b, labels[perm]).mean()
      )
      aux = dict(ema=buffer, weight=weight, logits_i=logits_i, logits_b=logits_b,
                 loss_dis=loss_dis, loss_swap=loss_swap)
      return loss_dis + lambda_swap * loss_swap, aux

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = optimizer.apply(self.tx, state, grads, ema=aux["ema"])
    metrics = {
        "loss": loss,
        "loss_dis": aux["loss_dis"],
        "loss_swap": aux["loss_swap"],
        "weight_mean": aux["weight"].mean(),
        "accuracy_intrinsic": batch_accuracy(aux["logits_i"], labels),
        "accuracy_bias": batch_accuracy(aux["logits_b"], labels),
    }
    return state, metrics

  def predict(self, state: DisEntState, images: jax.Array) -> dict[str, jax.Array]:
    images = self.to_float(images)
    z_i = self.features(state.params["intrinsic"], images)
    z_b = self.features(state.params["bias"], images)
    return {
        "classifier": self.logits(state.params["intrinsic"], z_i, z_b),
        "biased": self.logits(state.params["bias"], z_i, z_b),
    }
