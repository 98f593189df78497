r"""Training throughput of the CelebA classifier (ResNet, 128x128) against PyTorch, same run.

  python -m benchmarks.resnet_throughput     # writes results/resnet_throughput.{md,json}

The network of configs/celeba.py (ResNet-18 with GroupNorm, `jaxdebias.models.resnet`; --resnet=50
for the bottleneck ResNet-50), ERM, Adam 1e-4, cross-entropy, random uint8 images and labels
(speed does not depend on their values). JAX: the trainer's own program (members.chunk_runner:
a jitted scan over `--steps` steps, batches gathered on the device, state donated; on CPU its
convolutions are matmuls over patches, `layers.Conv`), and the same train step jitted alone,
called once per step. PyTorch: the same architecture written with torch.nn
(`TorchResNet`: the same layers, widths and GroupNorm; PyTorch's symmetric padding where
JAX's 'SAME' pads a strided convolution one pixel more on one side: the same output sizes and
FLOPs), torch.optim.Adam, as many threads as cores (torch's default). Each: one warm-up call
(compilation for JAX), then `--steps` timed steps; images/s = steps x batch / seconds. FLOPs
per step: XLA's cost analysis of one train step with lax.conv's convolutions, used for all; the
fraction of the matmul rate divides the FLOP/s by a large f32 matmul's, measured in the same
process. The two use the same
device (on a GPU, torch must see it too), one after the other.
"""

import os
import time

from absl import app
from absl import flags
import jax
import numpy as np
import torch
from torch import nn

from benchmarks import readme
from configs import celeba
from jaxdebias import methods, models, sharding
from jaxdebias.trainers import members

_BATCH = flags.DEFINE_integer("batch_size", 64, "Batch size (configs/celeba.py's: 64).")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed train steps per row.")
_RESNET = flags.DEFINE_enum("resnet", "18", ["18", "50"], "ResNet depth.")
_SIZE = flags.DEFINE_integer("image_size", 128, "Image side.")
_OUT = flags.DEFINE_string("out", "results", "Where resnet_throughput.{md,json} go.")
_README = flags.DEFINE_bool("readme", True, "Also put the table into README.md.")

NUM_CLASSES, NUM_EXAMPLES = 2, 256


class TorchBlock(nn.Module):
  """models.resnet.Block in torch.nn."""

  def __init__(self, in_channels: int, width: int, strides: int, bottleneck: bool):
    super().__init__()
    out_channels = 4 * width if bottleneck else width
    if bottleneck:
      kernels = ((1, width, 1), (3, width, strides), (1, out_channels, 1))
    else:
      kernels = ((3, width, strides), (3, out_channels, 1))
    layers, channels = [], in_channels
    for i, (k, out, stride) in enumerate(kernels):
      layers += [nn.Conv2d(channels, out, k, stride, k // 2, bias=False), _torch_norm(out)]
      if i < len(kernels) - 1:
        layers.append(nn.ReLU())
      channels = out
    self.body = nn.Sequential(*layers)
    self.shortcut = nn.Identity()
    if in_channels != out_channels or strides != 1:
      self.shortcut = nn.Sequential(
          nn.Conv2d(in_channels, out_channels, 1, strides, bias=False), _torch_norm(out_channels)
      )

  def forward(self, x):
    return torch.relu(self.shortcut(x) + self.body(x))


class TorchResNet(nn.Module):
  """models.resnet.ResNet in torch.nn (NCHW)."""

  def __init__(self, num_classes: int, stage_sizes, bottleneck: bool, width: int = 64):
    super().__init__()
    layers = [
        nn.Conv2d(3, width, 7, 2, 3, bias=False),
        _torch_norm(width),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    channels = width
    for i, blocks in enumerate(stage_sizes):
      for j in range(blocks):
        block = TorchBlock(channels, width * 2**i, 2 if i and not j else 1, bottleneck)
        layers.append(block)
        channels = (4 if bottleneck else 1) * width * 2**i
    self.features = nn.Sequential(*layers)
    self.head = nn.Linear(channels, num_classes)

  def forward(self, images):
    return self.head(self.features(images).mean(dim=(2, 3)))


def _torch_norm(channels: int) -> nn.GroupNorm:
  return nn.GroupNorm(min(32, channels), channels)


def jax_rows(config, data: dict, steps: int) -> tuple[list[dict], float]:
  """Seconds of `steps` steps in the trainer's scan and as one call per step; XLA's FLOPs of
  one step."""
  model = models.create(config.model, NUM_CLASSES)
  shape = data["image"].shape[1:]
  method = methods.build(config, model, methods.TrainSet(np.asarray(data["label"]), 2, shape))
  mesh = sharding.make_mesh(config.mesh)
  seeds, state = members.init_members(config, method, mesh)
  indices = members.chunk_indices(seeds, 0, steps, config.batch_size, NUM_EXAMPLES)
  placed = members.place_indices(indices, mesh)
  scan = members.chunk_runner(method, 1, mesh, state, steps)
  state, metrics = scan(state, data, placed)  # Warm-up: compiles.
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  state, metrics = scan(state, data, placed)
  jax.block_until_ready(metrics)
  seconds = time.perf_counter() - start
  rows = [{"framework": "JAX", "loop": "the trainer's scan", "seconds": seconds}]
  batches = [
      {"image": data["image"][i], "label": data["label"][i], "index": jax.numpy.asarray(i)}
      for i in indices
  ]
  step = jax.jit(method.train_step, donate_argnums=0)
  state, metrics = step(state, batches[0])  # Warm-up: compiles.
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for batch in batches:
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  seconds = time.perf_counter() - start
  rows.append({"framework": "JAX", "loop": "one jitted call per step", "seconds": seconds})
  return rows, useful_flops(config, state, batches[0])


def useful_flops(config, state, batch) -> float:
  """XLA's FLOPs of one train step with lax.conv's convolutions (on CPU the trainer runs them as
  matmuls over patches, whose gathering XLA counts too): the same work for every row."""
  config = config.copy_and_resolve_references()
  config.model.patch_conv = False
  model = models.create(config.model, NUM_CLASSES)
  method = methods.build(
      config, model, methods.TrainSet(np.zeros(NUM_EXAMPLES, np.int32), 2, batch["image"].shape[1:])
  )  # The same parameters: layers.Conv's do not depend on how it convolves.
  cost = jax.jit(method.train_step).lower(state, batch).compile().cost_analysis()
  return float(cost["flops"])


def torch_row(config, data: dict, steps: int) -> dict:
  """Seconds of `steps` PyTorch train steps on the same batches."""
  net = TorchResNet(NUM_CLASSES, config.model.stage_sizes, config.model.bottleneck)
  optimizer = torch.optim.Adam(net.parameters(), lr=config.optimizer.learning_rate)
  images = torch.from_numpy(np.array(data["image"])).permute(0, 3, 1, 2).contiguous()
  labels = torch.from_numpy(np.array(data["label"], np.int64))
  rng = np.random.default_rng(0)

  def train_step():
    index = torch.from_numpy(rng.integers(0, NUM_EXAMPLES, config.batch_size))
    loss = nn.functional.cross_entropy(net(images[index].float() / 255), labels[index])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

  train_step()  # Warm-up.
  start = time.perf_counter()
  for _ in range(steps):
    train_step()
  return {"framework": "PyTorch", "loop": "a Python loop", "seconds": time.perf_counter() - start}


def main(argv):
  del argv
  config = celeba.get_config(f"method=erm,resnet={_RESNET.value},size={_SIZE.value}")
  config.batch_size, config.mesh.data = _BATCH.value, 1
  shape = (_SIZE.value, _SIZE.value, 3)
  data = readme.random_training_data(NUM_EXAMPLES, shape, NUM_CLASSES)
  roofline = readme.matmul_flops_per_second(2048)
  rows, flops = jax_rows(config, data, _STEPS.value)
  rows.append(torch_row(config, data, _STEPS.value))
  for row in rows:
    row["images_per_second"] = _STEPS.value * _BATCH.value / row["seconds"]
    row["fraction_of_matmul_rate"] = flops * _STEPS.value / row["seconds"] / roofline
    print(row, flush=True)
  report = {
      "machine": readme.machine(),
      "torch": f"{torch.__version__}, {torch.get_num_threads()} threads",
      "network": f"ResNet-{_RESNET.value}, GroupNorm, {_SIZE.value}x{_SIZE.value}",
      "batch_size": _BATCH.value,
      "steps": _STEPS.value,
      "flops_per_step": flops,
      "matmul_flops_per_second": roofline,
      "rows": rows,
  }
  lines = [
      f"{report['network']}, ERM train step (forward, backward, Adam), batch {_BATCH.value},"
      f" {_STEPS.value} timed steps per row after a warm-up; {flops / 1e9:.0f} GFLOP per step"
      f" (XLA). Machine: {report['machine']}; torch {report['torch']}; f32 matmul rate"
      f" {roofline / 1e9:.0f} GFLOP/s. Regenerate: `python -m benchmarks.resnet_throughput`.",
      "",
      "| framework | loop | images/s | fraction of the matmul rate |",
      "|---|---|---|---|",
  ]
  for row in rows:
    lines.append(
        f"| {row['framework']} | {row['loop']} | {row['images_per_second']:.1f} |"
        f" {row['fraction_of_matmul_rate']:.2f} |"
    )
  readme.publish(
      _OUT.value,
      "resnet_throughput",
      "CelebA classifier training throughput (JAX trainer vs PyTorch)",
      "\n".join(lines) + "\n",
      report,
      "resnet" if _README.value else None,
  )


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  app.run(main)
