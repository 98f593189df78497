"""Classifier training methods behind one interface (`interface.Method`), chosen by
`config.method`, each built by `build` from the config, a classifier network and the training
split (`interface.TrainSet`: images and labels, never bias labels but for the oracle baselines
of USES_BIAS_LABELS).

A method's defaults sit beside it (`lff.default_config` is `config.lff`, ...); frozen models it
reads (the bias amplifier of the amplified_* methods) are handed in as functions. The GAN of
latent de-biasing (`gan.py`) is a pure update step of the same kind for the GAN trainer, not a
classifier method.
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import ml_collections

from jaxdebias.errors import InputError
from jaxdebias.methods.amplified import AmplifiedGroupDRO, AmplifiedGroups, AmplifiedLfF
from jaxdebias.methods.disent import DisEnt
from jaxdebias.methods.erm import ERM
from jaxdebias.methods.group_dro import GroupDROOracle
from jaxdebias.methods.jtt import JTT
from jaxdebias.methods.interface import Batch, Member, Method, TrainSet, members_of, stack
from jaxdebias.methods.lff import LfF

METHODS = {
    "erm": ERM,
    "lff": LfF,
    "amplified_lff": AmplifiedLfF,
    "amplified_groups": AmplifiedGroups,
    "amplified_dro": AmplifiedGroupDRO,
    "group_dro_oracle": GroupDROOracle,
    "jtt": JTT,
    "disent": DisEnt,
}
# Methods built with the frozen classifier of a finished run: the config field that names the
# run's workdir, and what the run must be.
_AMPLIFIER = (
    "amplifier.workdir",
    "a bias amplifier: a finished classifier run trained on generated images "
    "(data.generated_train)",
)
FROZEN_RUNS = {
    "amplified_lff": _AMPLIFIER,
    "amplified_groups": _AMPLIFIER,
    "amplified_dro": _AMPLIFIER,
    "jtt": ("jtt.identifier", "the identification model: a finished ERM run of T steps"),
}
# Oracle baselines: built with the training split's bias labels (TrainSet.bias_labels), marked
# in results.json (`uses_training_bias_labels`). Every other method trains without them.
USES_BIAS_LABELS = frozenset({"group_dro_oracle"})


def get(name: str) -> type[Method]:
  """The method class registered as `name`; InputError naming the known ones otherwise."""
  if name not in METHODS:
    raise InputError(f"Unknown method {name!r}; set --config.method to one of {sorted(METHODS)}.")
  return METHODS[name]


def build(
    config: ml_collections.ConfigDict,
    model: nn.Module,
    train: TrainSet,
    frozen: Callable[[jax.Array], jax.Array] | None = None,
) -> Method:
  """The method `config.method` (hyperparameters from its config section) for `train`.

  frozen: uint8 images -> logits, the frozen classifier of the run `frozen_run(config)` names;
  given exactly to the methods of FROZEN_RUNS.
  """
  cls = get(config.method)
  if config.method not in FROZEN_RUNS:
    return cls(config, model, train)
  if frozen is None:
    field, what = FROZEN_RUNS[config.method]
    raise InputError(f"method {config.method} needs {what}: set --config.{field} to its workdir.")
  return cls(config, model, train, frozen)


def frozen_run(config: ml_collections.ConfigDict) -> str | None:
  """The workdir of the finished run whose classifier `config.method` reads (FROZEN_RUNS)."""
  if config.method not in FROZEN_RUNS:
    return None
  section, field = FROZEN_RUNS[config.method][0].split(".")
  return config[section][field]
