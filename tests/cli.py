"""Runs `python -m jaxdebias.main ARGS` many times without paying Python's and JAX's start-up
each time: one server process imports the command once, then forks a child per command (before
any JAX backend starts, so the child is a fresh process in all that matters) and reports the
child's exit status and output. The child runs exactly what `python -m jaxdebias.main` runs."""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]

_SERVER = r"""
import json, os, signal, sys
from absl import app
from jaxdebias import main

sys.path.insert(0, os.getcwd())  # The repository: tests/ importable after a child's chdir.
for line in sys.stdin:
  request = json.loads(line)
  pid = os.fork()
  if pid == 0:
    signal.alarm(request["timeout"])  # Ends a child that hangs (SIGALRM: exit status -14).
    # Ctrl-C raises KeyboardInterrupt, as in a command typed in a terminal (a job started in the
    # background of a script inherits SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(request["cwd"])
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
      os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    exec(request["before"])  # E.g. a fault to inject (tests/kills.py).
    sys.argv = ["jaxdebias.main", *request["args"]]
    code = 0
    try:
      app.run(main.main, flags_parser=main.parse_flags)
    except SystemExit as e:
      code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # What `python -m` would print: a traceback, status 1.
      import traceback
      traceback.print_exc()
      code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
  _, status = os.waitpid(pid, 0)
  print(json.dumps(os.waitstatus_to_exitcode(status)), flush=True)
"""


def tiny_args(npz: str, workdir) -> list[str]:
  """`python -m jaxdebias.main` arguments of the `tiny_config` fixture's run (conftest.py), but
  for its mesh."""
  return [
      f"--config=configs/npz.py:method=lff,path={npz}",
      f"--workdir={workdir}",
      "--config.model.hidden=(32,32)",
      "--config.batch_size=32",
      "--config.num_steps=40",
      "--config.eval_every=10",
      "--config.checkpoint_every=10",
      "--config.eval_batch_size=64",
  ]


class Commands:
  """A server for `run(args, cwd)`; close it with `close()`."""

  def __init__(self):
    # The tests' persistent compilation cache (conftest.py), for tiny programs too.
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.2")
    self._server = subprocess.Popen(
        [sys.executable, "-c", _SERVER],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    self._output = tempfile.mkdtemp(prefix="cli_output_")

  def run(
      self, args: list[str], cwd: pathlib.Path = REPO, timeout: int = 120, before: str = ""
  ) -> tuple[int, str, str]:
    """`python -m jaxdebias.main *args` in `cwd`: (exit status, stdout, stderr); a command
    still running after `timeout` seconds is killed (status -14). `before`: Python code run in
    the command's process first."""
    stdout, stderr = (os.path.join(self._output, name) for name in ("stdout", "stderr"))
    request = {"args": args, "cwd": str(cwd), "stdout": stdout, "stderr": stderr,
               "timeout": timeout, "before": before}
    self._server.stdin.write(json.dumps(request) + "\n")
    self._server.stdin.flush()
    code = json.loads(self._server.stdout.readline())
    return code, pathlib.Path(stdout).read_text(), pathlib.Path(stderr).read_text()

  def run_to_the_end(self, args: list[str]) -> None:
    """`run(args)`, which must succeed."""
    code, _, stderr = self.run(args)
    assert code == 0, stderr

  def close(self) -> None:
    self._server.stdin.close()
    self._server.wait(timeout=60)
