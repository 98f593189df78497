r"""Biased MNIST (ReBias protocol: the bias is the background colour): ERM or LfF.

Command:
  python -m jaxdebias.main --config=configs/biased_mnist.py:method=lff,rho=0.997 \
      --workdir=workdirs/bmnist_lff_rho0.997

Arguments after `:`: method (erm | lff), rho (training colour-label correlation: 0.999, 0.997,
0.995, 0.99), quick (200 steps, for a smoke test). The test split is the unbiased one (rho 0.1);
--config.data.biased_test=True evaluates on the biased one (the training rho) instead.

Protocol: the LfF MLP protocol of configs/colored_mnist.py (MLP 3 x 100, Adam 1e-3, batch 256,
23,500 steps, pixels in [0, 1/255]), which a 2-core CPU runs in minutes; the reference
SimpleConvNet schedule (80 epochs of a 4-layer 7x7 ConvNet) is an accelerator job, and numbers of
the two protocols are not comparable. Expected runtime on a 2-core CPU: about 20 s to build the
dataset once, then about 90 s per LfF run.
"""

from jaxdebias.config import base_config, parse_arg


def get_config(arg: str | None = None):
  args = parse_arg(arg, method="lff", rho=0.997, quick=False)
  config = base_config()
  config.method = args["method"]
  config.data.name = "biased_mnist"
  config.data.rho = args["rho"]
  config.input_scaling = "lff_reference"  # As configs/colored_mnist.py (the MLP protocol).
  if args["quick"]:
    config.num_steps = 200
    config.eval_every = 100
  return config
