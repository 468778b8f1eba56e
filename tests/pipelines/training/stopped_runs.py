"""The trainer stopped at every kind of point, once per test session.

`stopped_everywhere` trains the tiny configuration straight through (the reference), then runs the
same command again and again in one run directory, stopping it each time at another point: Ctrl-C
during the first trace (before any backup), SIGKILL after the second in-epoch backup, at the boundary
between epochs, during validation and after training before the scoring; a last run finishes. The
stopped runs are processes of their own (a signal ends them); the straight run and the last one run
the command's `main` in the test process (`tests.pipelines.commands.run_command`). What
each run printed, the backup each SIGKILL left and both runs' scores are kept, so the exact-resume
test and the resume tests of `test_train_resume.py` check one sequence of trainer processes instead
of each starting its own (the two files form one group of workers in `tests/conftest.py`; the
fixture is registered by `tests/pipelines/training/conftest.py`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.pipelines.commands import run_command
from tests.pipelines.training.test_train import REPO, write_config

# 3 train recordings of 24 s in 6 s windows (3 s hop), one window per step: 21 steps per epoch.
STEPS_PER_EPOCH = 21
# A moving average of the weights: its swaps at validation and checkpoints must leave the run exact.
TRAINING = {"epochs": 2, "batch_size": 1, "backup_every_steps": 4, "mixed_precision": "off", "ema_momentum": 0.9}
# Augmentation on: its draws must be the same after a resume too.
AUGMENT = {"noise_std": 0.05, "modality_dropout_prob": 0.3, "time_mask_frames": 3}
INTERRUPTED = "interrupted: everything written so far is kept; run the same command again to resume"


def trainer_env(cache, **extra):
    return {**os.environ, "COLD_KERAS_CACHE": str(cache), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def start_trainer(args, env):
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.train", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path, text, process, timeout=600):
    deadline = time.time() + timeout
    while not (path.exists() and text in path.read_text()):
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the trainer ended (code {process.returncode}) before {text}:\n{out[-2000:]}\n{err[-3000:]}")
        assert time.time() < deadline, f"the trainer did not reach {text}"
        time.sleep(0.02)


def killed_at(args, cache, tmp, point, count=1):
    """Runs the command until pause point `point` (its `count`-th arrival), SIGKILLs it; returns stdout."""
    marker = tmp / f"paused-{point}"
    env = trainer_env(
        cache,
        COLD_KERAS_PAUSE_AT=point,
        COLD_KERAS_PAUSE_COUNT=str(count),
        COLD_KERAS_PAUSE_FILE=str(marker),
    )
    process = start_trainer(args, env)
    wait_for(marker, point, process)
    process.send_signal(signal.SIGKILL)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    return out


def run_to_end(args, cache):
    """The trainer's command to its end, in the test process (no signal reaches it)."""
    return run_command("train", args, cache)


def backup_state(backup):
    """(epoch, step, optimiser iterations) of the backup a rerun resumes from, or None."""
    import h5py

    from pipelines.runs.checks import backup_file_of

    found = backup_file_of(backup)
    if found is None:
        return None
    path, epoch, step = found
    with h5py.File(path, "r") as handle:
        iterations = int(handle["optimizer/vars/0"][()])
    return epoch, step, iterations


@pytest.fixture(scope="session")
def stopped_everywhere(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stopped_everywhere")
    cache = tmp / "cache"
    config = write_config(tmp / "tiny.yaml", training={**TRAINING, "augment": AUGMENT})

    def args(run_dir):
        return ["--dataset", "synthetic", "--config", str(config), "--output-dir", str(run_dir), "--quiet"]

    straight = run_to_end(args(tmp / "straight"), cache)
    assert straight.returncode == 0, straight.stderr[-3000:]

    run_dir = tmp / "stopped"
    argv = args(run_dir)
    said, backups = {}, {}

    # Ctrl-C about a second into the first trace, before anything is backed up.
    reached = tmp / "reached"
    process = start_trainer(argv, trainer_env(cache, COLD_KERAS_REACHED_FILE=str(reached)))
    wait_for(reached, "train.begin", process)
    time.sleep(1.0)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    ctrl_c = {
        "returncode": process.returncode,
        "stderr": stderr,
        "seconds": time.monotonic() - sent,
        "backed_up": (run_dir / "backup" / "latest.weights.h5").exists(),
    }

    # The same command starts over, says so, and is killed after its second in-epoch backup (step 8);
    said["start over"] = killed_at(argv, cache, tmp, "train.step", count=2)
    backups["start over"] = backup_state(run_dir / "backup")
    # ... resumes at step 9 and is killed between epochs 1 and 2 (the end of epoch 1 backed up),
    said["mid-epoch"] = killed_at(argv, cache, tmp, "train.epoch")
    # ... resumes after epoch 1 and is killed during the validation of epoch 2,
    said["between epochs"] = killed_at(argv, cache, tmp, "train.validation")
    # ... resumes after epoch 2's last in-epoch backup (step 20) and is killed before the scoring,
    said["validation"] = killed_at(argv, cache, tmp, "train.fitted")
    # ... and finishes.
    final = run_to_end(argv, cache)
    assert final.returncode == 0, final.stderr[-3000:]
    return {
        "tmp": tmp,
        "cache": cache,
        "args": argv,
        "run_dir": run_dir,
        "ctrl_c": ctrl_c,
        "said": said,
        "backups": backups,
        "final": final,
        # read now: the resume tests go on with the run directory afterwards
        "straight": {
            "stdout": straight.stdout,
            "metrics": json.loads((tmp / "straight" / "metrics.json").read_text()),
            "history": (tmp / "straight" / "history.csv").read_text(),
        },
        "stopped": {
            "metrics": json.loads((run_dir / "metrics.json").read_text()),
            "history": (run_dir / "history.csv").read_text(),
        },
    }
