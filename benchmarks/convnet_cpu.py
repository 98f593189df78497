r"""SimpleConvNet's training step on XLA's CPU backend: convolutions as XLA runs them against
convolutions as matmuls over patches (layers.Conv), inside the trainer's scan and outside.

  python -m benchmarks.convnet_cpu      # writes results/convnet_cpu.md and .json

Each row times the trainer's own program (members.chunk_runner: a jitted scan over the steps of
a chunk, batches gathered on device) for ERM on Biased-MNIST-shaped data, after a warm-up: a
chunk of `--steps` steps (the scan), or chunks of one step called `--steps` times (no loop in
the program). FLOPs per step from XLA's cost analysis of one step; the matmul roofline is a
large f32 matmul in the same process. Every mode ends at the same parameters up to float
rounding (checked, the largest difference printed).
"""

import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import readme
from benchmarks.readme import machine, matmul_flops_per_second, random_training_data
from configs import biased_mnist
from jaxdebias import methods, models, sharding
from jaxdebias.trainers import members

_STEPS = flags.DEFINE_integer("steps", 2, "Timed steps per mode.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Batch size (the ReBias protocol's: 256).")
_OUT = flags.DEFINE_string("out", "results", "Where convnet_cpu.md and .json go.")

NUM_EXAMPLES, SHAPE, NUM_CLASSES = 1024, (28, 28, 3), 10


def measure(patch_conv: bool, in_scan: bool, data: dict, steps: int, batch_size: int):
  """(seconds per step, XLA's FLOPs per step, the final parameters) of one mode."""
  config = biased_mnist.get_config("method=erm,convnet=True")
  config.update(batch_size=batch_size, num_steps=steps)
  config.model.patch_conv = patch_conv
  config.mesh.data = 1
  model = models.create(config.model, NUM_CLASSES)
  labels = np.asarray(data["label"])
  method = methods.build(config, model, methods.TrainSet(labels, NUM_CLASSES, SHAPE))
  mesh = sharding.make_mesh(config.mesh)
  seeds, state = members.init_members(config, method, mesh)
  rows = members.chunk_indices(seeds, 0, steps, batch_size, NUM_EXAMPLES)
  if in_scan:
    run_chunk = members.chunk_runner(method, 1, mesh, state, steps)
    compiled = run_chunk.lower(state, data, members.place_indices(rows, mesh)).compile()
    start = time.perf_counter()
    state, metrics = compiled(state, data, members.place_indices(rows, mesh))
  else:
    batches = [
        {"image": data["image"][i], "label": data["label"][i], "index": jnp.asarray(i)}
        for i in rows
    ]
    compiled = jax.jit(method.train_step, donate_argnums=0).lower(state, batches[0]).compile()
    start = time.perf_counter()
    for batch in batches:
      state, metrics = compiled(state, batch)
  jax.block_until_ready((state, metrics))
  seconds = (time.perf_counter() - start) / steps
  index = np.arange(batch_size, dtype=np.int32)
  batch = {"image": data["image"][index], "label": data["label"][index], "index": index}
  cost = jax.jit(method.train_step).lower(state, batch).compile().cost_analysis()
  return seconds, float(cost["flops"]), state.params


def main(argv):
  del argv
  data = random_training_data(NUM_EXAMPLES, SHAPE, NUM_CLASSES)
  roofline = matmul_flops_per_second(2048)
  rows, params = [], {}
  for patch_conv in (False, True):
    for in_scan in (True, False):
      seconds, flops, params[patch_conv, in_scan] = measure(
          patch_conv, in_scan, data, _STEPS.value, _BATCH.value
      )
      rows.append(
          {
              "convolution": "matmul over patches" if patch_conv else "XLA's (lax.conv)",
              "loop": "the trainer's scan" if in_scan else "one jitted call per step",
              "seconds_per_step": seconds,
              "xla_flops_per_step": flops,
          }
      )
      print(rows[-1], flush=True)
  # The useful work of a step: lax.conv's FLOPs (the patches' gathering adds bookkeeping).
  work = rows[0]["xla_flops_per_step"]
  for row in rows:
    row["fraction_of_matmul_rate"] = work / row["seconds_per_step"] / roofline
  reference = jax.tree.leaves(params[False, False])
  difference = max(
      float(np.abs(np.asarray(a) - np.asarray(b)).max())
      for p in params.values()
      for a, b in zip(jax.tree.leaves(p), reference)
  )
  lines = [
      f"SimpleConvNet (ReBias), ERM, batch {_BATCH.value}, {_STEPS.value} timed steps per mode"
      " after compiling. Machine: {machine()}; f32 matmul rate {roofline / 1e9:.0f} GFLOP/s."
      f" Largest parameter difference between the modes after the steps: {difference:.1e}"
      " (float rounding, which Adam's normalised first steps carry up to the size of the"
      " learning rate, 1e-3)."
      " Regenerate with `python -m benchmarks.convnet_cpu`.",
      "",
      "| convolution | loop | s / step | GFLOP / step | fraction of the matmul rate |",
      "|---|---|---|---|---|",
  ]
  for row in rows:
    lines.append(
        f"| {row['convolution']} | {row['loop']} | {row['seconds_per_step']:.2f} |"
        f" {work / 1e9:.1f} | {row['fraction_of_matmul_rate']:.3f} |"
    )
  readme.publish(
      _OUT.value,
      "convnet_cpu",
      "SimpleConvNet on XLA's CPU backend",
      "\n".join(lines) + "\n",
      {
          "rows": rows,
          "matmul_flops_per_second": roofline,
          "max_difference": difference,
          "machine": machine(),
      },
  )


if __name__ == "__main__":
  app.run(main)
