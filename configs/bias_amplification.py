r"""Synthetic bias amplification as one recipe (jaxdebias/recipes/bias_amplification.py): a
class-conditional GAN, the bias amplifier trained on its images only, amplified_groups
candidates (one with latent de-biasing's pairs) and the ERM / LfF fallbacks chosen between on a
held-out part of the training split without bias labels, and the chosen one retrained.

Commands:
  python -m jaxdebias.main --config=configs/bias_amplification.py:data=colored_mnist,ratio=0.01 \
      --workdir=workdirs/ba_r0.01
  python -m jaxdebias.main --config=configs/bias_amplification.py:data=npz,path=/data/mine.npz \
      --workdir=workdirs/ba_mine
  python -m jaxdebias.main --config=configs/bias_amplification.py:data=celeb_a,target=Smiling \
      --workdir=workdirs/ba_celeba     # an accelerator job

Arguments after `:`: data (colored_mnist | biased_mnist | npz | celeb_a); ratio, severity
(colored_mnist); rho (biased_mnist); path (npz); target, protected, size, resnet (celeb_a: as
in configs/celeba.py); seeds (seeds trained side by side in every classifier stage, default
1); tinted (the opt-in colour prior of the pairs' generator, gan.tinted; off by default: the
recipe assumes nothing about the bias); quick (a smoke test: 200 GAN steps, 200 classifier
steps). Recipe knobs: --config.recipe.* (the held-out fraction, the GAN's schedule, the
candidate grid). Classifier stages use the LfF protocol (MLP, Adam 1e-3, batch 256, 23,500
steps, inputs in [0, 1/255]) except on CelebA.

Expected runtime on a 2-core CPU (Colored MNIST 1%, one seed): about 70 min (the two GANs 15-30
min each, then 2-5 min per classifier run: the amplifier, 3 candidate runs (ERM, LfF,
amplified_groups with the weight decays side by side), the chosen one again with pairs, the
refit). Expected result there with seeds=5 (98 min): 84.23 ± 0.88% unbiased accuracy over
seeds 0-4, amplified_groups with pairs, weight decay 0.3, chosen (LfF 72.56 ± 1.37% over the same
seeds); at ratio=0.02, 87.52 ± 0.54%; at ratio=0.05, 89.24 ± 0.53%; at ratio=0.005, 74.89 ±
0.60% (LfF 62.88 ± 1.79%; README "Synthetic bias amplification"). A seed alone differs from
the same seed side by side by float rounding grown over the steps (a point or so).
"""

from configs import celeba
from jaxdebias.config import parse_arg
from jaxdebias.recipes import bias_amplification


# The arguments every recipe config takes (after `:`), with their defaults.
RECIPE_ARGS = dict(
    data="colored_mnist",
    ratio=0.01,
    severity=4,
    rho=0.997,
    path="",
    target="Smiling",
    protected="Male",
    size=128,
    resnet=18,
    seeds=1,
    tinted=False,
    quick=False,
)


def get_config(arg: str | None = None):
  args = parse_arg(arg, **RECIPE_ARGS)
  return apply_recipe_args(bias_amplification.default_config(), args)


def apply_recipe_args(config, args: dict):
  """A recipe config (its default_config) with RECIPE_ARGS applied: the dataset and its
  classifier protocol, the seeds, the tint prior, the quick schedule."""
  config.data.name = args["data"]
  if args["data"] == "colored_mnist":
    config.data.update(ratio=args["ratio"], severity=args["severity"])
  elif args["data"] == "biased_mnist":
    config.data.rho = args["rho"]
  elif args["data"] == "npz":
    config.data.path = args["path"] or None
  elif args["data"] == "celeb_a":
    celeba_config = celeba.get_config(
        f"target={args['target']},protected={args['protected']},size={args['size']},"
        f"resnet={args['resnet']}"
    )
    config.data = celeba_config.data
    for key in ("model", "optimizer", "batch_size", "num_steps", "eval_every"):
      config[key] = celeba_config[key]
    config.update(
        checkpoint_every=celeba_config.checkpoint_every,
        eval_batch_size=celeba_config.eval_batch_size,
        input_scaling="unit",
    )
  else:
    raise ValueError(
        f"data={args['data']} is not offered; use colored_mnist, biased_mnist, npz or celeb_a."
    )
  config.num_seeds = args["seeds"]
  config.gan.tinted = args["tinted"]
  if args["quick"]:
    config.num_steps = 200
    config.eval_every = config.checkpoint_every = 100
    config.recipe.update(gan_steps=200, gan_eval_every=100)
  return config
