"""A catalogue of bad inputs to the command, as a hostile or careless user gives them: flags,
config values, data files, workdirs in every state. Each must end with exit status 2, nothing on
stdout, one line on stderr (`error: ...`, saying what to do) and the workdir byte-identical (or
still absent). The commands run through `tests/cli.py` (a real `python -m jaxdebias.main` each,
forked from one warm process), about 0.2 s apiece."""

import io
import json
import pathlib
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from jaxdebias.runs import lock
from tests import synthetic

# The tiny run every case starts from (a finished one in `finished_run`).
TINY = (
    "--config.model.hidden=(16,)",
    "--config.num_steps=20",
    "--config.eval_every=10",
    "--config.checkpoint_every=10",
    "--config.batch_size=32",
    "--config.eval_batch_size=64",
    "--config.mesh.data=1",
)


@pytest.fixture(scope="module")
def ground(tmp_path_factory, commands):
  """Read-only material the cases copy: a good .npz and a finished run on it."""
  root = tmp_path_factory.mktemp("ground")
  commands.run_to_the_end(_args(synthetic.write_npz(root / "tiny.npz"), root / "finished"))
  return root


def _args(npz, workdir, *extra, config="configs/npz.py:method=lff,path={npz}") -> list[str]:
  return [f"--config={config.format(npz=npz)}", f"--workdir={workdir}", *TINY, *extra]


# Each case: (name, make) with make(case) -> the command's arguments; `case` offers the tiny
# .npz, a scratch directory and copies of the finished run (see `Case`).


class Case:
  """What a case may build on: `npz` (a good tiny .npz), `tmp` (its own directory), `run`
  (a fresh workdir path), `finished()` / `unfinished()` (copies of a finished run, the second
  without its results.json, as if killed), `npz_with(**changes)` (a bad .npz)."""

  def __init__(self, ground: pathlib.Path, tmp: pathlib.Path):
    self.ground, self.tmp = ground, tmp
    self.npz = str(ground / "tiny.npz")
    self.run = tmp / "run"

  def args(self, *extra, config="configs/npz.py:method=lff,path={npz}") -> list[str]:
    return _args(self.npz, self.run, *extra, config=config)

  def finished(self) -> pathlib.Path:
    shutil.copytree(self.ground / "finished", self.run)
    return self.run

  def unfinished(self) -> pathlib.Path:
    (self.finished() / "results.json").unlink()
    return self.run

  def npz_with(self, **changes) -> str:
    arrays = dict(np.load(self.npz, allow_pickle=False))
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
      del arrays[key]
    np.savez(self.tmp / "bad.npz", **arrays)
    return str(self.tmp / "bad.npz")

  def file(self, name: str, content: str | bytes) -> str:
    path = self.tmp / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def _bad_npz(*extra, **changes):
  def make(case):
    case.npz = case.npz_with(**changes)
    return case.args(*extra)

  return make


def _zip_with_member(member: str, content: bytes):
  """The good .npz with one member's bytes replaced."""

  def make(case):
    with zipfile.ZipFile(case.npz) as good:
      members = {name: good.read(name) for name in good.namelist()}
    members[member] = content(members[member])
    with zipfile.ZipFile(case.tmp / "bad.npz", "w") as bad:
      for name, data in members.items():
        bad.writestr(name, data)
    case.npz = str(case.tmp / "bad.npz")
    return case.args()

  return make


def _npy(case) -> str:
  """One array saved with np.save under an .npz name."""
  with open(case.tmp / "one.npz", "wb") as f:
    np.save(f, np.zeros(3))
  return str(case.tmp / "one.npz")


def _huge_header(_) -> bytes:
  header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.int64))
  header["shape"] = (10**12,)
  out = io.BytesIO()
  np.lib.format.write_array_header_1_0(out, header)
  return out.getvalue()


def _in_workdir(damage, state="unfinished"):
  """A copy of the finished run (without results.json unless state="finished"), damaged."""

  def make(case):
    workdir = case.finished() if state == "finished" else case.unfinished()
    damage(workdir)
    return case.args()

  return make


def _edit_config_json(edit):
  def damage(workdir):
    path = workdir / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))

  return damage


def _directory_for(name: str):
  def damage(workdir):
    (workdir / name).unlink()
    (workdir / name).mkdir()

  return damage


def _file_for(name: str):
  def damage(workdir):
    shutil.rmtree(workdir / name)
    (workdir / name).write_text("x")

  return damage


def _overwrite_checkpoint_files(workdir):
  for path in (workdir / "checkpoints" / "20").rglob("*"):
    if path.is_file():
      path.write_bytes(b"\0garbage" * 8)


def _recipe(args: str, *extra):
  """The bias amplification recipe; `args` after the config's `:` ({npz}: the tiny .npz)."""

  def make(case):
    config = f"configs/bias_amplification.py:{args.format(npz=case.npz)}"
    return [f"--config={config}", f"--workdir={case.run}", *extra]

  return make


RECIPE = "data=npz,path={npz},quick"


CASES = [
    # Flags.
    ("no --config", lambda c: [f"--workdir={c.run}"]),
    ("no --workdir", lambda c: c.args()[:1]),
    ("empty --workdir", lambda c: [c.args()[0], "--workdir="]),
    ("blank --workdir", lambda c: [c.args()[0], "--workdir=  "]),
    ("config file missing", lambda c: c.args(config="configs/nope.py")),
    ("config file not Python", lambda c: c.args(config=c.file("bad.py", "def get_config(:\n"))),
    ("config file raises", lambda c: c.args(config=c.file("raises.py", "import nope\n"))),
    ("config file without get_config", lambda c: c.args(config=c.file("empty.py", "x = 1\n"))),
    ("unknown config argument", lambda c: c.args(config="configs/npz.py:methd=lff")),
    ("unknown config field", lambda c: c.args("--config.num_stepz=5")),
    ("config value of the wrong type", lambda c: c.args("--config.num_steps=many")),
    ("unknown flag", lambda c: c.args("--num_steps=5")),
    ("positional argument", lambda c: c.args("extra")),
    ("bad --distributed", lambda c: c.args("--distributed=maybe")),
    ("coordinator without counts", lambda c: c.args("--coordinator_address=localhost:1234")),
    ("compilation cache under a file", lambda c: c.args(f"--compilation_cache={c.npz}/cache")),
    # The schedule and method.
    ("unknown method", lambda c: c.args("--config.method=lfff")),
    ("unknown trainer", lambda c: c.args("--config.trainer=svm")),
    ("compute dtype float16", lambda c: c.args("--config.compute_dtype=float16")),
    ("num_steps 0", lambda c: c.args("--config.num_steps=0")),
    ("num_steps negative", lambda c: c.args("--config.num_steps=-20")),
    ("eval_every 0", lambda c: c.args("--config.eval_every=0")),
    ("checkpoint_every negative", lambda c: c.args("--config.checkpoint_every=-1")),
    ("batch_size 0", lambda c: c.args("--config.batch_size=0")),
    ("batch_size over the data", lambda c: c.args("--config.batch_size=100000")),
    ("eval_batch_size 0", lambda c: c.args("--config.eval_batch_size=0")),
    ("keep_checkpoints 0", lambda c: c.args("--config.keep_checkpoints=0")),
    ("seed negative", lambda c: c.args("--config.seed=-1")),
    ("num_seeds 0", lambda c: c.args("--config.num_seeds=0")),
    ("num_seeds huge", lambda c: c.args("--config.num_seeds=100000000")),
    ("learning rate negative", lambda c: c.args("--config.optimizer.learning_rate=-0.1")),
    ("learning rate NaN", lambda c: c.args("--config.optimizer.learning_rate=nan")),
    ("weight decay negative", lambda c: c.args("--config.optimizer.weight_decay=-1.0")),
    ("L2 negative", lambda c: c.args("--config.optimizer.l2=-1.0")),
    ("learning rate decay every -5 steps", lambda c: c.args("--config.optimizer.decay_every=-5")),
    ("JTT without its identifier", lambda c: c.args("--config.method=jtt")),
    (
        "GroupDRO step size negative",
        lambda c: c.args("--config.method=group_dro_oracle", "--config.group_dro.step_size=-1.0"),
    ),
    ("learning rate decay from step -1", lambda c: c.args("--config.optimizer.decay_begin=-1")),
    (
        "DisEnt swap lambda negative",
        lambda c: c.args("--config.method=disent", "--config.disent.lambda_swap=-1.0"),
    ),
    (
        "DisEnt feature width 0",
        lambda c: c.args("--config.method=disent", "--config.disent.feature_dim=0"),
    ),
    ("GCE q 0", lambda c: c.args("--config.lff.q=0.0")),
    ("EMA alpha over 1", lambda c: c.args("--config.lff.ema_alpha=1.5")),
    ("unknown input scaling", lambda c: c.args("--config.input_scaling=zscore")),
    ("unknown model", lambda c: c.args("--config.model.name=transformer")),
    ("hidden width 0", lambda c: c.args("--config.model.hidden=(0,)")),
    ("hidden width negative", lambda c: c.args("--config.model.hidden=(-16,)")),
    ("more devices than exist", lambda c: c.args("--config.mesh.data=64")),
    ("model axis 0", lambda c: c.args("--config.mesh.model=0")),
    ("unknown train_images", lambda c: c.args("--config.train_images=disk")),
    ("device images budget 0", lambda c: c.args("--config.device_images_budget_gib=0.0")),
    ("amplified_groups without amplifier", lambda c: c.args("--config.method=amplified_groups")),
    (
        "amplifier workdir missing",
        lambda c: c.args(
            "--config.method=amplified_groups", f"--config.amplifier.workdir={c.tmp}/nope"
        ),
    ),
    ("added pairs missing", lambda c: c.args(f"--config.data.added_pairs.path={c.tmp}/p.npz")),
    (
        "generator missing",
        lambda c: c.args(f"--config.data.generated_train.generator={c.tmp}/gan"),
    ),
    # Datasets by name.
    ("unknown dataset", lambda c: c.args("--config.data.name=cifar")),
    ("unoffered ratio", lambda c: c.args(config="configs/colored_mnist.py:ratio=0.03")),
    ("unoffered severity", lambda c: c.args(config="configs/colored_mnist.py:severity=9")),
    ("unoffered rho", lambda c: c.args(config="configs/biased_mnist.py:rho=0.9")),
    ("validation fraction over 1", lambda c: c.args("--config.data.valid_fraction=1.5")),
    ("validation fraction leaves nothing", lambda c: c.args("--config.data.valid_fraction=1.0")),
    # The .npz file.
    ("npz path unset", lambda c: c.args(config="configs/npz.py:method=lff")),
    ("npz missing", lambda c: c.args(config=f"configs/npz.py:path={c.tmp}/nope.npz")),
    ("npz is a directory", lambda c: c.args(config=f"configs/npz.py:path={c.tmp}")),
    ("npz not a zip", lambda c: c.args(config=f"configs/npz.py:path={c.file('x.npz', 'no')}")),
    ("npz a single array", lambda c: c.args(config=f"configs/npz.py:path={_npy(c)}")),
    ("npz empty file", lambda c: c.args(config=f"configs/npz.py:path={c.file('e.npz', b'')}")),
    ("npz member truncated", _zip_with_member("test_images.npy", lambda b: b[:200])),
    ("npz member not an array", _zip_with_member("train_label.npy", lambda b: b"junk")),
    ("npz header claims 10^12 rows", _zip_with_member("train_label.npy", _huge_header)),
    ("npz object array", _bad_npz(train_label=np.array([None] * 512, dtype=object))),
    ("npz key missing", _bad_npz(test_label=None)),
    ("npz float images", _bad_npz(train_images=np.zeros((512, 8, 8, 3), np.float32))),
    ("npz images without channels", _bad_npz(test_images=np.zeros((200, 8, 8), np.uint8))),
    ("npz image sizes differ", _bad_npz(test_images=np.zeros((200, 8, 9, 3), np.uint8))),
    ("npz label out of range", _bad_npz(test_label=np.full(200, 7))),
    ("npz negative label", _bad_npz(train_label=np.full(512, -1))),
    ("npz bias label -2", _bad_npz(train_bias_label=np.full(512, -2))),
    ("oracle without bias labels",
     _bad_npz("--config.method=group_dro_oracle", train_bias_label=np.full(512, -1))),
    ("npz float labels", _bad_npz(train_label=np.zeros(512))),
    ("npz label count differs", _bad_npz(train_label=np.zeros(511, int))),
    ("npz empty test split", _bad_npz(test_images=np.zeros((0, 8, 8, 3), np.uint8),
                                      test_label=np.zeros(0, int),
                                      test_bias_label=np.zeros(0, int))),
    ("npz one class", _bad_npz(train_label=np.zeros(512, int), test_label=np.zeros(200, int))),
    ("npz num_classes 10^12", _bad_npz(num_classes=np.int64(10**12))),
    ("npz label 10^9", _bad_npz(train_label=np.full(512, 10**9))),
    ("npz num_bias_classes 10^9", _bad_npz(num_bias_classes=np.int64(10**9))),
    # The workdir.
    ("workdir is a file", lambda c: (c.run.write_text("x"), c.args())[1]),
    ("workdir under a file", lambda c: (c.file("f", "x"), _args(c.npz, c.tmp / "f" / "run"))[1]),
    ("workdir of another config", lambda c: (c.finished(), c.args("--config.seed=3"))[1]),
    ("finished run shortened", lambda c: (c.finished(), c.args("--config.num_steps=10"))[1]),
    ("config.json not JSON", _in_workdir(lambda w: (w / "config.json").write_text("{"))),
    ("config.json unknown field", _in_workdir(_edit_config_json(lambda d: d.update(zz=1)))),
    ("results.json not JSON", _in_workdir(lambda w: (w / "results.json").write_text("{"),
                                          "finished")),
    ("metrics.jsonl garbage", _in_workdir(lambda w: (w / "metrics.jsonl").write_text("x\n"))),
    ("metrics.jsonl a directory", _in_workdir(_directory_for("metrics.jsonl"))),
    ("metrics.jsonl cut", _in_workdir(lambda w: (w / "metrics.jsonl").write_text(""))),
    ("checkpoints a file", _in_workdir(_file_for("checkpoints"))),
    ("checkpoint past num_steps",
     _in_workdir(lambda w: shutil.copytree(w / "checkpoints/20", w / "checkpoints/40"))),
    ("checkpoint damaged", _in_workdir(_overwrite_checkpoint_files)),
    # Recipes.
    ("recipe data unknown", _recipe("data=cifar,quick")),
    ("recipe npz missing", _recipe("data=npz,path=/nonexistent/mine.npz,quick")),
    ("recipe seeds 0", _recipe(RECIPE + ",seeds=0")),
    ("recipe unknown argument", _recipe(RECIPE + ",tint")),
    ("recipe knob out of range", _recipe(RECIPE, "--config.recipe.holdout_fraction=1.5")),
    ("recipe data under a batch", _recipe(RECIPE, "--config.recipe.gan_batch_size=500")),
    ("recipe in a single run's workdir", lambda c: (c.finished(), _recipe(RECIPE)(c))[1]),
    ("recipe stages reused from nowhere", _recipe(RECIPE, "--reuse_stages_from=/nonexistent/w")),
    ("stages reused by a single run", lambda c: c.args(f"--reuse_stages_from={c.ground}")),
]


@pytest.mark.parametrize("name, make", CASES, ids=[name for name, _ in CASES])
def test_a_bad_input_is_one_line_exit_2_and_changes_nothing(commands, ground, tmp_path, name,
                                                            make):
  case = Case(ground, tmp_path)
  args = make(case)
  before = _snapshot(tmp_path)
  code, stdout, stderr = commands.run(args, timeout=30)
  assert (code, stdout) == (2, ""), (name, code, stdout, stderr)
  lines = stderr.splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), (name, stderr)
  assert _snapshot(tmp_path) == before, name


def test_a_held_workdir_is_one_line_naming_the_holder(commands, ground, tmp_path):
  case = Case(ground, tmp_path)
  case.unfinished()
  hold = (
      "import sys, time\nfrom etils import epath\nfrom jaxdebias.runs.lock import workdir_lock\n"
      "with workdir_lock(epath.Path(sys.argv[1])):\n  print('held', flush=True)\n  time.sleep(60)\n"
  )
  holder = subprocess.Popen([sys.executable, "-c", hold, str(case.run)], stdout=subprocess.PIPE,
                            text=True)
  try:
    assert holder.stdout.readline() == "held\n"
    before = _snapshot(tmp_path)
    code, stdout, stderr = commands.run(case.args())
    assert (code, stdout) == (2, "") and len(stderr.splitlines()) == 1, stderr
    assert f"pid {holder.pid}" in stderr and "in use by another run" in stderr
    assert _snapshot(tmp_path) == before
  finally:
    holder.kill()
    holder.wait()
  assert (case.run / lock.LOCK_FILE).exists()


def test_a_workdir_on_a_read_only_disk_is_one_line(commands, ground, tmp_path, tmpfs):
  """Permissions cannot be tested as root (root writes anyway); a read-only filesystem can."""
  case = Case(ground, tmp_path)
  for workdir in (tmpfs("ro"), tmpfs("ro") / "run"):
    code, stdout, stderr = commands.run(_args(case.npz, workdir))
    assert (code, stdout) == (2, "") and len(stderr.splitlines()) == 1, stderr
    assert "(Read-only file system); use a --workdir you can write" in stderr, stderr


def test_the_catalogue_is_at_least_sixty_inputs():
  assert len(CASES) + 2 >= 60 and len({name for name, _ in CASES}) == len(CASES)


def _snapshot(root: pathlib.Path) -> dict[str, bytes]:
  return {
      str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<dir>"
      for p in sorted(root.rglob("*"))
  }
