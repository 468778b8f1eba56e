"""SIGINT and SIGKILL at every stage: the same command then completes like an uninterrupted run.

Each stage is one entry of `STAGES`: how to set up its inputs, the command, the pause point it is
stopped at (`pipelines.core.pause`), what it may leave behind, and the outputs compared with an
uninterrupted run's (byte-equal where the stage is deterministic). The interrupted command runs
in a subprocess that pauses at the point; the second run of the same command goes through the
command's `main` in-process (the exporter's without its fresh-process check, which
tests/pipelines/serving/test_export.py covers: here it would start TensorFlow in two more processes
per case).

One paused subprocess per stage serves both signals. A SIGKILL ends a process without running any of
its code, so what it leaves is exactly what is on disk at that instant: the subprocess is frozen
(SIGSTOP, every thread stopped), its folder copied (the SIGKILL case's state), then it is continued
and sent SIGINT, whose handler must end it with exit 130 and the one-line message. Each case then
puts its own state back in the original folder (the run's absolute paths stay valid) and runs the
command again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable
from unittest import mock

import pytest
import yaml

from tests.fixtures import write_avec_fixture
from tests.pipelines import evaluation_helpers
from tests.pipelines.commands import run_command

REPO = Path(__file__).resolve().parents[2]
AVEC_NAMES = ("Train_DE_01", "Train_DE_02", "Train_HU_01", "Devel_DE_01", "Devel_HU_01", "Test_CN_01")
TINY_TRAINING = {**evaluation_helpers.TINY, "training": {**evaluation_helpers.TINY["training"], "epochs": 2}}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(folder: Path, skip=()) -> dict:
    """{relative path: sha256} of every file under `folder` (hidden files too), minus `skip` names."""
    return {
        p.relative_to(folder).as_posix(): digest(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def without(node, keys):
    """A JSON value without the (volatile) keys `keys`, at any depth."""
    if isinstance(node, dict):
        return {k: without(v, keys) for k, v in node.items() if k not in keys}
    if isinstance(node, list):
        return [without(v, keys) for v in node]
    return node


def run_main(stage, argv: list, cache: Path) -> None:
    """The stage's command's `main` in-process with the data cache of the subprocess; it must succeed."""
    with stage.in_process():
        result = run_command(stage.module, argv, cache)
    assert result.returncode == 0, f"{stage.module} exited with {result.returncode}: {result.stderr[-3000:]}"


@dataclasses.dataclass
class Stage:
    module: str
    point: str
    setup: Callable  # (inputs, folder) -> (argv, output folder)
    outputs: Callable  # output folder -> comparable summary
    left_behind: Callable  # output folder -> None; asserts that nothing looks complete
    count: int = 1  # paused at the point's count-th arrival
    in_process: Callable = contextlib.nullcontext  # the context of the command's in-process runs


# --------------------------------------------------------------------------- stages


def _example_gen_setup(inputs, folder):
    out = folder / "artefacts"
    return [
        "--dataset",
        "avec",
        "--data-dir",
        str(inputs["avec"]),
        "--audio-features",
        "egemaps",
        "--visual-features",
        "au",
        "--output-dir",
        str(out),
        "--no-progress",
    ], out


def _example_gen_outputs(out):
    manifest = json.loads((out / "manifest.json").read_text())
    return tree(out, skip=("manifest.json",)), without(manifest, {"conversion_seconds"})


def _no_manifest(out):
    assert not (out / "manifest.json").exists()
    assert not list(out.glob("examples/*/*.tfrecord"))


def _copy_artefacts(inputs, folder, upto):
    out = folder / "artefacts"
    shutil.copytree(inputs[upto], out)
    return ["--artifact-dir", str(out)], out


def _statistics_left(out):
    assert not (out / "anomalies.json").exists()


def _transform_left(out):
    assert not (out / "transform.json").exists()


def _train_setup(inputs, folder):
    out = folder / "run"
    return ["--dataset", "synthetic", "--config", str(inputs["tiny_yaml"]), "--output-dir", str(out), "--quiet"], out


def _train_outputs(out):
    history = [line.split(",")[0] for line in (out / "history.csv").read_text().splitlines()]
    files = sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and not p.relative_to(out).as_posix().startswith(("tensorboard", "backup", "checkpoints"))
    )
    metrics = json.loads((out / "metrics.json").read_text())
    return history, files, (out / "config.json").read_bytes(), sorted(metrics)


def _train_left(out):
    assert not (out / "metrics.json").exists() and not (out / "model.keras").exists()
    assert len((out / "history.csv").read_text().splitlines()) == 2  # the header and the first epoch
    assert any((out / "backup").iterdir())  # what the rerun resumes from


def _tune_setup(inputs, folder):
    out = folder / "search"
    return [
        "--dataset",
        "synthetic",
        "--config",
        str(inputs["tune_yaml"]),
        "--output-dir",
        str(out),
        "--max-trials",
        "2",
        "--quiet",
    ], out


def _trials(out):
    """The search's trial.json files, in trial order."""
    return sorted(
        (json.loads(p.read_text()) for p in out.glob("search/trial_*/trial.json")), key=lambda t: t["trial_id"]
    )


def _tune_outputs(out):
    trials = _trials(out)
    best = json.loads((out / "best_hparams.json").read_text())
    return (
        [(t["trial_id"], t["status"], t["hyperparameters"]["values"]) for t in trials],
        sorted(best["hyperparameters"]),
        (out / "config.json").read_bytes(),
    )


def _tune_left(out):
    assert not (out / "best_hparams.json").exists()
    # paused in the second trial: the first one finished, the second one has to be run again
    statuses = {trial["trial_id"]: trial["status"] for trial in _trials(out)}
    assert statuses.get("0") == "COMPLETED" and statuses.get("1") != "COMPLETED", statuses


def _run_copy(inputs, folder):
    run = folder / "run"
    shutil.copytree(inputs["run"], run, ignore=shutil.ignore_patterns("evaluation*"))
    return run


def _evaluate_setup(inputs, folder):
    run = _run_copy(inputs, folder)
    out = folder / "evaluation"
    return ["--run-dir", str(run), "--partition", "devel", "--plot-first", "1", "--output-dir", str(out)], out


def _evaluate_outputs(out):
    folder = next(out.rglob("report.json")).parent  # <output dir>/<partition>
    report = json.loads((folder / "report.json").read_text())
    return folder.name, tree(folder, skip=("report.json",)), without(report, {"run_dir", "output_dir"})


def _evaluate_left(out):
    assert not list(out.rglob("report.json"))


def _export_setup(inputs, folder):
    run = _run_copy(inputs, folder)
    out = folder / "models"
    return ["--run-dir", str(run), "--name", "cold", "--base-dir", str(out), "--warmup-recordings", "2"], out


@contextlib.contextmanager
def _export_without_check():
    from pipelines.serving import export as export_lib

    with mock.patch.object(export_lib, "run", functools.partial(export_lib.run, verify=False)):
        yield


def _export_outputs(out):
    versions = sorted(p.name for p in (out / "cold").iterdir() if not p.name.startswith("."))
    version = out / "cold" / versions[0]
    files = sorted(p.relative_to(version).as_posix() for p in version.rglob("*") if p.is_file())
    warmup = next(version.rglob("tf_serving_warmup_requests")).read_bytes()
    config = (out / "cold" / "models.config").read_text().replace(str(out), "BASE")
    return versions, files, hashlib.sha256(warmup).hexdigest(), config


def _export_left(out):
    model_root = out / "cold"
    assert not any(p.name.isdigit() for p in model_root.iterdir())
    assert not (model_root / "models.config").exists()


def _predict_setup(inputs, folder):
    run = _run_copy(inputs, folder)
    corpus = next((Path(inputs["run"]).parent / "cache" / "synthetic").glob("*/synthetic.json")).parent
    out = folder / "predictions"
    # With its progress bar: an interrupt's message must still be the last line.
    return ["--run-dir", str(run), "--data-dir", str(corpus), "--partition", "all", "--output-dir", str(out)], out


def _predict_outputs(out):
    summary = json.loads((out / "predict.json").read_text())
    return tree(out, skip=("predict.json",)), summary["complete"], summary["recordings"], summary["files"]


def _predict_left(out):
    summary = json.loads((out / "predict.json").read_text())
    assert summary["complete"] is False
    assert len(list(out.glob("*.csv"))) == 1  # the one recording finished before the pause


STAGES = {
    "example_gen": Stage("example_gen", "example_gen.shard", _example_gen_setup, _example_gen_outputs, _no_manifest),
    "statistics": Stage(
        "statistics_gen",
        "statistics.computed",
        lambda i, f: _copy_artefacts(i, f, "examples"),
        lambda out: tree(out),
        _statistics_left,
    ),
    "transform": Stage(
        "transform",
        "transform.fitted",
        lambda i, f: _copy_artefacts(i, f, "statistics"),
        lambda out: tree(out),
        _transform_left,
    ),
    "train": Stage("train", "train.epoch", _train_setup, _train_outputs, _train_left),
    "tune": Stage("tune", "tune.epoch", _tune_setup, _tune_outputs, _tune_left, count=2),
    "evaluate": Stage("evaluate", "evaluate.partial", _evaluate_setup, _evaluate_outputs, _evaluate_left),
    "export": Stage(
        "export", "export.saved", _export_setup, _export_outputs, _export_left, in_process=_export_without_check
    ),
    "predict": Stage("predict", "predict.recording", _predict_setup, _predict_outputs, _predict_left),
}


# --------------------------------------------------------------------------- shared inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Lazily built inputs: the AVEC corpus, ExampleGen/statistics artefacts, tiny configs and a run."""
    root = tmp_path_factory.mktemp("interruptions")
    built = {"cache": root / "cache"}

    class Inputs(dict):
        def __missing__(self, key):
            if key == "avec":
                write_avec_fixture(root / "avec", recordings=AVEC_NAMES, num_frames=30)
                self[key] = root / "avec"
            elif key == "examples":
                argv, out = _example_gen_setup(self, root / "examples-src")
                run_main(STAGES["example_gen"], argv, built["cache"])
                self[key] = out
            elif key == "statistics":
                out = root / "statistics-src"
                shutil.copytree(self["examples"], out)
                run_main(STAGES["statistics"], ["--artifact-dir", str(out)], built["cache"])
                self[key] = out
            elif key in ("tiny_yaml", "tune_yaml"):
                config = (
                    TINY_TRAINING
                    if key == "tiny_yaml"
                    else {**TINY_TRAINING, "training": {**TINY_TRAINING["training"], "epochs": 1}}
                )
                path = root / f"{key}.yaml"
                path.write_text(yaml.safe_dump(config))
                self[key] = path
            elif key == "run":
                self[key] = evaluation_helpers.tiny_run(tmp_path_factory, "regression")
            else:
                raise KeyError(key)
            return self[key]

    table = Inputs(built)
    table.references = {}
    return table


def reference(inputs, name, tmp_path_factory):
    """The outputs of an uninterrupted run of the stage's command (once per stage)."""
    if name not in inputs.references:
        stage = STAGES[name]
        argv, out = stage.setup(inputs, tmp_path_factory.mktemp(f"reference-{name}"))
        run_main(stage, argv, inputs["cache"])
        inputs.references[name] = stage.outputs(out)
    return inputs.references[name]


def start_paused(stage, argv, folder, cache):
    """Starts the command in a subprocess and waits until it sits at the stage's pause point."""
    marker = folder / "paused"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "COLD_KERAS_CACHE": str(cache),
        "COLD_KERAS_PAUSE_AT": stage.point,
        "COLD_KERAS_PAUSE_COUNT": str(stage.count),
        "COLD_KERAS_PAUSE_FILE": str(marker),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", f"pipelines.{stage.module}", *argv],
        env=env,
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 600
    while not marker.exists():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"{stage.module} ended (code {process.returncode}) before {stage.point}:\n{err[-3000:]}")
        if time.time() > deadline:
            process.kill()
            pytest.fail(f"{stage.module} did not reach {stage.point}")
        time.sleep(0.05)
    return process


@dataclasses.dataclass
class Interrupted:
    argv: list
    out: Path  # the stage's output folder, inside `folder`
    folder: Path  # the command's working folder: every path it was given is in here
    states: dict  # signal -> a copy of `folder` as that signal left it
    returncode: int  # of the SIGINT
    stderr: str  # of the SIGINT


@pytest.fixture(scope="module")
def interrupted(inputs, tmp_path_factory):
    """name -> `Interrupted`: the stage's command paused once, its state copied for SIGKILL, then SIGINT."""
    done = {}

    def get(name):
        if name not in done:
            stage = STAGES[name]
            folder = tmp_path_factory.mktemp(f"interrupted-{name}")
            argv, out = stage.setup(inputs, folder)
            process = start_paused(stage, argv, folder, inputs["cache"])
            states = tmp_path_factory.mktemp(f"states-{name}")
            process.send_signal(signal.SIGSTOP)
            try:
                shutil.copytree(folder, states / "SIGKILL", symlinks=True)
            finally:
                process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=300)
            shutil.copytree(folder, states / "SIGINT", symlinks=True)
            done[name] = Interrupted(
                argv,
                out,
                folder,
                {signal.SIGKILL: states / "SIGKILL", signal.SIGINT: states / "SIGINT"},
                process.returncode,
                stderr,
            )
        return done[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("kill", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("name", list(STAGES))
def test_interrupted_stage_completes_like_an_uninterrupted_run(inputs, interrupted, tmp_path_factory, name, kill):
    stage = STAGES[name]
    expected = reference(inputs, name, tmp_path_factory)
    stopped = interrupted(name)
    if kill == signal.SIGINT:
        assert stopped.returncode == 130, stopped.stderr[-3000:]
        assert stopped.stderr.strip().splitlines()[-1] == (
            "interrupted: everything written so far is kept; run the same command again to resume"
        )
        assert "Traceback" not in stopped.stderr
    shutil.rmtree(stopped.folder)
    shutil.copytree(stopped.states[kill], stopped.folder, symlinks=True)
    stage.left_behind(stopped.out)

    run_main(stage, stopped.argv, inputs["cache"])
    assert stage.outputs(stopped.out) == expected
