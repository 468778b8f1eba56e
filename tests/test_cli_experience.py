"""What a user sees from the commands: help for every flag, quiet start-up, and one-line errors that
blame the right flag, file or key. The commands run as subprocesses, as a user runs them."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parents[1]
COMMANDS = (
    "train",
    "tune",
    "evaluate",
    "export",
    "prepare",
    "compare",
    "ablate",
    "serve_client",
    "example_gen",
    "predict",
    "ensemble",
    "uncertainty",
    "benchmark",
    "statistics_gen",
    "transform",
)
# What TensorFlow, absl, oneDNN, CUDA, tensorflow-io and Keras print at start-up or around `fit`.
NOISE = re.compile(
    r"(^[IWE]\d{4} |absl::InitializeLog|oneDNN|cuda|cpu_feature_guard|libtensorflow_io|"
    r"undefined symbol|file system plugins|shuffle=True|ran out of data|Traceback)",
    re.M | re.I,
)


def _env(cache):
    env = {
        key: value for key, value in os.environ.items() if key not in ("TF_CPP_MIN_LOG_LEVEL", "COLD_KERAS_VERBOSE")
    }  # the commands' own defaults
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["COLD_KERAS_CACHE"] = str(cache)
    return env


def start(command, args, cache, cwd=REPO):
    return subprocess.Popen(
        [sys.executable, "-m", f"pipelines.{command}", *args],
        cwd=cwd,
        env=_env(cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process, timeout=300):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def run(command, args, cache, **kwargs):
    return finish(start(command, args, cache, **kwargs))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cli-cache")


def test_every_command_has_help_without_noise(cache):
    processes = {command: start(command, ["--help"], cache) for command in COMMANDS}
    for command, process in processes.items():
        code, out, err = finish(process)
        assert code == 0, (command, err[-2000:])
        assert out.startswith(f"usage: python -m pipelines.{command}"), (command, out[:200])
        assert "-v, --verbose" in out, command
        assert "(default: None)" not in out and "(default: False)" not in out, command
        assert not NOISE.search(out + err), (command, NOISE.search(out + err).group(0))


def _parsers(module):
    """The argparse parsers a command builds, captured instead of parsing."""
    captured = []

    def capture(self, *args, **kwargs):
        captured.append(self)
        raise SystemExit(0)

    # `capture` leaves through SystemExit, as argparse itself does.
    with mock.patch.object(argparse.ArgumentParser, "parse_args", capture), contextlib.suppress(SystemExit):
        if hasattr(module, "parse_args"):
            module.parse_args([])
        elif hasattr(module, "build_parser"):
            captured.append(module.build_parser())
        else:
            module.main([])
    assert captured, f"{module.__name__} built no argument parser"
    return captured


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_has_help_text(command):
    import importlib

    parsers = _parsers(importlib.import_module(f"pipelines.{command}"))
    assert parsers, command
    for parser in parsers:
        missing = [action.option_strings or action.dest for action in parser._actions if not action.help]
        assert not missing, (command, missing)


def _one_error_line(code, out, err):
    assert code == 2, (code, out[-500:], err[-2000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert not NOISE.search(out + err), err
    return lines[0]


def test_bad_invocations_blame_the_flag_file_or_key(cache, tmp_path):
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("x\n")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# no overrides\n")
    bad_key = tmp_path / "bad_key.yaml"
    bad_key.write_text("training:\n  backup_every_steps: 0\n")
    cases = {
        "proc": (["--dataset", "synthetic", "--output-dir", "/proc/x"], ["--output-dir", "/proc/x"]),
        "file as output": (
            ["--dataset", "synthetic", "--output-dir", str(a_file)],
            ["--output-dir", str(a_file), "is a file"],
        ),
        "epochs": (["--dataset", "synthetic", "--epochs", "-1"], ["argument --epochs", "positive integer", "-1"]),
        "batch size": (["--dataset", "synthetic", "--batch-size", "x"], ["argument --batch-size"]),
        "data dir file": (["--dataset", "avec", "--data-dir", str(a_file)], ["--data-dir", str(a_file), "is a file"]),
        # An empty --config means no overrides: the error is then about the next bad flag.
        "empty config": (
            ["--dataset", "synthetic", "--config", str(empty), "--output-dir", str(a_file)],
            ["--output-dir", str(a_file)],
        ),
        "backup key": (
            ["--dataset", "synthetic", "--config", str(bad_key), "--output-dir", str(tmp_path / "r")],
            ["training.backup_every_steps", str(bad_key)],
        ),
    }
    processes = {name: start("train", args, cache) for name, (args, _) in cases.items()}
    processes["evaluate output"] = start("evaluate", ["--run-dir", str(tmp_path), "--output-dir", str(a_file)], cache)
    processes["prepare"] = start("prepare", [], cache)
    processes["export version"] = start("export", ["--run-dir", str(tmp_path), "--name", "m", "--version", "0"], cache)
    expected = {name: words for name, (_, words) in cases.items()}
    expected["evaluate output"] = ["--output-dir", str(a_file), "is a file"]
    expected["prepare"] = ["--dataset", "--run-dir"]
    expected["export version"] = ["--version"]
    for name, process in processes.items():
        line = _one_error_line(*finish(process))
        for word in expected[name]:
            assert word in line, (name, word, line)
        assert "configs/synthetic.yaml" not in line, (name, line)  # never blames the built-in config file
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_tensorflow_starts_quietly_and_verbose_shows_it(cache, tmp_path):
    """A command that imports TensorFlow (loading a broken model) prints its one-line error and
    nothing of TensorFlow's start-up; -v shows the start-up logging again."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"task": "regression", "model": {"name": "cold_fusion"}}\n')
    (run_dir / "model.keras").write_text("not a model\n")
    quiet = start("export", ["--run-dir", str(run_dir), "--name", "m", "--base-dir", str(tmp_path)], cache)
    verbose = start("export", ["--run-dir", str(run_dir), "--name", "m", "--base-dir", str(tmp_path), "-v"], cache)
    line = _one_error_line(*finish(quiet))
    assert "cannot load the model" in line and str(run_dir / "model.keras") in line
    code, out, err = finish(verbose)
    assert code == 2 and NOISE.search(err), err[-2000:]


def test_startup_noise_filter_keeps_other_lines():
    from pipelines.core import quiet

    text = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796181503.436119    5462 port.cc:153] oneDNN custom operations are on.\n"
        "E0000 00:00:1796181512.714452    5462 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n"
        "E0000 00:00:1796181512.714452    5462 other.cc:52] a real error\n"
        "a line of the program\n"
    )
    assert quiet.filter_startup_noise(text) == (
        "E0000 00:00:1796181512.714452    5462 other.cc:52] a real error\na line of the program\n"
    )
    assert quiet.verbose_requested(["--epochs", "2", "-v"]) and not quiet.verbose_requested(["--epochs", "2"])


def test_help_formatter_shows_only_real_defaults():
    from pipelines.core import cli

    parser = argparse.ArgumentParser(prog="p", formatter_class=cli.HelpFormatter)
    parser.add_argument("--a", help="no default")
    parser.add_argument("--b", default=3, help="three")
    parser.add_argument("--c", default=4, help="four (default from the config)")
    parser.add_argument("--d", action="store_true", help="switch")
    text = " ".join(parser.format_help().split())
    assert "no default (default: None)" not in text and "no default" in text
    assert "three (default: 3)" in text
    assert "four (default from the config)" in text and "(default: 4)" not in text
    assert "switch (default: False)" not in text


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_exported_files_respect_the_umask(tmp_path):
    from pipelines.core import io_utils

    old = os.umask(0o022)
    try:
        private = Path(__import__("tempfile").mkdtemp(dir=tmp_path))
        (private / "variables").mkdir(mode=0o700)
        (private / "variables" / "v.index").write_text("x")
        os.chmod(private / "variables" / "v.index", 0o600)
        io_utils.make_readable(private)
        assert _mode(private) == 0o755 and _mode(private / "variables") == 0o755
        assert _mode(private / "variables" / "v.index") == 0o644
        io_utils.write_text_atomic(tmp_path / "models.config", "model_config_list {}\n")
        assert _mode(tmp_path / "models.config") == 0o644
        os.umask(0o077)
        io_utils.write_text_atomic(tmp_path / "private.txt", "x\n")
        assert _mode(tmp_path / "private.txt") == 0o600
    finally:
        os.umask(old)


def test_stale_temporary_exports_are_cleaned(tmp_path):
    from pipelines.serving import versions

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{versions.TMP_PREFIX}3-{dead.pid}-abc"
    running = tmp_path / f"{versions.TMP_PREFIX}4-{os.getppid()}-abc"
    old_style = tmp_path / f"{versions.TMP_PREFIX}5-xyz"
    fresh_old_style = tmp_path / f"{versions.TMP_PREFIX}6-uvw"
    for path in (stale, running, old_style, fresh_old_style):
        path.mkdir()
    hour_ago = time.time() - 7200
    os.utime(old_style, (hour_ago, hour_ago))
    (tmp_path / "1").mkdir()
    removed = versions.clean_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([stale, old_style])
    assert running.is_dir() and fresh_old_style.is_dir() and (tmp_path / "1").is_dir()


def test_missing_corpus_names_the_command_that_rebuilds(tmp_path):
    from pipelines.core.errors import DataError
    from pipelines.runs import prepare

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(
        '{"dataset": "avec", "data_dir": "%s", "task": "regression", '
        '"runtime": {"artifact_dir": "%s"}}\n' % (tmp_path / "gone", tmp_path / "artifacts")
    )
    with pytest.raises(DataError) as caught:
        prepare.rebuild_run_artifacts(run_dir)
    message = str(caught.value)
    assert f"python -m pipelines.prepare --run-dir {run_dir}" in message and str(tmp_path / "gone") in message


def test_continuing_needs_only_more_epochs():
    from pipelines.runs.checks import epochs_extension

    saved = {"task": "regression", "training": {"epochs": 2, "batch_size": 4}}
    assert epochs_extension(saved, {"task": "regression", "training": {"epochs": 5, "batch_size": 4}}) == (2, 5)
    assert epochs_extension(saved, {"task": "regression", "training": {"epochs": 1, "batch_size": 4}}) is None
    assert epochs_extension(saved, {"task": "regression", "training": {"epochs": 5, "batch_size": 8}}) is None


def test_the_command_list_names_every_command_and_the_readme_lists_the_same():
    from pipelines.__main__ import COMMANDS
    from tests.test_docs import _runnable_modules

    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: cold-keras <command>")
    listed = set(re.findall(r"\[(pipelines\.[\w.]+)\]", result.stdout))
    assert listed == set(_runnable_modules()) - {"pipelines.__main__"}
    assert {f"pipelines.{module}" for module, _ in COMMANDS.values()} == listed
    readme = (REPO / "README.md").read_text()
    assert set(re.findall(r"^\| `python -m (pipelines\.[\w.]+)` \|", readme, re.M)) == listed


def test_cold_keras_runs_a_command_as_python_dash_m_does(tmp_path):
    """The console script (declared in pyproject.toml, installed by the README's commands) and
    `python -m pipelines <command>` give the command's own output and exit code."""
    import shutil

    script = shutil.which("cold-keras")
    assert script, "the console script cold-keras is not installed: pip install -e ."
    argv = ["train", "--dataset", "synthetic", "--epochs", "0"]
    expected = subprocess.run(
        [sys.executable, "-m", "pipelines.train", *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert expected.returncode == 2 and expected.stderr.startswith("error: argument --epochs")
    for command in ([script, *argv], [sys.executable, "-m", "pipelines", *argv]):
        got = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert (got.returncode, got.stdout, got.stderr) == (2, expected.stdout, expected.stderr), command
    unknown = subprocess.run([script, "trian"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: no command 'trian'; the commands are: train, predict, ")
    assert len(unknown.stderr.strip().splitlines()) == 1


def test_output_into_a_closed_pipe_ends_quietly(cache):
    """`python -m pipelines.settings | head -1`: the reader leaves early; no traceback, SIGPIPE's exit code."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.settings"],
        cwd=REPO,
        env=_env(cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # before the command writes its first line
    stderr = process.stderr.read()
    process.wait(timeout=60)
    assert process.returncode == 141, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
