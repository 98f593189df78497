"""What every config file shares: the training defaults and the `file.py:key=value` parser."""

import ast

import ml_collections

from jaxdebias import data, sharding


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
  """Training defaults; config files override what their benchmark needs."""
  config = ml_collections.ConfigDict()
  config.method = "lff"
  config.seed = 0
  # Seeds seed, seed+1, ... trained side by side (vmap) in one program, each with every
  # combination of the swept hyperparameter values (see `lff`).
  config.num_seeds = 1
  config.data = data.default_data_config()
  # Pixels -> model inputs: "unit" ([0, 1]) or "lff_reference" (the LfF code's [0, 1/255]).
  config.input_scaling = "unit"
  config.model = ml_collections.ConfigDict({"name": "mlp", "hidden": (100, 100, 100)})
  config.optimizer = ml_collections.ConfigDict({"learning_rate": 1e-3, "weight_decay": 0.0})
  # A number, or a tuple of numbers: every combination trains side by side (vmap), e.g.
  # --config.lff.q="(0.5,0.7,0.9)".
  sweepable = lambda value: ml_collections.FieldReference(value, field_type=object)
  config.lff = ml_collections.ConfigDict(
      {
          "q": sweepable(0.7),
          "ema_alpha": sweepable(0.7),
          # With data.synthetic: does f_B train on the generated examples too (False: real only).
          "synthetic_in_biased": True,
          # With data.synthetic: f_D's weight of the generated examples; None: relative
          # difficulty like the real ones, a number: that fixed weight (1: plain cross-entropy).
          "synthetic_weight": ml_collections.FieldReference(None, field_type=float),
      }
  )
  # method=amplified_*: the bias amplifier, a finished classifier run on generated images.
  config.amplifier = ml_collections.ConfigDict(
      {
          "workdir": ml_collections.config_dict.placeholder(str),
          # amplified_groups (methods/amplified.py): pseudo-group = (class, "prediction": the
          # amplifier's predicted class | "correctness": whether it is wrong); a mistake counts
          # only where its cross-entropy on the class exceeds min_loss (nats).
          "groups": "prediction",
          "min_loss": 0.0,
          # Example weight |pseudo-group|^-power (normalised): 1 balances the groups, 0 is ERM.
          "power": 1.0,
          # amplified_dro: GroupDRO's step size eta of the group weights (Sagawa et al.: 0.01).
          "dro_step_size": 0.01,
          # amplified_lff: the amplifier's logits are divided by this before its cross-entropy
          # enters W; > 1 softens a confident amplifier, whose near-zero loss on the aligned
          # examples would leave them no weight.
          "temperature": 1.0,
      }
  )
  # method=gan (latent de-biasing's generator, jaxdebias/latent/gan.py).
  config.gan = ml_collections.ConfigDict(
      {
          "latent_dim": 64,
          "generator_widths": (96, 48, 24),  # Seed channels, then one per doubling of the side.
          "discriminator_widths": (64, 128),
          "learning_rate": 2e-4,
          "beta1": 0.5,
          # Class-conditional (the class as a one-hot after z; projection discriminator).
          "conditional": False,
          # A tinted generator: a grey mask times a colour set by its own style part, the tint
          # (models/dcgan.py), so that an edit of the tint changes the colour and not the shape.
          "tinted": False,
      }
  )
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
  return config
