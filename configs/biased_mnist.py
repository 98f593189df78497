r"""Biased MNIST (ReBias protocol: the bias is the background colour): ERM or LfF.

Command:
  python -m jaxdebias.main --config=configs/biased_mnist.py:method=lff,rho=0.997 \
      --workdir=workdirs/bmnist_lff_rho0.997

Arguments after `:`: method (erm | lff | jtt | group_dro_oracle | ...), rho (training
colour-label correlation: 0.999, 0.997, 0.995, 0.99), convnet (the reference protocol, below),
quick (200 steps, for a smoke test). The test split is the unbiased one (rho 0.1);
--config.data.biased_test=True evaluates on the biased one (the training rho) instead.

Protocols. Default: the LfF MLP protocol of configs/colored_mnist.py (MLP 3 x 100, Adam 1e-3,
batch 256, 23,500 steps, pixels in [0, 1/255]; DisEnt its paper's MLP schedule, as there),
which a 2-core CPU runs in minutes. `convnet`:
the ReBias protocol, SimpleConvNet (models/convnet.py: GroupNorm for BatchNorm), inputs in
[-1, 1], Adam 1e-3 with an L2 term 1e-4 (PyTorch Adam's weight_decay), batch 256, 80 epochs
of 235 batches (18,800 steps) with the rate times 0.1 every 20 (StepLR); about 1.2 GFLOP per
image forward and backward, an accelerator job. Numbers of the two protocols are not comparable.
Expected runtime on a 2-core CPU (MLP): about 20 s to build the dataset once, then 2-4 min per
LfF run (the same steps as Colored MNIST's, configs/colored_mnist.py).
"""

import ml_collections

from jaxdebias.config import base_config, parse_arg
from jaxdebias.methods import disent


def get_config(arg: str | None = None):
  args = parse_arg(arg, method="lff", rho=0.997, convnet=False, quick=False)
  config = base_config()
  config.method = args["method"]
  config.data.name = "biased_mnist"
  config.data.rho = args["rho"]
  config.input_scaling = "lff_reference"  # As configs/colored_mnist.py (the MLP protocol).
  if config.method == "disent" and not args["convnet"]:  # Its paper's MLP schedule.
    disent.paper_schedule(config)
  if args["convnet"]:
    epoch = 60_000 // 256 + 1  # Batches per epoch, the last one partial (PyTorch's loader).
    config.model = ml_collections.ConfigDict({"name": "simple_convnet"})
    config.input_scaling = "signed"
    config.optimizer.update(l2=1e-4, decay_every=20 * epoch, decay_factor=0.1)
    config.update(num_steps=80 * epoch, eval_every=epoch, checkpoint_every=10 * epoch)
  if args["quick"]:
    config.num_steps = 200
    config.eval_every = 100
  return config
