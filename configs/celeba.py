r"""CelebA classifiers and the latent de-biasing pipeline of Ramaswamy et al. (CVPR 2021).

A classifier (ERM or LfF) for one attribute, the protected one another:
  python -m jaxdebias.main --config=configs/celeba.py:method=erm,target=Smiling,protected=Male \
      --workdir=workdirs/celeba_smiling

The whole latent de-biasing recipe with a Progressive GAN ported from the PyTorch model zoo
(`python -m jaxdebias.tools.port_pgan CHECKPOINT.pth workdirs/pgan_celeba`):
  python -m jaxdebias.main --config=configs/latent_debiasing.py:data=celeb_a,target=Smiling,\
protected=Male,generator=workdirs/pgan_celeba,bias_labels --workdir=workdirs/celeba_latent_smiling

Arguments after `:`: method (erm | lff), target and protected (CelebA attribute names), size
(image side after the central 178x178 crop; 128 as in the paper, matching the zoo's 128x128
PGAN), resnet (18 | 50). Needs CelebA prepared by TFDS in array_record format (see
jaxdebias/data/celeba.py); nothing is downloaded at run time. Default model: ResNet-18 with
GroupNorm trained from scratch (documented smaller default: the paper fine-tunes an ImageNet
ResNet-50, which cannot be fetched here; resnet=50 gives the same architecture untrained).
Adam 1e-4, batch 64, 25,000 steps (about 10 epochs of the 162,770 training images). Runtime:
an accelerator job (hours on a CPU); not measured here, where CelebA is not available.
"""

import ml_collections

from jaxdebias.config import base_config, parse_arg

RESNETS = {18: ((2, 2, 2, 2), False), 50: ((3, 4, 6, 3), True)}


def get_config(arg: str | None = None):
  args = parse_arg(arg, method="erm", target="Smiling", protected="Male", size=128, resnet=18)
  if args["resnet"] not in RESNETS:
    raise ValueError(f"resnet={args['resnet']} is not offered; use one of {sorted(RESNETS)}.")
  config = base_config()
  config.method = args["method"]
  config.data.name = "celeb_a"
  config.data.update(
      target_attribute=args["target"],
      protected_attribute=args["protected"],
      image_size=args["size"],
  )
  stage_sizes, bottleneck = RESNETS[args["resnet"]]
  config.model = ml_collections.ConfigDict(
      {"name": "resnet", "stage_sizes": stage_sizes, "bottleneck": bottleneck, "width": 64}
  )
  config.optimizer.learning_rate = 1e-4
  config.batch_size = 64
  config.num_steps = 25_000
  config.eval_every = 1000
  config.checkpoint_every = 5000
  config.eval_batch_size = 256
  return config
