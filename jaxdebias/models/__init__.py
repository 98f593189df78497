"""Classifier networks, chosen by `config.model.name`."""

import flax.linen as nn
import ml_collections

from jaxdebias.errors import InputError
from jaxdebias.models.mlp import MLP

MODELS = {"mlp": MLP}


def create(model_config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
  """Builds the classifier named by `model_config.name` with `num_classes` outputs."""
  if model_config.name not in MODELS:
    raise InputError(
        f"Unknown model {model_config.name!r}; set --config.model.name to one of "
        f"{sorted(MODELS)}."
    )
  kwargs = {k: v for k, v in model_config.items() if k != "name"}
  return MODELS[model_config.name](num_classes=num_classes, **kwargs)
