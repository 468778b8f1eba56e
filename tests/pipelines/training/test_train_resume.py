"""In-epoch backups, continuing a run for more epochs and rebuilding a run's data artefacts, through
the command line."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pipelines.training.test_train import REPO, write_config

# 3 train recordings of 24 s in 6 s windows (3 s hop), one window per step: 21 steps per epoch.
RESUME = {"epochs": 2, "batch_size": 1, "backup_every_steps": 2}


def _env(cache):
    return {**os.environ, "COLD_KERAS_CACHE": str(cache), "PYTHONPATH": str(REPO)}


def command(module, args, cache, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", f"pipelines.{module}", *args],
        cwd=REPO,
        env=_env(cache),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _backup_state(backup):
    """(epoch, step, optimiser iterations) of the backup a rerun resumes from, or None."""
    import h5py

    from pipelines.runs.checks import backup_file_of

    found = backup_file_of(backup)
    if found is None:
        return None
    path, epoch, step = found
    try:
        with h5py.File(path, "r") as handle:
            iterations = int(handle["optimizer/vars/0"][()])
    except (OSError, ValueError, KeyError):
        return None
    return epoch, step, iterations


def history_epochs(run_dir):
    return [int(row["epoch"]) for row in csv.DictReader(open(run_dir / "history.csv"))]


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """A run SIGKILLed inside its first epoch (after an in-epoch backup), then run again to the end."""
    tmp = tmp_path_factory.mktemp("resume")
    cache = tmp / "cache"
    run_dir = tmp / "run"
    config = write_config(tmp / "tiny.yaml", training=RESUME)
    args = ["--dataset", "synthetic", "--config", str(config), "--output-dir", str(run_dir), "--quiet"]
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.train", *args],
        cwd=REPO,
        env=_env(cache),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    backup, state, deadline = run_dir / "backup", None, time.time() + 600
    while state is None and time.time() < deadline and process.poll() is None:
        if (backup / "latest.weights.h5").exists():
            process.send_signal(signal.SIGSTOP)  # freeze it, then read a backup that cannot change
            found = _backup_state(backup)
            if found is not None and found[1] > 0:
                state = found
                break
            process.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=120)
    assert state is not None, "no in-epoch backup was seen before the run ended"
    assert not (run_dir / "metrics.json").exists()
    result = command("train", args, cache)
    assert result.returncode == 0, result.stderr[-3000:]
    return {"cache": cache, "run_dir": run_dir, "args": args, "state": state, "result": result}


@pytest.mark.slow
def test_sigkill_mid_epoch_resumes_from_the_in_epoch_backup(resumed_run):
    epoch, step, iterations = resumed_run["state"]
    out = resumed_run["result"].stdout
    assert f"resuming epoch {epoch + 1}/{RESUME['epochs']} at step {step + 1}/21 from the backup" in out, out
    # The optimiser continues from the backup's step count: its state was restored, not rebuilt.
    assert f"restored optimiser step {iterations}" in out, out
    assert history_epochs(resumed_run["run_dir"]) == list(range(RESUME["epochs"]))
    assert (resumed_run["run_dir"] / "metrics.json").exists()
    for line in out.splitlines():  # --quiet: one line per epoch with the main metric and an ETA
        if line.startswith("epoch 1/"):
            assert "val_ccc_mean" in line and "ETA" in line, line


@pytest.mark.slow
def test_more_epochs_continue_a_finished_run(resumed_run):
    run_dir, args = resumed_run["run_dir"], resumed_run["args"]
    more = RESUME["epochs"] + 1
    result = command("train", args + ["--epochs", str(more)], resumed_run["cache"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"continuing the {RESUME['epochs']}-epoch run in {run_dir} to {more} epochs" in result.stdout
    assert f"resuming after epoch {RESUME['epochs']}/{more}" in result.stdout
    assert history_epochs(run_dir) == list(range(more))
    assert json.loads((run_dir / "config.json").read_text())["training"]["epochs"] == more
    assert (run_dir / "metrics.json").exists()
    fewer = command("train", args + ["--epochs", "1"], resumed_run["cache"])
    assert fewer.returncode == 2 and "training.epochs" in fewer.stderr


@pytest.mark.slow
def test_a_run_whose_artefacts_are_gone_is_rebuilt(resumed_run):
    run_dir, cache = resumed_run["run_dir"], resumed_run["cache"]
    runtime = json.loads((run_dir / "config.json").read_text())["runtime"]
    artifact_dir = Path(runtime["artifact_dir"])
    shutil.rmtree(artifact_dir)
    rebuilt = command("prepare", ["--run-dir", str(run_dir), "--no-progress"], cache)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    assert manifest["fingerprint"] == runtime["corpus_fingerprint"]

    shutil.rmtree(artifact_dir)
    evaluated = command("evaluate", ["--run-dir", str(run_dir), "--plot-first", "0"], cache)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "data artefacts" in evaluated.stderr and "missing" in evaluated.stderr
    assert (artifact_dir / "manifest.json").exists() and "ccc_mean" in evaluated.stdout
