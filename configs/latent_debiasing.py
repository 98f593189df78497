r"""Latent de-biasing as one recipe (jaxdebias/recipes/latent_debiasing.py): a generator, a
protected labeller (the bias amplifier by default: no bias label), the baseline classifier
(also the target labeller), complementary pairs from the generator, and the classifier trained
again with them; the fairness metrics where the target and the protected attribute are binary.

Commands:
  python -m jaxdebias.main --config=configs/latent_debiasing.py:data=colored_mnist,ratio=0.01 \
      --workdir=workdirs/ld_r0.01
  python -m jaxdebias.main --config=configs/latent_debiasing.py:data=npz,path=/data/mine.npz \
      --workdir=workdirs/ld_mine
  python -m jaxdebias.main --config=configs/latent_debiasing.py:data=celeb_a,target=Smiling,\
protected=Male,generator=workdirs/pgan_celeba,bias_labels --workdir=workdirs/ld_celeba
      # the paper's protocol (an accelerator job): a Progressive GAN ported from the PyTorch
      # model zoo (python -m jaxdebias.tools.port_pgan CHECKPOINT.pth workdirs/pgan_celeba),
      # edits in z, the protected attribute's labels read by its labeller (bias_labels).

Arguments after `:`: those of configs/bias_amplification.py (data, ratio, severity, rho, path,
target, protected, size, resnet, seeds, tinted, quick), and generator (a finished generator's
workdir; default: an unconditional GAN trained as a stage; a given one's edits are in z, as the
paper's), bias_labels (the protected labeller trained on the bias labels, the paper's
protocol: an opt-in that results.json records; default: the amplifier, no bias label). Classifier
stages: ERM with the data's protocol (Colored MNIST and .npz: the LfF MLP protocol; CelebA:
configs/celeba.py's ResNet).

Expected runtime on a 2-core CPU (Colored MNIST): the two GANs 15-40 min each, then about
1.5-4 min per classifier run (amplifier, baseline, augmented). Expected result: not measured yet.
"""

from configs import bias_amplification
from jaxdebias.config import parse_arg
from jaxdebias.recipes import latent_debiasing


def get_config(arg: str | None = None):
  args = parse_arg(arg, **bias_amplification.RECIPE_ARGS, generator="", bias_labels=False)
  config = bias_amplification.apply_recipe_args(latent_debiasing.default_config(), args)
  config.recipe.generator = args["generator"]
  if args["generator"]:
    config.recipe.pairs.latent_space = "z"
  config.recipe.protected = "bias_labels" if args["bias_labels"] else "amplifier"
  return config
