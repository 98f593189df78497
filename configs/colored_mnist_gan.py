r"""Colored MNIST generator for latent de-biasing: a DCGAN on the biased training images.

Command:
  python -m jaxdebias.main --config=configs/colored_mnist_gan.py:ratio=0.01 \
      --workdir=workdirs/gan_r0.01

Arguments after `:`: ratio (bias-conflicting fraction: 0.005, 0.01, 0.02, 0.05), severity
(1-4), conditional (a class-conditional GAN: each row of the sample grid is one digit class;
synthetic bias amplification's generator), tinted (`gan.tinted`: a grey mask times a colour
set by a part of the style alone, so that latent edits can change the colour and keep the digit;
an opt-in prior that knows the bias is the colour of the strokes: off by default), quick (40
steps, for a smoke test). The network sizes and optimizer are in `config.gan`
(jaxdebias/methods/gan.py). Writes samples/step_N.png (a 10x10 grid from fixed latents) at every
evaluation; `jaxdebias.runs.load_generator(WORKDIR)` reads the trained generator.
"""

from jaxdebias.config import base_config, parse_arg


def get_config(arg: str | None = None):
  args = parse_arg(arg, ratio=0.01, severity=4, conditional=False, tinted=False, quick=False)
  config = base_config()
  config.trainer = "gan"
  config.data.name = "colored_mnist"
  config.data.ratio = args["ratio"]
  config.data.severity = args["severity"]
  config.gan.conditional = args["conditional"]
  config.gan.tinted = args["tinted"]
  config.batch_size = 64
  config.num_steps = 6000
  config.eval_every = 500  # Steps between sample grids and metric lines.
  config.checkpoint_every = 500
  if args["quick"]:
    config.num_steps = 40
    config.eval_every = config.checkpoint_every = 20
  return config
