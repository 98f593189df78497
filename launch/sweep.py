"""Sweeps: a Python file of config overrides, expanded into named runs and their command lines.

A sweep file defines CONFIG, the config spec every run starts from (what --config= takes), and
runs(), which returns a list of override dicts {config field path: value}, built from axes:

  from launch.sweep import product, values

  CONFIG = "configs/colored_mnist.py"

  def runs():
    return product(values("method", ["erm", "lff"]), values("seed", [0, 1]))

An axis is a list of override dicts: `values(key, list)` makes one, `[{"num_steps": 1000}]` is one
that fixes a field in every run. `product` combines axes Cartesian-wise, `zip_` element-wise.
Run NAME (stem-key=value-...-HASH, HASH from CONFIG and the sorted overrides) trains in ROOT/NAME:
`python -m jaxdebias.main --config=CONFIG --workdir=ROOT/NAME --config.key=value ...`, from the
repository root.
"""

import argparse
import dataclasses
import hashlib
import itertools
import json
import os
import re
import runpy
import sys
from typing import Any, Callable

from jaxdebias.errors import where_user_code_failed

Overrides = dict[str, Any]

_KEY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")  # Replaced by "_" in run names.
_MAX_STEM = 90  # Characters of the readable part of a run name; "-" and an 8-digit hash follow.


class SweepError(ValueError):
  """A bad sweep file, flag or results file; the message says what to fix."""


def values(key: str, vals: list | tuple | range) -> list[Overrides]:
  """One axis: `key` takes each of `vals` in turn (a tuple-valued field takes tuples: [(1, 2)])."""
  if not isinstance(vals, (list, tuple, range)):
    raise SweepError(f"values({key!r}, ...) takes a list of values, got {vals!r}.")
  return [{key: v} for v in vals]


def product(*axes: list[Overrides]) -> list[Overrides]:
  """Every combination of one entry per axis; the last axis varies fastest."""
  return [_merge(entries) for entries in itertools.product(*axes)]


def zip_(*axes: list[Overrides]) -> list[Overrides]:
  """The i-th entries of all axes together; the axes must have equal lengths."""
  lengths = [len(axis) for axis in axes]
  if len(set(lengths)) > 1:
    raise SweepError(f"zip_ needs axes of equal lengths, got lengths {lengths}.")
  return [_merge(entries) for entries in zip(*axes)]


def _merge(entries) -> Overrides:
  merged = {}
  for entry in entries:
    if repeated := sorted(merged.keys() & entry.keys()):
      raise SweepError(
          f"{repeated} set by two axes of one product or zip_; give each key one axis."
      )
    merged.update(entry)
  return merged


def render(value) -> str:
  """`value` as the text of --config.key=TEXT that config_flags parses back to `value`."""
  if isinstance(value, (tuple, list)):
    inner = ",".join(map(render, value))
    return f"({inner},)" if len(value) == 1 else f"({inner})"
  if isinstance(value, (bool, int, float, str)):
    return str(value)
  raise SweepError(f"cannot pass {value!r} as a config value; use a number, bool, string or tuple.")


@dataclasses.dataclass
class Run:
  """One run of a sweep: the config spec and its overrides, in sweep order."""

  config: str
  overrides: Overrides

  @property
  def name(self) -> str:
    """stem-key=value-...-HASH: readable, filesystem-safe, bounded, distinct per config."""
    rendered = [(k, render(v)) for k, v in self.overrides.items()]
    spec = json.dumps([self.config, sorted(rendered)])
    digest = hashlib.sha256(spec.encode()).hexdigest()[:8]
    safe = lambda text: _UNSAFE.sub("_", text).strip("_")
    config_stem = os.path.splitext(os.path.basename(self.config.split(":")[0]))[0]
    stem = "-".join([safe(config_stem)] + [f"{k}={safe(v)}" for k, v in rendered])
    return f"{stem[:_MAX_STEM]}-{digest}"

  def workdir(self, root: str) -> str:
    return f"{root.rstrip('/')}/{self.name}"

  def results_path(self, root: str) -> str:
    """Where the trainer writes results.json once the run has finished."""
    return f"{self.workdir(root)}/results.json"

  def argv(self, root: str, python: str = sys.executable) -> list[str]:
    """The command that trains this run in ROOT/NAME (from the repository root)."""
    return [
        python,
        "-m",
        "jaxdebias.main",
        f"--config={self.config}",
        f"--workdir={self.workdir(root)}",
        *(f"--config.{k}={render(v)}" for k, v in self.overrides.items()),
    ]


def expand(config: str, overrides: list[Overrides]) -> list[Run]:
  """The runs of CONFIG with each override dict; refuses bad keys, bad values and repeated runs."""
  runs = []
  seen = {}
  for i, entry in enumerate(overrides):
    if not isinstance(entry, dict):
      raise SweepError(f"run {i} of the sweep is {entry!r}, not a dict of overrides.")
    for key in entry:
      if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise SweepError(f"{key!r} is not a config field path like 'seed' or 'data.ratio'.")
    run = Run(config, dict(entry))
    if run.name in seen:
      raise SweepError(f"runs {seen[run.name]} and {i} of the sweep are the same ({entry}).")
    seen[run.name] = i
    runs.append(run)
  return runs


def load(path: str) -> list[Run]:
  """The runs of the sweep file at `path`."""
  if not os.path.isfile(path):
    raise SweepError(f"no sweep file {path}; pass a .py file that defines CONFIG and runs().")
  try:
    namespace = runpy.run_path(path)
  except Exception as e:  # pylint: disable=broad-except  # The sweep file's own code failed.
    raise SweepError(f"the sweep file failed: {where_user_code_failed(e)}; fix it.") from e
  config = namespace.get("CONFIG")
  if not isinstance(config, str) or not config:
    raise SweepError(
        f'{path} defines no CONFIG string; add one, e.g. CONFIG = "configs/colored_mnist.py".'
    )
  if not callable(namespace.get("runs")):
    raise SweepError(f"{path} defines no runs(); add one that returns a list of override dicts.")
  try:
    overrides = namespace["runs"]()
  except Exception as e:  # pylint: disable=broad-except
    raise SweepError(f"runs() of {path} failed: {where_user_code_failed(e)}; fix it.") from e
  if not isinstance(overrides, list) or not overrides:
    raise SweepError(f"runs() of {path} returned {overrides!r}, not a non-empty list of dicts.")
  return expand(config, overrides)


def arg_parser(doc: str, root: str | None = "workdirs/sweeps") -> argparse.ArgumentParser:
  """The command-line parser every launcher starts from: the sweep file and (if `root`) --root."""
  parser = argparse.ArgumentParser(
      description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("sweep", help="the sweep file: a .py that defines CONFIG and runs()")
  if root:
    parser.add_argument(
        "--root", default=root, help=f"run NAME's workdir is ROOT/NAME (default {root})"
    )
  return parser


def cli(
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace, list[Run]], int],
    argv: list[str] | None = None,
) -> int:
  """Parses `argv`, loads the sweep, returns body(args, runs); a SweepError prints one line, 2."""
  args = parser.parse_args(argv)
  try:
    return body(args, load(args.sweep))
  except SweepError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
