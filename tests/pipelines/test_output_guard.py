"""Every command that writes checks its output folder (or file) first: a file in its place, a path
under a file, or a folder that cannot be created is one line `error: <path>: <flag> ...`, exit 2, no
traceback, nothing written, and nothing heavy started (TensorFlow, a model, a corpus). The commands
run in this process with their heavy entry points replaced by a function that fails the test."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from pipelines.core import cli
from pipelines.core.errors import ConfigError

UNCREATABLE = "/proc/cold_keras_x"


def _folder_commands():
    """(id, module, argv builder taking (output path, tmp_path), flag, heavy entry points "module:name")."""
    missing = lambda tmp: str(tmp / "missing")  # noqa: E731 - a folder that does not exist (and is not made)
    return [
        ("train", "pipelines.train", lambda out, tmp: ["--dataset", "synthetic", "--output-dir", out],
         "--output-dir", ["pipelines.training.train:run", "pipelines.training.lr_finder:run"]),
        ("tune", "pipelines.tune", lambda out, tmp: ["--dataset", "synthetic", "--output-dir", out],
         "--output-dir", ["pipelines.training.tune:run"]),
        ("ablate", "pipelines.ablate", lambda out, tmp: ["--dataset", "synthetic", "--output-dir", out],
         "--output-dir", ["pipelines.experiments.ablate:run"]),
        ("benchmark", "pipelines.benchmark", lambda out, tmp: ["--dataset", "synthetic", "--output-dir", out],
         "--output-dir", ["pipelines.experiments.benchmark:run"]),
        ("evaluate output", "pipelines.evaluate", lambda out, tmp: ["--run-dir", missing(tmp), "--output-dir", out],
         "--output-dir", ["pipelines.evaluation.evaluate:run"]),
        ("evaluate run", "pipelines.evaluate", lambda out, tmp: ["--run-dir", out],
         "--run-dir", ["pipelines.evaluation.evaluate:run"]),
        ("export", "pipelines.export", lambda out, tmp: ["--run-dir", missing(tmp), "--name", "m", "--base-dir", out],
         "--base-dir", ["pipelines.serving.export:run", "pipelines.runs.folders:load_inference_model"]),
        ("predict", "pipelines.predict",
         lambda out, tmp: ["--run-dir", missing(tmp), "--data-dir", missing(tmp), "--output-dir", out],
         "--output-dir", ["pipelines.serving.predict:run", "pipelines.runs.folders:load_inference_model"]),
        ("example_gen", "pipelines.example_gen",
         lambda out, tmp: ["--dataset", "synthetic", "--data-dir", missing(tmp), "--output-dir", out],
         "--output-dir", ["pipelines.components.example_gen:run", "pipelines.datasets:open_corpus"]),
        ("statistics_gen", "pipelines.statistics_gen", lambda out, tmp: ["--artifact-dir", out],
         "--artifact-dir", ["pipelines.components.statistics_gen:run"]),
        ("transform", "pipelines.transform", lambda out, tmp: ["--artifact-dir", out],
         "--artifact-dir", ["pipelines.components.transform:run"]),
        ("uncertainty", "pipelines.uncertainty", lambda out, tmp: ["--run-dir", out],
         "--run-dir", ["pipelines.runs.folders:open_run", "pipelines.runs.folders:load_inference_model"]),
        ("ensemble", "pipelines.ensemble",
         lambda out, tmp: ["--runs", f"{missing(tmp)}_a,{missing(tmp)}_b", "--output-dir", out],
         "--output-dir", ["pipelines.experiments.ensemble:run"]),
        ("serve_client", "pipelines.serve_client",
         lambda out, tmp: ["--model", "m", "--run-dir", missing(tmp), "--output-dir", out],
         "--output-dir", ["pipelines.serving.client:run"]),
    ]  # fmt: skip


def _file_commands():
    """The same for commands whose output is a file."""
    runs = lambda tmp: [str(tmp / "missing_a"), str(tmp / "missing_b")]  # noqa: E731
    return [
        ("compare output", "pipelines.compare", lambda out, tmp: [*runs(tmp), "--output", out],
         "--output", ["pipelines.experiments.compare:run"]),
        ("compare plot", "pipelines.compare", lambda out, tmp: [*runs(tmp), "--uncertainty-plot", out],
         "--uncertainty-plot",
         ["pipelines.experiments.compare:run", "pipelines.evaluation.uncertainty_report:compare_runs"]),
    ]  # fmt: skip


def _bad_folders(tmp: Path):
    a_file = tmp / "a_file.txt"
    a_file.write_text("x\n")
    return {
        "existing file": (a_file, "is a file"),
        "under a file": (a_file / "sub" / "out", "lies under a file"),
        "uncreatable": (Path(UNCREATABLE), "cannot be created or written"),
    }


def _bad_files(tmp: Path):
    a_file = tmp / "a_file.txt"
    a_file.write_text("x\n")
    (tmp / "a_folder").mkdir()
    return {
        "existing folder": (tmp / "a_folder", "is a folder"),
        "under a file": (a_file / "out.json", "lies under a file"),
        "uncreatable": (Path(UNCREATABLE) / "out.json", "cannot be created or written"),
    }


def _forbid_heavy_work(monkeypatch, targets):
    for target in targets:
        module, name = target.split(":")

        def heavy(*args, _target=target, **kwargs):
            raise AssertionError(f"{_target} started before the output was checked")

        monkeypatch.setattr(importlib.import_module(module), name, heavy)


def _tree(root: Path) -> dict:
    """Every path under `root`, with the bytes of the files (a folder's mtime may change: the write probe)."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in root.rglob("*")}


def _run_main(module, argv, capsys):
    with pytest.raises(SystemExit) as caught:
        importlib.import_module(module).main([str(a) for a in argv])
    captured = capsys.readouterr()
    return caught.value.code, captured.out, captured.err


def _check(module, argv, flag, path, words, tmp_path, capsys):
    before = _tree(tmp_path)
    code, out, err = _run_main(module, argv, capsys)
    assert code == 2, (code, out, err)
    assert "Traceback" not in err + out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert flag in lines[0] and str(path) in lines[0] and words in lines[0], lines[0]
    assert _tree(tmp_path) == before  # nothing written, not even the folder
    assert not Path(UNCREATABLE).exists()


@pytest.mark.parametrize("case", ["existing file", "under a file", "uncreatable"])
@pytest.mark.parametrize("command", _folder_commands(), ids=lambda c: c[0])
def test_a_bad_output_folder_is_one_line_before_any_work(command, case, tmp_path, monkeypatch, capsys):
    _, module, argv, flag, heavy = command
    monkeypatch.setenv("COLD_KERAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # a default folder would be made here, never in the repository
    path, words = _bad_folders(tmp_path)[case]
    _forbid_heavy_work(monkeypatch, heavy)
    _check(module, argv(str(path), tmp_path), flag, path, words, tmp_path, capsys)


@pytest.mark.parametrize("case", ["existing folder", "under a file", "uncreatable"])
@pytest.mark.parametrize("command", _file_commands(), ids=lambda c: c[0])
def test_a_bad_output_file_is_one_line_before_any_work(command, case, tmp_path, monkeypatch, capsys):
    _, module, argv, flag, heavy = command
    monkeypatch.chdir(tmp_path)
    path, words = _bad_files(tmp_path)[case]
    _forbid_heavy_work(monkeypatch, heavy)
    _check(module, argv(str(path), tmp_path), flag, path, words, tmp_path, capsys)


def test_export_checks_the_model_folder_under_the_base_dir(tmp_path, monkeypatch, capsys):
    (tmp_path / "m").write_text("x\n")  # <base-dir>/<name> is a file
    _forbid_heavy_work(monkeypatch, ["pipelines.serving.export:run", "pipelines.runs.folders:load_inference_model"])
    argv = ["--run-dir", tmp_path / "missing", "--name", "m", "--base-dir", tmp_path]
    _check("pipelines.export", argv, "--base-dir/--name", tmp_path / "m", "is a file", tmp_path, capsys)


def test_evaluate_checks_the_evaluation_folder_of_the_run(tmp_path, monkeypatch, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "evaluation").write_text("x\n")
    _forbid_heavy_work(monkeypatch, ["pipelines.evaluation.evaluate:run"])
    argv = ["--run-dir", tmp_path / "run"]
    _check("pipelines.evaluate", argv, "--run-dir", tmp_path / "run" / "evaluation", "is a file", tmp_path, capsys)


GOOD_NEW_FOLDER = {
    "predict": ("pipelines.predict", ["--run-dir", "r", "--data-dir", "d", "--output-dir", "{out}"]),
    "example_gen": ("pipelines.example_gen", ["--dataset", "synthetic", "--data-dir", "d", "--output-dir", "{out}"]),
    "ensemble": ("pipelines.ensemble", ["--runs", "a,b", "--output-dir", "{out}"]),
    "export": ("pipelines.export", ["--run-dir", "r", "--name", "m", "--base-dir", "{out}"]),
    "evaluate": ("pipelines.evaluate", ["--run-dir", "r", "--output-dir", "{out}"]),
    "serve_client": ("pipelines.serve_client", ["--model", "m", "--run-dir", "r", "--output-dir", "{out}"]),
}

LIBRARY_OF = {
    "predict": "pipelines.serving.predict",
    "example_gen": "pipelines.components.example_gen",
    "ensemble": "pipelines.experiments.ensemble",
    "export": "pipelines.serving.export",
    "evaluate": "pipelines.evaluation.evaluate",
    "serve_client": "pipelines.serving.client",
}


@pytest.mark.parametrize("command", sorted(GOOD_NEW_FOLDER))
def test_a_good_new_folder_passes_the_check_without_being_made(command, tmp_path, monkeypatch):
    """The check-only guard leaves a new folder to the command, which makes it once its inputs read."""
    module, argv = GOOD_NEW_FOLDER[command]
    out = tmp_path / "new" / "deeper"
    calls = []
    target = importlib.import_module(module)
    library = importlib.import_module(LIBRARY_OF[command])  # where the command's work is
    if command == "example_gen":
        import pipelines.datasets

        monkeypatch.setattr(pipelines.datasets, "open_corpus", lambda *args, **kwargs: calls.append(args))
        monkeypatch.setattr(library, "run", lambda *args, **kwargs: None)
    else:
        monkeypatch.setattr(library, "run", lambda *args, **kwargs: calls.append(args))
    target.main([value.replace("{out}", str(out)) for value in argv])
    assert calls, "the command's work did not start"
    assert not (tmp_path / "new").exists()
    assert not list(tmp_path.rglob(".write-check-*"))


def test_the_guard_creates_only_when_asked(tmp_path):
    made = tmp_path / "made" / "here"
    assert cli.check_output_dir(made, "--output-dir") == made and made.is_dir()
    assert cli.check_output_dir(tmp_path / "not" / "made", "--output-dir", create=False) == tmp_path / "not" / "made"
    assert cli.check_output_file(tmp_path / "new" / "report.json", "--output") == tmp_path / "new" / "report.json"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["here", "made"]
    (made / "a_file").write_text("x\n")
    with pytest.raises(ConfigError, match="--run-dir is a file"):
        cli.check_output_dir(made / "a_file", "--run-dir", create=False)
    with pytest.raises(ConfigError, match="--output is a folder"):
        cli.check_output_file(made, "--output")
