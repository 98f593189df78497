r"""Your own biased dataset (an .npz of arrays, see jaxdebias/data/npz.py) with ERM or LfF.

Command:
  python -m jaxdebias.main --config=configs/npz.py:method=lff,path=/data/mine.npz \
      --workdir=workdirs/mine_lff

Arguments after `:`: method (erm | lff), path (the .npz; required). Model, optimizer and
schedule default to the Colored MNIST ones (MLP on flattened pixels, Adam 1e-3, batch 256,
23,500 steps); override them with --config.num_steps=..., --config.model.hidden=..., etc.
Expected runtime and result depend on the data: about 5 ms per LfF step for 28x28x3 images on
a 2-core CPU.
"""

from jaxdebias.config import base_config, parse_arg


def get_config(arg: str | None = None):
  args = parse_arg(arg, method="lff", path="")
  config = base_config()
  config.method = args["method"]
  config.data.name = "npz"
  config.data.path = args["path"] or None
  return config
