"""Loading what a config names and what a finished run made: its dataset (with the generator it
trains on), its method (with the bias amplifier it reads), and a finished run's classifier,
generator or labeller as a function."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdebias import data, methods, metrics, models
from jaxdebias.errors import InputError
from jaxdebias.latent import generator as generator_lib
from jaxdebias.latent import pairs
from jaxdebias.methods import gan
from jaxdebias.models import pgan
from jaxdebias.runs import checkpoint
from jaxdebias.runs.files import read_json
from jaxdebias.runs.workdir import absolute, read_config

GENERATOR_JSON = "generator.json"  # What builds the module: kind, latent_dim, image_shape, ...


def load_dataset(data_config: ml_collections.ConfigDict) -> data.BiasedDataset:
  """`data.load_dataset`, with the generator run that data.generated_train names loaded."""
  path = data_config.generated_train.generator
  return data.load_dataset(data_config, load_generator(path) if path else None)


def method_for(config: ml_collections.ConfigDict, dataset: data.BiasedDataset) -> methods.Method:
  """The configured method with its classifier network, sized for `dataset`, and the frozen
  classifier it reads (methods.FROZEN_RUNS: the bias amplifier, JTT's identification model)."""
  train = methods.TrainSet(
      labels=dataset.train.label,
      num_classes=dataset.num_classes,
      image_shape=dataset.train.images.shape[1:],
      num_synthetic=dataset.num_synthetic,
      images=dataset.train.images,
      bias_labels=dataset.train.bias_label if config.method in methods.USES_BIAS_LABELS else None,
  )
  return _build(config, train)


def _build(config: ml_collections.ConfigDict, train: methods.TrainSet) -> methods.Method:
  """The method of `config` for `train`, with the frozen classifier it reads (if any)."""
  methods.get(config.method)
  frozen = methods.frozen_run(config)
  frozen_fn = classifier_fn(frozen) if frozen else None
  model = models.create(config.model, train.num_classes, config.compute_dtype)
  return methods.build(config, model, train, frozen_fn)


def classifier_fn(
    workdir: str, step: int | None = None, model: str = "classifier", member: int | None = None
):
  """The classifier of the finished run in `workdir` as a pure JAX function: uint8 images
  (B, H, W, C) -> logits (B, num_classes), its parameters closed over (jit-able; a frozen model
  inside another method's step, e.g. the bias amplifier).

  step: a kept checkpoint (default: the last); model: which of the method's models (`predict`
  keys, e.g. "biased" for LfF's f_B); member: which member of a run that trained several
  (its position in results.json's `members`); a one-member run needs none.
  """
  workdir = absolute(workdir)
  if not (workdir / "results.json").exists():
    raise InputError(
        f"{workdir} holds no finished classifier run (no results.json); run its training first."
    )
  config = read_config(workdir)
  if config.trainer != "classifier":
    raise InputError(f"{workdir} holds a {config.trainer} run, not a classifier run.")
  sizes = read_json(workdir / "results.json").get("train_set")
  if sizes and not methods.get(config.method).sized_by_images:  # No data to load.
    train = methods.TrainSet(
        labels=np.zeros(sizes["num_examples"], np.int32),
        num_classes=sizes["num_classes"],
        image_shape=tuple(sizes["image_shape"]),
        num_synthetic=sizes["num_synthetic"],
    )
    method = _build(config, train)
  else:  # The state needs the data, or a run written before results.json recorded its sizes.
    method = method_for(config, load_dataset(config.data))
  members = methods.members_of(method, config.seed, config.num_seeds)
  if member is None and len(members) > 1:
    raise InputError(f"{workdir} trained {len(members)} members; name one (member=...).")
  if member is not None and not 0 <= member < len(members):
    raise InputError(f"{workdir} trained {len(members)} members; member {member} is not one.")
  rngs = methods.stack([jax.random.key(m["seed"]) for m in members])
  hparams = methods.stack([{k: np.float32(v) for k, v in m["hparams"].items()} for m in members])
  init = method.init if len(members) == 1 else jax.vmap(method.init)
  like = jax.eval_shape(init, rngs, hparams)
  state = _restore(workdir, like, step or config.num_steps, config.keep_checkpoints)
  if len(members) > 1:
    state = jax.tree.map(lambda x: x[member], state)
  return lambda images: method.predict(state, images)[model]


def load_classifier(workdir: str, batch_size: int = 1000, **kwargs):
  """`classifier_fn` (kwargs: step, model, member) on the host (`models.on_host`)."""
  return models.on_host(classifier_fn(workdir, **kwargs), batch_size)


def load_labeller(workdir: str, member: int | None = None) -> pairs.Labeller:
  """The classifier of a finished run (`member` of a run of several) as a labeller of
  generated images; binary ones get the F1-optimal threshold on their dataset's validation
  split (`data.valid_fraction`), or 0.5 without one."""
  logits = load_classifier(workdir, member=member)
  workdir = absolute(workdir)
  sizes = read_json(workdir / "results.json").get("train_set")
  if sizes and sizes["num_classes"] != 2:  # No data to load (a bias amplifier's is generated).
    return pairs.Labeller(logits, sizes["num_classes"])
  dataset = load_dataset(read_config(workdir).data)
  if dataset.num_classes != 2:
    return pairs.Labeller(logits, dataset.num_classes)
  if dataset.valid is None:
    return pairs.Labeller(logits, 2, 0.5)
  scores = np.asarray(jax.nn.softmax(logits(dataset.valid.images))[:, 1])
  return pairs.Labeller(logits, 2, metrics.f1_optimal_threshold(scores, dataset.valid.label))


def load_generator(workdir: str, latent_space: str = "z") -> generator_lib.ImageGenerator:
  """The generator in `workdir`: a finished GAN run, or a ported one (tools/port_pgan.py).

  Its generator.json says which kind; the params are the last checkpoint.
  """
  workdir = absolute(workdir)
  if not (workdir / GENERATOR_JSON).exists():
    raise InputError(f"{workdir} holds no trained generator ({GENERATOR_JSON}); train one first.")
  record = json.loads((workdir / GENERATOR_JSON).read_text())
  image_shape = tuple(record["image_shape"])
  if record["kind"] == "pgan":
    module = pgan.Generator(
        latent_dim=record["latent_dim"],
        widths=tuple(record["widths"]),
        channels=record["channels"],
        alpha=record["alpha"],
    )
    like = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, record["latent_dim"])))
    params = _restore(workdir, like, 0, keep=1, finished=True)
    return generator_lib.ImageGenerator(
        module, params, record["latent_dim"], image_shape, latent_space
    )
  config = read_config(workdir)
  model = gan.GAN(config, image_shape, record.get("num_classes", 0))
  like = jax.eval_shape(model.init, jax.random.key(0))
  state = _restore(workdir, like, config.num_steps, config.keep_checkpoints, finished=True)
  factors = record.get("factors", [model.num_classes] if model.num_classes else [])
  return generator_lib.ImageGenerator(
      model.generator,
      state.generator,
      model.latent_dim,
      image_shape,
      latent_space,
      model.num_classes,
      tuple(factors),
  )


def _restore(workdir, like, step: int, keep: int, finished: bool = False):
  """The checkpoint at `step` (of a run keeping `keep`); finished: it must be the last one (the
  end of training)."""
  ckpt = checkpoint.Checkpointer(workdir / "checkpoints", keep=keep)
  try:
    latest = ckpt.latest_step()
    if latest is None:
      raise InputError(f"{workdir} holds no checkpoint; train or convert its model first.")
    if finished and latest != step:
      raise InputError(
          f"the generator in {workdir} is at step {latest} of {step}; "
          "rerun its training command to finish it."
      )
    return ckpt.restore(step, like)
  finally:
    ckpt.close()
