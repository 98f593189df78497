"""The Flax Progressive GAN against a PyTorch reference, through the checkpoint converter."""

import json
import pathlib
import subprocess
import sys

import chex
import jax
import numpy as np
import pytest
import torch

from jaxdebias import runs
from jaxdebias.errors import InputError
from jaxdebias.models import pgan
from jaxdebias.tools import port_pgan
from tests.pgan_reference import ReferenceGenerator, zoo_config

LATENT, WIDTHS = 16, (32, 16, 8)  # 4x4, 8x8, 16x16.


def _reference(alpha=0.0, seed=0):
  torch.manual_seed(seed)
  return ReferenceGenerator(LATENT, WIDTHS, alpha=alpha).eval()


def _short(state_dict):
  return {k.replace(".module.", "."): v for k, v in state_dict.items()}


def _save_zoo_checkpoint(path, net_state, **config):
  """The zoo's layout: config object, netG, netD, avgG (the averaged generator)."""
  torch.save(
      {"config": zoo_config(**config), "netG": net_state, "netD": {}, "avgG": net_state}, path
  )


def _torch_to_nhwc(x: torch.Tensor) -> np.ndarray:
  x = x.detach().numpy()
  if x.ndim == 2:  # The format layer: channel-major (C, 4, 4) rows.
    return x.reshape(len(x), -1, 4, 4).transpose(0, 2, 3, 1).reshape(len(x), -1)
  return x.transpose(0, 2, 3, 1)


def _flax_layers(gen, z):
  """Every equalized layer's output in call order, from Flax's captured intermediates."""
  _, state = gen.module.apply(gen.params, z, capture_intermediates=True)
  found = state["intermediates"]
  names = ["format", "scale0"]
  for i in range(1, len(WIDTHS)):
    if gen.module.alpha > 0 and i == len(WIDTHS) - 1:
      names.append(f"to_rgb{i - 1}")
    names += [f"scale{i}_conv0", f"scale{i}_conv1"]
  names.append(f"to_rgb{len(WIDTHS) - 1}")
  return [np.asarray(found[name]["__call__"][0]) for name in names]


@pytest.mark.parametrize(
    "alpha, key_style, batch",
    [
        (0.0, "module", 5),
        (0.0, "short", 5),
        (0.0, "dataparallel", 5),
        (0.35, "short", 5),
        (0.0, "short", 40),  # 40 x 8 x 8 input pixels: the last scale takes `upsampled_conv`.
    ],
)
def test_ported_generator_matches_the_reference_layer_by_layer(tmp_path, alpha, key_style, batch):
  reference = _reference(alpha)
  state = reference.state_dict()  # Keys with `.module.`.
  if key_style == "short":
    state = _short(state)
  elif key_style == "dataparallel":
    state = {f"module.{k}": v for k, v in state.items()}
  _save_zoo_checkpoint(tmp_path / "zoo.pth", state, alpha=alpha, depthScale0=WIDTHS[0])
  record = port_pgan.port(str(tmp_path / "zoo.pth"), str(tmp_path / "out"))
  assert record["widths"] == list(WIDTHS) and record["alpha"] == alpha
  gen = runs.load_generator(str(tmp_path / "out"))
  assert (gen.latent_dim, gen.image_shape) == (LATENT, (16, 16, 3))

  z = np.random.default_rng(0).standard_normal((batch, LATENT)).astype(np.float32)
  with torch.no_grad():
    want, want_layers = reference(torch.from_numpy(z))
  got_layers = _flax_layers(gen, z)
  assert len(got_layers) == len(want_layers)
  for got, want_layer in zip(got_layers, want_layers):
    expected = _torch_to_nhwc(want_layer)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got / scale, expected / scale, atol=1e-5)
  image = np.asarray(gen(z))
  chex.assert_shape(image, (batch, 16, 16, 3))
  np.testing.assert_allclose(image, _torch_to_nhwc(want), atol=1e-4, rtol=1e-4)


def test_converter_refuses_bad_tensors_by_name(tmp_path):
  state = _short(_reference().state_dict())
  cases = {
      "unknown": (
          {**state, "extraLayer.weight": torch.zeros(3)},
          "unknown generator tensor 'extraLayer.weight'",
      ),
      "missing": (
          {k: v for k, v in state.items() if k != "scaleLayers.1.0.bias"},
          "lacks the tensor 'scaleLayers.1.0.bias'",
      ),
      "shape": (
          {**state, "toRGBLayers.1.weight": torch.zeros(3, 15, 1, 1)},
          r"tensor 'toRGBLayers.1.weight' has shape \(3, 15, 1, 1\), expected \(3, 16, 1, 1\)",
      ),
  }
  for name, (bad, message) in cases.items():
    _save_zoo_checkpoint(tmp_path / f"{name}.pth", bad)
    with pytest.raises(InputError, match=message):
      port_pgan.port(str(tmp_path / f"{name}.pth"), str(tmp_path / name))
    assert not (tmp_path / name).exists()  # Nothing written.
  with pytest.raises(InputError, match="no generator 'avgG'"):
    torch.save({"netD": {}}, tmp_path / "no_g.pth")
    port_pgan.port(str(tmp_path / "no_g.pth"), str(tmp_path / "no_g"))


def test_converter_reads_without_running_code_and_refuses_damaged_files(tmp_path):
  marker = tmp_path / "pwned"

  class Payload:

    def __reduce__(self):
      return (open, (str(marker), "w"))

  torch.save(
      {"config": Payload(), "avgG": _short(_reference().state_dict())}, tmp_path / "evil.pth"
  )
  with pytest.raises(InputError, match="cannot be read as a weights-only PyTorch checkpoint"):
    port_pgan.port(str(tmp_path / "evil.pth"), str(tmp_path / "evil"))
  assert not marker.exists()
  _save_zoo_checkpoint(tmp_path / "ok.pth", _short(_reference().state_dict()))
  data = (tmp_path / "ok.pth").read_bytes()
  (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
  with pytest.raises(InputError, match="cannot be read"):
    port_pgan.port(str(tmp_path / "cut.pth"), str(tmp_path / "cut"))
  with pytest.raises(InputError, match="No checkpoint at"):
    port_pgan.port(str(tmp_path / "missing.pth"), str(tmp_path / "missing"))


def test_command_converts_once_and_never_overwrites(tmp_path):
  _save_zoo_checkpoint(tmp_path / "zoo.pth", _short(_reference().state_dict()), alpha=0.0)
  command = [sys.executable, "-m", "jaxdebias.tools.port_pgan", str(tmp_path / "zoo.pth")]
  done = subprocess.run(
      command + [str(tmp_path / "out")],
      capture_output=True,
      text=True,
      check=True,
      cwd=pathlib.Path(__file__).parents[1],
  )
  assert json.loads(done.stdout)["kind"] == "pgan"
  before = (tmp_path / "out" / "generator.json").read_text()
  again = subprocess.run(
      command + [str(tmp_path / "out")],
      capture_output=True,
      text=True,
      cwd=pathlib.Path(__file__).parents[1],
  )
  assert again.returncode == 2 and "already holds a generator" in again.stderr
  assert (tmp_path / "out" / "generator.json").read_text() == before


def test_upsampled_conv_equals_upsampling_then_convolving():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 5, 7, 3)).astype(np.float32)
  kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
  want = jax.lax.conv_general_dilated(
      pgan.upsample(x), kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
  )
  np.testing.assert_allclose(pgan.upsampled_conv(x, kernel), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("widths", [(8,), (8, 8, 8, 8, 4, 4)])
def test_generator_builds_at_any_number_of_scales(widths):
  module = pgan.Generator(latent_dim=4, widths=widths, channels=3)
  z = np.zeros((2, 4), np.float32)
  params = module.init(jax.random.key(0), z)
  side = 4 * 2 ** (len(widths) - 1)
  assert module.image_shape == (side, side, 3)
  chex.assert_shape(module.apply(params, z), (2, side, side, 3))
