"""Classifier networks, chosen by `config.model.name`."""

import dataclasses

import flax.linen as nn
import ml_collections

from jaxdebias.errors import InputError
from jaxdebias.models.mlp import MLP
from jaxdebias.models.resnet import ResNet

MODELS = {"mlp": MLP, "resnet": ResNet}


def create(model_config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
  """Builds the classifier named by `model_config.name` with `num_classes` outputs."""
  if model_config.name not in MODELS:
    raise InputError(
        f"Unknown model {model_config.name!r}; set --config.model.name to one of "
        f"{sorted(MODELS)}."
    )
  # Fields of other models are ignored (config files over base_config keep the MLP's `hidden`);
  # fields of no model are typos.
  fields = lambda cls: {f.name for f in dataclasses.fields(cls)} - {"num_classes", "parent", "name"}
  unknown = set(model_config) - {"name"} - set().union(*map(fields, MODELS.values()))
  if unknown:
    raise InputError(
        f"Unknown model field(s) {sorted(unknown)}; --config.model.* takes "
        f"{sorted(fields(MODELS[model_config.name]))} for {model_config.name}."
    )
  model = MODELS[model_config.name]
  kwargs = {k: v for k, v in model_config.items() if k in fields(model)}
  return model(num_classes=num_classes, **kwargs)
