r"""Converts a PyTorch GAN-zoo Progressive GAN checkpoint into a jaxdebias generator.

  python -m jaxdebias.tools.port_pgan CHECKPOINT.pth OUT_DIR [--net=avgG] [--alpha=...]

Reads the checkpoint without running any code from it: `torch.load(weights_only=True)`, with the
zoo's config class (`models.utils.config.BaseConfig`) allowed only as `ZooConfig`, a plain
record of its fields. The architecture comes from the tensor shapes; alpha (the blend of a
network caught while growing) from the config, unless --alpha says otherwise. Every tensor of
the generator is checked and mapped, whether its key has the zoo's `.module.` segment or not
(and a DataParallel `module.` prefix): Linear (out, in) -> (in, out) with the output rows
reordered from the zoo's channel-major 4x4 reshape to NHWC, conv OIHW -> HWIO. Writes OUT_DIR/
generator.json (the architecture) and an orbax checkpoint OUT_DIR/checkpoints/0 of the params,
which `jaxdebias.runs.load_generator(OUT_DIR)` reads. torch is needed here only. Bad input: one
line on stderr and exit status 2.
"""

import json
import pathlib
import re
import sys

from absl import app
from absl import flags
import jax
import numpy as np

from jaxdebias import runs
from jaxdebias.errors import InputError, exit_on_user_error
from jaxdebias.models import pgan

ZOO_CONFIG_CLASSES = ("models.utils.config.BaseConfig",)


class ZooConfig:
  """Stands in for the zoo's config class while unpickling: keeps its fields as data."""

  def __setstate__(self, state):
    self.__dict__.update(state if isinstance(state, dict) else {"state": state})


def read_checkpoint(path: str) -> dict:
  """The checkpoint's top-level dict, read with torch's weights-only unpickler."""
  try:
    import torch  # pylint: disable=g-import-not-at-top (optional: only this tool needs it)
  except ImportError as e:
    raise InputError("Reading a PyTorch checkpoint needs torch: pip install torch.") from e
  allowed = [(ZooConfig, name) for name in ZOO_CONFIG_CLASSES]
  try:
    with torch.serialization.safe_globals(allowed):
      state = torch.load(path, map_location="cpu", weights_only=True)
  except FileNotFoundError as e:
    raise InputError(f"No checkpoint at {path}; give the path of the zoo's .pth file.") from e
  except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
    first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
    raise InputError(
        f"{path} cannot be read as a weights-only PyTorch checkpoint ({first}); it is damaged "
        "or holds objects other than tensors and the zoo's config: nothing was written."
    ) from e
  if not isinstance(state, dict):
    raise InputError(f"{path} holds a {type(state).__name__}, not a checkpoint dict.")
  return state


def generator_tensors(state: dict, net: str) -> dict[str, np.ndarray]:
  """The generator's tensors as float32 arrays, keys in the zoo's short style (no `.module.`)."""
  if net in state:
    tensors = state[net]
  elif "formatLayer.weight" in {_short_key(k) for k in state if isinstance(k, str)}:
    tensors = state  # A bare generator state dict.
  else:
    nets = [k for k in ("avgG", "netG") if k in state]
    raise InputError(
        f"the checkpoint has no generator {net!r} (it has {nets or sorted(state)[:5]}); "
        f"choose one with --net."
    )
  out = {}
  for key, value in tensors.items():
    short = _short_key(key)
    if short in out:
      raise InputError(f"the checkpoint holds {short!r} twice (as {key!r} too).")
    out[short] = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
  return out


def _short_key(key: str) -> str:
  return re.sub(r"^module\.", "", key).replace(".module.", ".")


def architecture(tensors: dict[str, np.ndarray]) -> dict:
  """latent_dim, widths and channels from the tensor shapes."""
  if "formatLayer.weight" not in tensors:
    raise InputError("the generator lacks 'formatLayer.weight': this is not a zoo PGAN generator.")
  num_scales = 1 + max(
      (int(m.group(1)) + 1 for k in tensors if (m := re.match(r"scaleLayers\.(\d+)\.", k))),
      default=0,
  )
  widths = [tensors["formatLayer.weight"].shape[0] // 16]
  widths += [
      tensors.get(f"scaleLayers.{i}.0.weight", np.zeros((0,))).shape[0]
      for i in range(num_scales - 1)
  ]
  return {
      "latent_dim": int(tensors["formatLayer.weight"].shape[1]),
      "widths": [int(w) for w in widths],
      "channels": int(tensors.get("toRGBLayers.0.weight", np.zeros((3,))).shape[0]),
  }


def expected_shapes(latent_dim: int, widths, channels: int) -> dict[str, tuple[int, ...]]:
  """Every generator tensor of the zoo's GNet with these sizes, in the zoo's layout."""
  shapes = {
      "formatLayer.weight": (16 * widths[0], latent_dim),
      "formatLayer.bias": (16 * widths[0],),
      "groupScale0.0.weight": (widths[0], widths[0], 3, 3),
      "groupScale0.0.bias": (widths[0],),
  }
  for i, (before, width) in enumerate(zip(widths, widths[1:])):
    for j, in_width in enumerate((before, width)):
      shapes[f"scaleLayers.{i}.{j}.weight"] = (width, in_width, 3, 3)
      shapes[f"scaleLayers.{i}.{j}.bias"] = (width,)
  for i, width in enumerate(widths):
    shapes[f"toRGBLayers.{i}.weight"] = (channels, width, 1, 1)
    shapes[f"toRGBLayers.{i}.bias"] = (channels,)
  return shapes


def to_flax(tensors: dict[str, np.ndarray], alpha: float) -> tuple[dict, dict]:
  """(Flax params of `pgan.Generator`, its architecture), after checking every key and shape."""
  arch = architecture(tensors)
  shapes = expected_shapes(**arch)
  for key in sorted(tensors):
    if key not in shapes:
      raise InputError(f"unknown generator tensor {key!r}: not part of a zoo PGAN GNet.")
  for key, shape in shapes.items():
    if key not in tensors:
      raise InputError(f"the generator lacks the tensor {key!r} (shape {shape}).")
    if tuple(tensors[key].shape) != shape:
      raise InputError(
          f"tensor {key!r} has shape {tuple(tensors[key].shape)}, expected {shape} from the "
          "other layers' sizes."
      )
  width0, last = arch["widths"][0], len(arch["widths"]) - 1
  if alpha > 0 and not last:
    raise InputError("alpha > 0 blends two scales, but this generator has only one.")
  # Dense: torch row o = c * 16 + p (channel-major 4x4), ours p * width0 + c (NHWC).
  nhwc = lambda a: a.reshape(width0, 16, *a.shape[1:]).swapaxes(0, 1).reshape(a.shape)
  conv = lambda name: {
      "kernel": tensors[f"{name}.weight"].transpose(2, 3, 1, 0),
      "bias": tensors[f"{name}.bias"],
  }
  params = {
      "format": {
          "kernel": nhwc(tensors["formatLayer.weight"]).T,
          "bias": nhwc(tensors["formatLayer.bias"]),
      },
      "scale0": conv("groupScale0.0"),
  }
  for i in range(1, last + 1):
    for j in range(2):
      params[f"scale{i}_conv{j}"] = conv(f"scaleLayers.{i - 1}.{j}")
  for i in ([last - 1] if alpha > 0 else []) + [last]:
    params[f"to_rgb{i}"] = conv(f"toRGBLayers.{i}")
  params = jax.tree.map(lambda a: np.ascontiguousarray(a, np.float32), {"params": params})
  return params, {**arch, "alpha": float(alpha)}


def config_alpha(state: dict) -> float:
  """The zoo config's alpha (0 when the checkpoint has none)."""
  config = state.get("config")
  value = config.get("alpha") if isinstance(config, dict) else getattr(config, "alpha", 0.0)
  return float(value or 0.0)


def port(checkpoint_path: str, out_dir: str, net: str = "avgG", alpha: float | None = None) -> dict:
  """Converts and writes OUT_DIR (refused if it already holds a generator); returns the
  architecture written to generator.json."""
  out = pathlib.Path(out_dir).absolute()
  if (out / runs.GENERATOR_JSON).exists() or (out / "checkpoints").exists():
    raise InputError(f"{out} already holds a generator; choose a new OUT_DIR.")
  state = read_checkpoint(checkpoint_path)
  params, arch = to_flax(
      generator_tensors(state, net), config_alpha(state) if alpha is None else alpha
  )
  module = pgan.Generator(**arch)
  like = jax.eval_shape(module.init, jax.random.key(0), np.zeros((1, arch["latent_dim"])))
  if jax.tree.structure(like) != jax.tree.structure(params):
    raise InputError(f"internal: converted params do not match {module}.")  # Guarded by tests.
  ckpt = runs.Checkpointer(out / "checkpoints", keep=1)
  try:
    ckpt.save(0, params)
    ckpt.wait_until_finished()
  finally:
    ckpt.close()
  record = {
      "kind": "pgan",
      **arch,
      "image_shape": list(module.image_shape),
      "source": str(pathlib.Path(checkpoint_path).absolute()),
      "net": net,
  }
  (out / runs.GENERATOR_JSON).write_text(json.dumps(record, indent=2) + "\n")
  return record


def _define_flags() -> None:
  """The command's flags (defined only when run as a command, so importing this defines none)."""
  flags.DEFINE_enum("net", "avgG", ["avgG", "netG"], "Which generator of the checkpoint.")
  flags.DEFINE_float("alpha", None, "Blend factor; default: the checkpoint config's.")


def main(argv) -> None:
  if len(argv) != 3:
    print("usage: python -m jaxdebias.tools.port_pgan CHECKPOINT.pth OUT_DIR", file=sys.stderr)
    sys.exit(2)
  with exit_on_user_error():
    record = port(argv[1], argv[2], flags.FLAGS.net, flags.FLAGS.alpha)
  print(json.dumps(record, indent=2))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
