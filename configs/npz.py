r"""Your own biased dataset (an .npz of arrays, see jaxdebias/data/npz.py) with ERM or LfF.

Command:
  python -m jaxdebias.main --config=configs/npz.py:method=lff,path=/data/mine.npz \
      --workdir=workdirs/mine_lff

Arguments after `:`: method (erm | lff), path (the .npz; required; its bias labels are
optional: without them the test metrics are accuracy alone). Model, optimizer and
schedule default to the Colored MNIST ones (MLP on flattened pixels, Adam 1e-3, batch 256,
23,500 steps); override them with --config.num_steps=..., --config.model.hidden=..., etc.
Pixels reach the model in [0, 1] (`input_scaling=unit`, the library's default); the README's
Colored and Biased MNIST numbers use the LfF code's [0, 1/255]
(`--config.input_scaling=lff_reference`), as the recipe configs do.
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
