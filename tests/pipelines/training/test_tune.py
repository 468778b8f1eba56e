"""Tests of `python -m pipelines.tune` on a tiny synthetic corpus: search, resume, results, HParams,
and KerasTuner's chief/worker protocol."""

from __future__ import annotations

import glob
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.pipelines.commands import run_command

REPO = Path(__file__).resolve().parents[3]
LAMBDAS = ("lambda_co_visual", "lambda_co_audio", "lambda_co_cross", "lambda_regu")

TINY = {
    "synthetic": {
        "seed": 3,
        "num_train": 3,
        "num_devel": 2,
        "num_test": 2,
        "duration_seconds": 24.0,
        "audio_dim": 6,
        "visual_dim": 8,
    },
    "model": {"gru_units": 4, "gru_layers": 1, "latent_dim": 4},
    "training": {"epochs": 1, "window_seconds": 6.0, "window_hop_seconds": 3.0, "batch_size": 4},
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    os.environ["COLD_KERAS_CACHE"] = str(root)
    return root


def environment(cache, **extra):
    env = {key: value for key, value in os.environ.items() if not key.startswith("KERASTUNER_")}
    return {**env, "COLD_KERAS_CACHE": str(cache), "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def tune_cli(args, cache):
    """`python -m pipelines.tune ARGS`, run in this process (the distributed search below starts real ones)."""
    return run_command("tune", args, cache)


def read_trials(project: Path) -> dict:
    return {
        path.parent.name.removeprefix("trial_"): json.loads(path.read_text())
        for path in sorted(project.glob("trial_*/trial.json"))
    }


def printed_table(stdout: str):
    """(header, rows) of the trial table the command prints after the search."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if " trials in " in line) + 1
    header = lines[start].split()
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows.append(dict(zip(header, line.split())))
    return header, rows


@pytest.fixture(scope="module")
def search(cache, tmp_path_factory):
    """Two trials, then the same command with --max-trials 3; snapshots of the project after each."""
    tmp = tmp_path_factory.mktemp("tune")
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp / "search"
    args = ["--dataset", "synthetic", "--config", str(config), "--tuner", "random", "--output-dir", str(out), "--quiet"]
    first = tune_cli(args + ["--max-trials", "2"], cache)
    assert first.returncode == 0, first.stderr[-3000:]
    after_first = read_trials(out / "search")
    checkpoints = {path: path.stat().st_mtime_ns for path in (out / "search").glob("trial_*/checkpoint*")}
    best_first = json.loads((out / "best_hparams.json").read_text())
    second = tune_cli(args + ["--max-trials", "3"], cache)
    assert second.returncode == 0, second.stderr[-3000:]
    return {
        "out": out,
        "config": config,
        "first": first,
        "second": second,
        "after_first": after_first,
        "after_second": read_trials(out / "search"),
        "checkpoints": checkpoints,
        "best_first": best_first,
    }


def test_two_trials_and_a_table_sorted_by_score(search):
    trials = search["after_first"]
    assert sorted(trials) == ["0", "1"]
    assert all(trial["status"] == "COMPLETED" for trial in trials.values())
    header, rows = printed_table(search["first"].stdout)
    assert header == ["trial", *LAMBDAS, "val_ccc_mean", "status"]
    assert sorted(row["trial"] for row in rows) == ["0", "1"]
    for row in rows:
        trial = trials[row["trial"]]
        # One epoch per trial: the score is that epoch's val_ccc_mean.
        (observation,) = trial["metrics"]["metrics"]["val_ccc_mean"]["observations"]
        assert float(row["val_ccc_mean"]) == pytest.approx(observation["value"][0], abs=5e-5)
        assert trial["score"] == pytest.approx(observation["value"][0])
        for name in LAMBDAS:
            assert float(row[name]) == pytest.approx(trial["hyperparameters"]["values"][name], rel=5e-3)
        assert row["status"] == "COMPLETED"
    scores = [float(row["val_ccc_mean"]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(math.isfinite(score) for score in scores)


def test_resume_with_more_trials_runs_exactly_one_new_trial(search):
    before, after = search["after_first"], search["after_second"]
    assert sorted(after) == ["0", "1", "2"]
    for trial_id, trial in before.items():
        assert after[trial_id] == trial, f"finished trial {trial_id} was changed by the resumed search"
    for path, mtime in search["checkpoints"].items():
        assert path.stat().st_mtime_ns == mtime, path
    stdout = search["second"].stdout
    assert "Reloading Tuner" in stdout
    assert [line for line in stdout.splitlines() if line.startswith("trial ") and " on tuner " in line] == [
        "trial 2 on tuner tuner0"
    ]
    assert after["2"]["status"] == "COMPLETED"
    assert sorted(row["trial"] for row in printed_table(stdout)[1]) == ["0", "1", "2"]
    # Finished trials leave no backup behind (BackupAndRestore deletes it when a trial ends).
    assert not any((search["out"] / "backups").rglob("*.h5"))


def test_lambdas_are_log_uniform_over_the_papers_range(search):
    import keras_tuner

    trials = search["after_second"]
    values = np.array([[trial["hyperparameters"]["values"][name] for name in LAMBDAS] for trial in trials.values()])
    assert np.all((values >= 1e-5) & (values <= 1e5))
    space = keras_tuner.HyperParameters.from_config(trials["0"]["hyperparameters"])
    assert sorted(hp.name for hp in space.space) == sorted(LAMBDAS)
    for hp in space.space:
        assert (hp.min_value, hp.max_value, hp.sampling) == (1e-5, 1e5, "log"), hp.name
    # KerasTuner's own sampler on the declared space: log10 of the samples is uniform on [-5, 5]
    # (a linear scale would put 99 % of them above 1e3).
    from scipy import stats

    hp = space.space[0]
    samples = np.log10([hp.random_sample(seed) for seed in range(2000)])
    assert stats.kstest((samples + 5) / 10, "uniform").pvalue > 1e-3
    assert np.mean(samples < 3) == pytest.approx(0.8, abs=0.05)


def test_best_hparams_json_round_trips_into_the_trainer(search):
    from pipelines import train as train_command
    from pipelines.config import files as config_lib
    from pipelines.config import flags as run_options

    path = search["out"] / "best_hparams.json"
    best = json.loads(path.read_text())
    trials = search["after_second"]
    best_id = max(trials, key=lambda trial_id: trials[trial_id]["score"])
    assert best["trial_id"] == best_id and best["objective"] == "val_ccc_mean"
    assert best["score"] == pytest.approx(trials[best_id]["score"])
    assert best["hyperparameters"] == pytest.approx(
        {name: trials[best_id]["hyperparameters"]["values"][name] for name in LAMBDAS}
    )
    assert config_lib.load_hparams(path) == {"model": best["hyperparameters"]}
    args = train_command.parse_args(
        ["--dataset", "synthetic", "--config", str(search["config"]), "--hparams", str(path)]
    )
    config = run_options.build_config(args)
    for name in LAMBDAS:
        assert getattr(config.model, name) == pytest.approx(best["hyperparameters"][name])
    # A flag still wins over the tuned value.
    args = train_command.parse_args(["--dataset", "synthetic", "--hparams", str(path), "--lambda-regu", "0.5"])
    assert run_options.build_config(args).model.lambda_regu == 0.5


def test_trial_table_puts_failed_trials_last():
    from types import SimpleNamespace

    from pipelines.training import tune_report

    def trial(trial_id, score, status="COMPLETED"):
        values = {name: 10.0 ** (i - 2) for i, name in enumerate(LAMBDAS)}
        return SimpleNamespace(
            trial_id=trial_id, score=score, status=status, hyperparameters=SimpleNamespace(values=values)
        )

    oracle = SimpleNamespace(
        trials={
            t.trial_id: t
            for t in (trial("0", 0.1), trial("1", None, "FAILED"), trial("2", 0.4), trial("3", float("nan"), "INVALID"))
        }
    )
    rows = tune_report.trial_rows(oracle, LAMBDAS)
    assert [row["trial_id"] for row in rows] == ["2", "0", "1", "3"]
    table = tune_report.format_trials(rows, LAMBDAS, "val_ccc_mean").splitlines()
    assert table[0].split() == ["trial", *LAMBDAS, "val_ccc_mean", "status"]
    assert table[1].split() == ["2", "0.01", "0.1", "1", "10", "0.4000", "COMPLETED"]
    assert table[3].split()[-2:] == ["-", "FAILED"]


def hparams_events(event_file):
    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2

    found = []
    for event in tf.compat.v1.train.summary_iterator(event_file):
        for value in event.summary.value:
            if value.metadata.plugin_data.plugin_name == "hparams":
                found.append(plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content))
    return found


def test_hparams_dashboard_summaries(search):
    out, trials = search["out"], search["after_second"]
    (experiment_file,) = glob.glob(str(out / "tensorboard" / "events.out.tfevents*"))
    (experiment,) = [data.experiment for data in hparams_events(experiment_file) if data.HasField("experiment")]
    assert sorted(hp.name for hp in experiment.hparam_infos) == sorted(LAMBDAS)
    assert [(m.name.group, m.name.tag) for m in experiment.metric_infos][0] == ("validation", "epoch_ccc_mean")
    for trial_id, trial in trials.items():
        session = out / "tensorboard" / trial_id / "execution0"
        starts = [
            data.session_start_info
            for event_file in glob.glob(str(session / "events.out.tfevents*"))
            for data in hparams_events(event_file)
            if data.HasField("session_start_info")
        ]
        assert len(starts) == 1, trial_id
        logged = {name: value.number_value for name, value in starts[0].hparams.items()}
        assert logged == pytest.approx({name: trial["hyperparameters"]["values"][name] for name in LAMBDAS})
        assert glob.glob(str(session / "validation" / "events.out.tfevents*"))


def test_changed_settings_in_a_search_dir_are_refused(search, cache):
    result = tune_cli(
        [
            "--dataset",
            "synthetic",
            "--config",
            str(search["config"]),
            "--output-dir",
            str(search["out"]),
            "--tuner",
            "hyperband",
            "--max-trials",
            "3",
        ],
        cache,
    )
    assert result.returncode == 2
    assert "tuning.tuner: 'random' -> 'hyperband'" in result.stderr and "Traceback" not in result.stderr


def test_a_model_without_loss_weights_needs_the_learning_rate_flag(cache, tmp_path):
    result = tune_cli(
        ["--dataset", "synthetic", "--model", "context_fusion", "--output-dir", str(tmp_path / "out")],
        cache,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: --model context_fusion has no loss weights to tune (only cold_fusion "
        "has); pass --tune-learning-rate to search its learning rate"
    )


@pytest.mark.slow
def test_bayesian_search_runs_and_stays_in_the_range(search, cache, tmp_path):
    out = tmp_path / "bayesian"
    result = tune_cli(
        [
            "--dataset",
            "synthetic",
            "--config",
            str(search["config"]),
            "--tuner",
            "bayesian",
            "--max-trials",
            "2",
            "--output-dir",
            str(out),
            "--quiet",
        ],
        cache,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    best = json.loads((out / "best_hparams.json").read_text())
    names = {"lambda_co_visual", "lambda_co_audio", "lambda_co_cross", "lambda_regu"}
    assert set(best["hyperparameters"]) == names
    assert all(1e-5 <= value <= 1e5 for value in best["hyperparameters"].values())
    assert len(read_trials(out / "search")) == 2


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_distributed_search_with_a_chief_and_two_workers(search, cache, tmp_path):
    """The same command on three processes: the chief runs the oracle, the workers the trials."""
    out = tmp_path / "distributed"
    args = [
        sys.executable,
        "-m",
        "pipelines.tune",
        "--dataset",
        "synthetic",
        "--config",
        str(search["config"]),
        "--max-trials",
        "2",
        "--output-dir",
        str(out),
        "--quiet",
    ]
    port = str(free_port())
    processes, logs = {}, {}
    try:
        for tuner_id in ("chief", "tuner0", "tuner1"):
            env = environment(
                cache, KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=port
            )
            logs[tuner_id] = (tmp_path / f"{tuner_id}.out", tmp_path / f"{tuner_id}.err")
            with open(logs[tuner_id][0], "w") as stdout, open(logs[tuner_id][1], "w") as stderr:
                processes[tuner_id] = subprocess.Popen(args, cwd=REPO, env=env, stdout=stdout, stderr=stderr)
        deadline = time.time() + 240
        for process in processes.values():
            process.wait(timeout=max(1.0, deadline - time.time()))
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    outputs = {tuner_id: (stdout.read_text(), stderr.read_text()) for tuner_id, (stdout, stderr) in logs.items()}
    for tuner_id, process in processes.items():
        assert process.returncode == 0, f"{tuner_id}: {outputs[tuner_id][1][-3000:]}"

    def ran(stdout):
        return [line.split()[1] for line in stdout.splitlines() if line.startswith("trial ") and " on tuner " in line]

    assert ran(outputs["chief"][0]) == []
    by_worker = {tuner_id: ran(outputs[tuner_id][0]) for tuner_id in ("tuner0", "tuner1")}
    assert sorted(by_worker["tuner0"] + by_worker["tuner1"]) == ["0", "1"], by_worker
    trials = read_trials(out / "search")
    assert sorted(trials) == ["0", "1"]
    assert all(trial["status"] == "COMPLETED" for trial in trials.values())
    best = json.loads((out / "best_hparams.json").read_text())
    assert best["trial_id"] == max(trials, key=lambda trial_id: trials[trial_id]["score"])
    assert sorted(row["trial"] for row in printed_table(outputs["chief"][0])[1]) == ["0", "1"]
    for tuner_id in ("tuner0", "tuner1"):
        assert "the chief writes the results" in outputs[tuner_id][0]
