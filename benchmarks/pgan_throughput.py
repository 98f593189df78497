r"""Generation throughput of the Flax Progressive GAN against the PyTorch reference, same run.

  python -m benchmarks.pgan_throughput     # writes results/pgan_throughput.{md,json}

The paper's CelebA generator: latent 512, widths 512 (4 to 32 px), 256 (64 px), 128 (128 px),
128x128 RGB. Random weights (speed does not depend on them). Flax: the jitted forward pass
(`jaxdebias.models.pgan.Generator`); PyTorch: tests/pgan_reference.py, eval mode under
torch.inference_mode, as many threads as cores (torch's default). For each batch size: one
warm-up call (compilation for JAX), then the best of `--repeats` timed calls; images/s =
batch / best seconds. The two use the same cores, one after the other.
"""

import os
import time

from absl import app
from absl import flags
import jax
import numpy as np
import torch

from benchmarks import readme
from jaxdebias.models import pgan
from tests.pgan_reference import ReferenceGenerator

_BATCHES = flags.DEFINE_list("batch_sizes", ["1", "4", "16"], "Batch sizes to time.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls per batch size (best one counts).")
_OUT = flags.DEFINE_string("out", "results", "Where pgan_throughput.{md,json} go.")
_README = flags.DEFINE_bool("readme", True, "Also put the table into README.md.")

LATENT, WIDTHS = 512, (512, 512, 512, 512, 256, 128)


def best_seconds(fn, repeats: int) -> float:
  fn()  # Warm-up (and JAX's compilation).
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return best


def table(report: dict, repeats: int) -> str:
  lines = [
      f"Machine: {report['machine']}; torch {report['torch']}. Regenerate:"
      f" `python -m benchmarks.pgan_throughput`. Best of {repeats} calls after a"
      " warm-up; random weights; latent 512, widths 512-512-512-512-256-128.",
      "",
      "| batch | Flax images/s | PyTorch images/s | Flax / PyTorch |",
      "|---|---|---|---|",
  ]
  for r in report["rows"]:
    ratio = r["flax_images_per_second"] / r["torch_images_per_second"]
    lines.append(
        f"| {r['batch_size']} | {r['flax_images_per_second']:.2f} |"
        f" {r['torch_images_per_second']:.2f} | {ratio:.2f} |"
    )
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  module = pgan.Generator(latent_dim=LATENT, widths=WIDTHS)
  params = module.init(jax.random.key(0), np.zeros((1, LATENT), np.float32))
  forward = jax.jit(module.apply)
  reference = ReferenceGenerator(LATENT, WIDTHS).eval()
  rows = []
  for batch in map(int, _BATCHES.value):
    z = np.random.default_rng(0).standard_normal((batch, LATENT)).astype(np.float32)
    z_device, z_torch = jax.device_put(z), torch.from_numpy(z)

    def torch_forward():
      with torch.inference_mode():
        reference(z_torch)

    flax_s = best_seconds(lambda: forward(params, z_device).block_until_ready(), _REPEATS.value)
    torch_s = best_seconds(torch_forward, _REPEATS.value)
    rows.append(
        {
            "batch_size": batch,
            "flax_images_per_second": batch / flax_s,
            "torch_images_per_second": batch / torch_s,
        }
    )
    print(rows[-1], flush=True)
  report = {
      "machine": readme.machine(),
      "torch": f"{torch.__version__}, {torch.get_num_threads()} threads",
      "image_shape": list(module.image_shape),
      "rows": rows,
  }
  readme.publish(
      _OUT.value,
      "pgan_throughput",
      "Progressive GAN generation throughput, 128x128 (Flax port vs PyTorch reference)",
      table(report, _REPEATS.value),
      report,
      "pgan" if _README.value else None,
  )


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  app.run(main)
