"""The bias amplification recipe on Colored MNIST (severity 4) at the four conflicting ratios,
5 seeds side by side in every classifier stage: 4 recipe runs.

python -m launch.run launch/sweeps/bias_amplification.py       # hours on 2 CPU cores
python -m launch.collect launch/sweeps/bias_amplification.py   # the final classifiers' table
"""

from launch.sweep import values

CONFIG = "configs/bias_amplification.py:data=colored_mnist,seeds=5"


def runs():
  return values("data.ratio", [0.005, 0.01, 0.02, 0.05])
