r"""Colored MNIST (LfF protocol): ERM or LfF, MLP, Adam 1e-3, batch 256, 23,500 steps.

Command (the README's `make demo` runs the first):
  python -m jaxdebias.main --config=configs/colored_mnist.py:method=lff,ratio=0.01 \
      --workdir=workdirs/cmnist_lff_r0.01
  python -m jaxdebias.main --config=configs/colored_mnist.py:method=erm,ratio=0.005 \
      --workdir=workdirs/cmnist_erm_r0.005 --config.seed=1

Arguments after `:`: method (erm | lff | disent | ...), ratio (bias-conflicting fraction:
0.005, 0.01, 0.02, 0.05), severity (1-4, colour noise std 0.05 .. 0.005), quick (200 steps,
for a smoke test).

method=disent runs the DisEnt paper's own Colored MNIST schedule (methods/disent.py
`paper_schedule`: encoders 100 -> 100 -> 16, Adam 0.01 halved every 10,000 steps from the
feature swap at 10,000, 50,000 steps); the other methods the LfF protocol.

Pixels reach the model in [0, 1/255], as in the LfF reference code (`input_scaling`; `unit` for
[0, 1]).

Expected runtime on a 2-core CPU: about 15 s to build the dataset once (cached afterwards), then
2-4 min for a full LfF run end to end (23,500 steps; 129 s and 230 s on two 2-core AMD EPYC
machines, results/official_lff.md and results/speed.md), evaluating every 235 steps and
checkpointing every 2,350. Expected result (severity 4, final model, unbiased test
accuracy = mean over the 100 (digit, colour) groups, seeds 0-2, `python -m
benchmarks.colored_mnist`): LfF 62.8 / 71.8 / 79.4 / 83.5% and ERM 32.2 / 46.9 / 59.6 / 74.5% at
ratios 0.5 / 1 / 2 / 5% (README, results/colored_mnist.md).
"""

from jaxdebias.config import base_config, parse_arg
from jaxdebias.methods import disent


def get_config(arg: str | None = None):
  args = parse_arg(arg, method="lff", ratio=0.01, severity=4, quick=False)
  config = base_config()
  config.method = args["method"]
  config.data.name = "colored_mnist"
  config.data.ratio = args["ratio"]
  config.data.severity = args["severity"]
  # Pixels in [0, 1/255], as the LfF reference code feeds them (it divides by 255 twice); the
  # published numbers rest on it (README "Results"). --config.input_scaling=unit for [0, 1].
  config.input_scaling = "lff_reference"
  if config.method == "disent":
    disent.paper_schedule(config)
  if args["quick"]:
    config.num_steps = 200
    config.eval_every = 100
  return config
