"""A PyTorch Progressive GAN generator written from the architecture facts (test-only; torch).

Laid out like the model zoo's GNet so that its state dict has the zoo's keys: `formatLayer`,
`groupScale0.0`, `scaleLayers.{i}.{j}`, `toRGBLayers.{i}`, each an equalized layer wrapping
a Linear / Conv2d as `.module` (state_dict keys with `.module.`; the zoo also writes them
without). NCHW. `forward` returns the image and every equalized layer's output, in order.
"""

import math
import sys
import types

import torch
from torch import nn
import torch.nn.functional as F


class Equalized(nn.Module):
  """y = c * layer(x), bias included, c = sqrt(2 / fan_in); weights N(0, 1), biases N(0, 1)."""

  def __init__(self, layer: nn.Module):
    super().__init__()
    self.module = layer
    nn.init.normal_(layer.weight)
    nn.init.normal_(layer.bias)  # Non-zero, so the bias scaling is tested too.
    self.scale = math.sqrt(2.0 / math.prod(layer.weight.shape[1:]))

  def forward(self, x):
    return self.module(x) * self.scale


def pixel_norm(x):
  return x * torch.rsqrt((x**2).mean(dim=1, keepdim=True) + 1e-8)


class ReferenceGenerator(nn.Module):

  def __init__(self, latent_dim, widths, channels=3, alpha=0.0):
    super().__init__()
    self.alpha, self.width0 = alpha, widths[0]
    self.formatLayer = Equalized(nn.Linear(latent_dim, 16 * widths[0]))
    self.groupScale0 = nn.ModuleList([Equalized(nn.Conv2d(widths[0], widths[0], 3, padding=1))])
    self.scaleLayers = nn.ModuleList(
        nn.ModuleList(
            [
                Equalized(nn.Conv2d(before, width, 3, padding=1)),
                Equalized(nn.Conv2d(width, width, 3, padding=1)),
            ]
        )
        for before, width in zip(widths, widths[1:])
    )
    self.toRGBLayers = nn.ModuleList(Equalized(nn.Conv2d(w, channels, 1)) for w in widths)

  def forward(self, z):
    layers = []

    def run(layer, x):
      layers.append(layer(x))
      return layers[-1]

    x = F.leaky_relu(run(self.formatLayer, pixel_norm(z)), 0.2)
    x = pixel_norm(x.view(len(z), self.width0, 4, 4))
    x = pixel_norm(F.leaky_relu(run(self.groupScale0[0], x), 0.2))
    previous = None
    for i, group in enumerate(self.scaleLayers):
      if self.alpha > 0 and i == len(self.scaleLayers) - 1:
        previous = F.interpolate(run(self.toRGBLayers[-2], x), scale_factor=2, mode="nearest")
      x = F.interpolate(x, scale_factor=2, mode="nearest")
      for conv in group:
        x = pixel_norm(F.leaky_relu(run(conv, x), 0.2))
    x = run(self.toRGBLayers[-1], x)
    if previous is not None:
      x = self.alpha * previous + (1 - self.alpha) * x
    return x, layers


class BaseConfig:
  """Pickled under the zoo's name, models.utils.config.BaseConfig (see `zoo_config`)."""


def zoo_config(**fields):
  """A config object that pickles as the zoo's models.utils.config.BaseConfig."""
  for name in ("models", "models.utils", "models.utils.config"):
    sys.modules.setdefault(name, types.ModuleType(name))
  BaseConfig.__module__ = "models.utils.config"
  sys.modules["models.utils.config"].BaseConfig = BaseConfig
  config = BaseConfig()
  config.__dict__.update(fields)
  return config
