"""In-epoch backups, continuing a run for more epochs and rebuilding a run's data artefacts, through
the command line."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from tests.pipelines.commands import run_command
from tests.pipelines.training.stopped_runs import STEPS_PER_EPOCH, TRAINING

EPOCHS = TRAINING["epochs"]


def command(module, args, cache):
    """`python -m pipelines.<module> ARGS`, run in this process (`tests.pipelines.commands`)."""
    return run_command(module, args, cache)


def history_epochs(run_dir):
    return [int(row["epoch"]) for row in csv.DictReader(open(run_dir / "history.csv"))]


@pytest.fixture(scope="module")
def resumed_run(stopped_everywhere):
    """The run of `stopped_everywhere` (stopped at every kind of point, then finished): the tests below
    go on with its run directory."""
    return stopped_everywhere


@pytest.mark.slow
def test_sigkill_mid_epoch_resumes_from_the_in_epoch_backup(resumed_run):
    # The run killed after its second in-epoch backup left epoch 0 (zero-based) at step 8 ...
    epoch, step, iterations = resumed_run["backups"]["start over"]
    assert (epoch, step) == (0, 8) and iterations > 0
    out = resumed_run["said"]["mid-epoch"]
    assert f"resuming epoch {epoch + 1}/{EPOCHS} at step {step + 1}/{STEPS_PER_EPOCH} from the backup" in out, out
    # ... and the next run's optimiser continues from the backup's step count: restored, not rebuilt.
    assert f"restored optimiser step {iterations}" in out, out
    # --quiet: one line per epoch with the main metric and an ETA, in a resumed run too
    lines = [line for line in out.splitlines() if line.startswith("epoch 1/")]
    assert lines and all("val_ccc_mean" in line and "ETA" in line for line in lines), out
    assert history_epochs(resumed_run["run_dir"])[:EPOCHS] == list(range(EPOCHS))


@pytest.mark.slow
def test_more_epochs_continue_a_finished_run(resumed_run):
    run_dir, args = resumed_run["run_dir"], resumed_run["args"]
    more = EPOCHS + 1
    result = command("train", args + ["--epochs", str(more)], resumed_run["cache"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"continuing the {EPOCHS}-epoch run in {run_dir} to {more} epochs" in result.stdout
    assert f"resuming after epoch {EPOCHS}/{more}" in result.stdout
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
