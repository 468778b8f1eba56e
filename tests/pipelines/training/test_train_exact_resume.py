"""A resumed run is the same run: a trainer stopped anywhere and run again ends exactly where the
uninterrupted run ends, and Ctrl-C takes effect at once at any stage.

One uninterrupted run of the tiny configuration is the reference. A second run goes through every
kind of stop in turn, each time running the same command again: Ctrl-C during the first trace
(before any backup: the next run says it starts over), SIGKILL inside an epoch (after an in-epoch
backup), at the boundary between epochs, during validation and after training before the scoring.
Its `metrics.json` and `history.csv` must equal the reference's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.pipelines.training.stopped_runs import INTERRUPTED, STEPS_PER_EPOCH, TRAINING
from tests.pipelines.training.test_train import REPO


def _metrics_difference(a, b):
    worst = 0.0
    for partition, branches in a.items():
        for branch, scores in branches.items():
            for name, value in scores.items():
                if isinstance(value, (int, float)):
                    worst = max(worst, abs(value - b[partition][branch][name]))
    return worst


@pytest.mark.slow
def test_a_run_stopped_anywhere_ends_like_the_uninterrupted_run(stopped_everywhere):
    """The sequence of `stopped_everywhere` (tests/pipelines/training/conftest.py)."""
    run = stopped_everywhere
    said, backup = run["said"], run["run_dir"] / "backup"
    epochs = TRAINING["epochs"]

    # Ctrl-C about a second into the first trace: exit 130 within 2 s, nothing backed up yet.
    ctrl_c = run["ctrl_c"]
    assert ctrl_c["returncode"] == 130, ctrl_c["stderr"][-3000:]
    assert ctrl_c["seconds"] < 2.0, f"Ctrl-C took {ctrl_c['seconds']:.2f} s"
    assert ctrl_c["stderr"].strip().splitlines()[-1] == INTERRUPTED and "Traceback" not in ctrl_c["stderr"]
    assert not ctrl_c["backed_up"]

    assert f"no backup in {backup} yet: starting the run from the beginning" in said["start over"]
    assert f"resuming epoch 1/{epochs} at step 9/{STEPS_PER_EPOCH} from the backup in {backup}" in said["mid-epoch"]
    assert f"resuming after epoch 1/{epochs} from the backup in {backup}" in said["between epochs"]
    assert f"resuming epoch 2/{epochs} at step 21/{STEPS_PER_EPOCH} from the backup in {backup}" in said["validation"]
    assert f"resuming: the backup is at the end of epoch {epochs}; nothing left to train" in run["final"].stdout

    expected, got = run["straight"]["metrics"], run["stopped"]["metrics"]
    assert _metrics_difference(expected, got) <= 1e-5
    assert got == expected  # on one CPU machine: bit-identical
    # every epoch once, with the training metrics of the whole epoch (not only of the steps after a resume)
    assert run["stopped"]["history"] == run["straight"]["history"]


def test_ctrl_c_ends_a_command_stuck_in_a_long_native_call(tmp_path):
    """The main thread in one long C call (as TensorFlow's first run of a traced step, 10-15 s on the
    default model) runs no Python signal handler; the watchdog ends the command anyway."""
    script = tmp_path / "busy.py"
    script.write_text(
        textwrap.dedent(
            """
            import numpy as np
            from pipelines.core.errors import cli_main

            @cli_main
            def main():
                values = np.random.default_rng(0).random((2500, 2500))
                print("busy", flush=True)
                np.linalg.eigvals(values)  # seconds inside LAPACK
                print("finished", flush=True)

            main()
            """
        )
    )
    process = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "busy"
    time.sleep(0.3)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    took = time.monotonic() - sent
    assert process.returncode == 130, err[-2000:]
    assert "finished" not in out
    assert took < 2.0, f"Ctrl-C took {took:.2f} s"
    assert err.strip().splitlines()[-1] == INTERRUPTED


def test_a_backup_of_another_setup_is_named_in_one_line():
    from pipelines.runs.backup import runtime_difference

    same = {"replicas": 1, "policy": "float32", "tensorflow": "2.21.0"}
    assert runtime_difference(same, dict(same)) is None
    note = runtime_difference({**same, "replicas": 2, "policy": "mixed_float16"}, same)
    assert note.startswith("note: the backup was written with other settings of this machine (replicas 2 -> 1, ")
    assert "precision policy mixed_float16 -> float32" in note and "\n" not in note
