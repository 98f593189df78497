"""A workdir's life without training: claiming and locking it, config.json and other JSON, the
metrics log and its TensorBoard copy, process-0 printing, Orbax checkpoints, and loading a
finished run as a function.

Layout of a workdir: config.json, metrics.jsonl (one line per evaluation), tensorboard/ (the
same numbers as event files), results.json (the final evaluation; its presence means the run
finished), checkpoints/ (Orbax), and for a generator run generator.json (what builds its
module) and samples/.
"""

from jaxdebias.runs.checkpoint import Checkpointer
from jaxdebias.runs.files import (
    MetricsLog,
    failed_writes_said,
    flatten,
    is_main_process,
    process_zero_decides,
    print_results,
    read_json,
    write_json,
)
from jaxdebias.runs.load import (
    GENERATOR_JSON,
    classifier_fn,
    load_classifier,
    load_dataset,
    load_generator,
    load_labeller,
    method_for,
)
from jaxdebias.runs.lock import locked, workdir_lock
from jaxdebias.runs.logs import held_until_work_starts, quiet_library_logs, work_starts
from jaxdebias.runs.tensorboard import TensorBoardLog
from jaxdebias.runs.workdir import absolute, claim_workdir, config_differences, read_config
