"""A resumed run is the same run: a trainer stopped anywhere and run again ends exactly where the
uninterrupted run ends, and Ctrl-C takes effect at once at any stage.

One uninterrupted run of the tiny configuration is the reference. A second run goes through every
kind of stop in turn, each time running the same command again: Ctrl-C during the first trace
(before any backup: the next run says it starts over), SIGKILL inside an epoch (after an in-epoch
backup), at the boundary between epochs, during validation and after training before the scoring.
Its `metrics.json` and `history.csv` must equal the reference's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.pipelines.training.test_train import REPO, write_config

# 3 train recordings of 24 s in 6 s windows (3 s hop), one window per step: 21 steps per epoch.
# A moving average of the weights: its swaps at validation and checkpoints must leave the run exact.
TRAINING = {"epochs": 2, "batch_size": 1, "backup_every_steps": 4, "mixed_precision": "off", "ema_momentum": 0.9}
# Augmentation on: its draws must be the same after a resume too.
AUGMENT = {"noise_std": 0.05, "modality_dropout_prob": 0.3, "time_mask_frames": 3}
INTERRUPTED = "interrupted: everything written so far is kept; run the same command again to resume"


def _env(cache, **extra):
    return {**os.environ, "COLD_KERAS_CACHE": str(cache), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def _start(args, env):
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.train", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path, text, process, timeout=600):
    deadline = time.time() + timeout
    while not (path.exists() and text in path.read_text()):
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the trainer ended (code {process.returncode}) before {text}:\n{out[-2000:]}\n{err[-3000:]}")
        assert time.time() < deadline, f"the trainer did not reach {text}"
        time.sleep(0.02)


def _killed_at(args, cache, tmp, point, count=1):
    """Runs the command until pause point `point` (its `count`-th arrival), SIGKILLs it; returns stdout."""
    marker = tmp / f"paused-{point}"
    env = _env(
        cache,
        COLD_KERAS_PAUSE_AT=point,
        COLD_KERAS_PAUSE_COUNT=str(count),
        COLD_KERAS_PAUSE_FILE=str(marker),
    )
    process = _start(args, env)
    _wait_for(marker, point, process)
    process.send_signal(signal.SIGKILL)
    out, _ = process.communicate(timeout=60)
    return out


def _metrics_difference(a, b):
    worst = 0.0
    for partition, branches in a.items():
        for branch, scores in branches.items():
            for name, value in scores.items():
                if isinstance(value, (int, float)):
                    worst = max(worst, abs(value - b[partition][branch][name]))
    return worst


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exact_resume")
    cache = tmp / "cache"
    config = write_config(tmp / "tiny.yaml", training={**TRAINING, "augment": AUGMENT})

    def args(run_dir):
        return ["--dataset", "synthetic", "--config", str(config), "--output-dir", str(run_dir), "--quiet"]

    straight = subprocess.run(
        [sys.executable, "-m", "pipelines.train", *args(tmp / "straight")],
        cwd=REPO,
        env=_env(cache),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert straight.returncode == 0, straight.stderr[-3000:]
    return {"tmp": tmp, "cache": cache, "args": args}


@pytest.mark.slow
def test_a_run_stopped_anywhere_ends_like_the_uninterrupted_run(runs):
    tmp, cache, args = runs["tmp"], runs["cache"], runs["args"]
    run_dir = tmp / "stopped"
    argv = args(run_dir)
    said = {}

    # Ctrl-C about a second into the first trace: exit 130 within 2 s, nothing backed up yet.
    reached = tmp / "reached"
    process = _start(argv, _env(cache, COLD_KERAS_REACHED_FILE=str(reached)))
    _wait_for(reached, "train.begin", process)
    time.sleep(1.0)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    took = time.monotonic() - sent
    assert process.returncode == 130, stderr[-3000:]
    assert took < 2.0, f"Ctrl-C took {took:.2f} s"
    assert stderr.strip().splitlines()[-1] == INTERRUPTED and "Traceback" not in stderr
    assert not (run_dir / "backup" / "latest.weights.h5").exists()

    # The same command starts over, says so, and is killed after its second in-epoch backup (step 8).
    said["start over"] = _killed_at(argv, cache, tmp, "train.step", count=2)
    # ... resumes at step 9 and is killed between epochs 1 and 2 (the end of epoch 1 backed up),
    said["mid-epoch"] = _killed_at(argv, cache, tmp, "train.epoch")
    # ... resumes after epoch 1 and is killed during the validation of epoch 2,
    said["between epochs"] = _killed_at(argv, cache, tmp, "train.validation")
    # ... resumes after epoch 2's last in-epoch backup (step 20) and is killed before the scoring,
    said["validation"] = _killed_at(argv, cache, tmp, "train.fitted")
    # ... and finishes.
    final = subprocess.run(
        [sys.executable, "-m", "pipelines.train", *argv], cwd=REPO, env=_env(cache), capture_output=True, text=True
    )
    assert final.returncode == 0, final.stderr[-3000:]

    backup = run_dir / "backup"
    assert f"no backup in {backup} yet: starting the run from the beginning" in said["start over"]
    assert f"resuming epoch 1/2 at step 9/21 from the backup in {backup}" in said["mid-epoch"]
    assert f"resuming after epoch 1/2 from the backup in {backup}" in said["between epochs"]
    assert f"resuming epoch 2/2 at step 21/21 from the backup in {backup}" in said["validation"]
    assert "resuming: the backup is at the end of epoch 2; nothing left to train" in final.stdout

    expected = json.loads((tmp / "straight" / "metrics.json").read_text())
    got = json.loads((run_dir / "metrics.json").read_text())
    assert _metrics_difference(expected, got) <= 1e-5
    assert got == expected  # on one CPU machine: bit-identical
    # every epoch once, with the training metrics of the whole epoch (not only of the steps after a resume)
    assert (run_dir / "history.csv").read_text() == (tmp / "straight" / "history.csv").read_text()


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
