"""What every config file shares: the training defaults and the `file.py:key=value` parser."""

import ast

import ml_collections

from jaxdebias import data, models, sharding
from jaxdebias.methods import amplified, disent, gan, group_dro, jtt, lff, optimizer


def parse_arg(arg: str | None, **defaults):
  """Parses 'key=value,key2=value2' (the part after `:` in --config=file.py:...) over `defaults`.

  Values are read as Python literals (numbers, True/False, tuples); anything else stays a string
  (e.g. a path); a bare key means key=True. Unknown keys raise ValueError naming the known ones;
  a value of the wrong type is refused when the config file assigns it to a typed field.
  """
  parsed = dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    if key not in defaults:
      raise ValueError(f"Unknown config argument {key!r}; known: {sorted(defaults)}.")
    if not value:
      parsed[key] = True
      continue
    try:
      parsed[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      parsed[key] = value
  return parsed


def base_config() -> ml_collections.ConfigDict:
  """Training defaults, each section from the module it configures; config files override what
  their benchmark needs."""
  config = ml_collections.ConfigDict()
  # What runs the config: "classifier" (trainers/classifier.py) or "gan" (trainers/gan.py).
  config.trainer = "classifier"
  config.method = "lff"  # The classifier trainer's method (jaxdebias/methods).
  config.seed = 0
  # Seeds seed, seed+1, ... trained side by side (vmap) in one program, each with every
  # combination of the swept hyperparameter values (see methods/lff.py).
  config.num_seeds = 1
  config.data = data.default_config()
  # Pixels -> model inputs: "unit" ([0, 1]) or "lff_reference" (the LfF code's [0, 1/255]).
  config.input_scaling = "unit"
  config.model = models.default_config()
  # What the networks compute in: "float32", or "bfloat16" with float32 parameters, optimizer
  # states and losses (models.MixedPrecision; for accelerators, whose matmuls it speeds up).
  config.compute_dtype = "float32"
  config.optimizer = optimizer.default_config()
  config.lff = lff.default_config()
  # method=amplified_*: the bias amplifier, a finished classifier run on generated images.
  config.amplifier = amplified.default_config()
  config.group_dro = group_dro.default_config()  # method=group_dro_oracle (reads bias labels).
  config.jtt = jtt.default_config()  # method=jtt: the identification run and lambda.
  config.disent = disent.default_config()  # method=disent: DisEnt's lambdas and feature swap.
  config.gan = gan.default_config()  # trainer=gan: the generator of latent de-biasing.
  config.batch_size = 256
  config.num_steps = 23_500
  config.eval_every = 235  # Steps between evaluations.
  # A checkpoint at the first evaluation at or after every multiple of this many steps, and at
  # the end; a rerun resumes from the latest one.
  config.checkpoint_every = 2350
  config.eval_batch_size = 1000
  config.keep_checkpoints = 2
  # Devices: mesh axes `data` (batch split) and `model` (parameters split); -1 = all left.
  config.mesh = sharding.default_mesh_config()
  # The training images: on the devices ("device"), streamed from the host each chunk
  # ("stream"), or streamed only when a device's share exceeds the budget ("auto"; budget in
  # GiB, None: a quarter of the device's memory). Same batches either way (trainers/streaming.py).
  config.train_images = "auto"
  config.device_images_budget_gib = ml_collections.FieldReference(None, field_type=float)
  return config
