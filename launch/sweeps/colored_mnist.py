"""Colored MNIST (severity 4): ERM and LfF at the four conflicting ratios, seeds 0 and 1; 16 runs.

python -m launch.run launch/sweeps/colored_mnist.py       # about 25 min on 2 CPU cores (estimated)
python -m launch.collect launch/sweeps/colored_mnist.py   # the table
"""

from launch.sweep import product, values

CONFIG = "configs/colored_mnist.py"


def runs():
  return product(
      values("method", ["erm", "lff"]),
      values("data.ratio", [0.005, 0.01, 0.02, 0.05]),
      values("seed", [0, 1]),
  )
