"""The command list: `python -m pipelines --help`, or the console script `cold-keras --help`.

`cold-keras <command> [flags]` (or `python -m pipelines <command> [flags]`) runs the command exactly
as `python -m pipelines.<command> [flags]` does: same flags, same output, same exit codes, same
Ctrl-C handling. `cold-keras <command> --help` explains the command's flags.
"""

from __future__ import annotations

import runpy
import sys

# name -> (module under `pipelines`, what it does), in the order a run goes through them.
COMMANDS = {
    "train": ("train", "train a model (or continue a run), score it, write the run directory"),
    "predict": ("predict", "predict on a corpus folder: one CSV per recording with 90% intervals, --plot timelines"),
    "evaluate": ("evaluate", "score a run on a partition, optionally with a modality corrupted"),
    "uncertainty": ("uncertainty", "fit a run's per-frame uncertainty calibration on its validation partition"),
    "ensemble": ("ensemble", "evaluate several runs as one deep ensemble"),
    "compare": ("compare", "compare runs: scores side by side, paired t-tests, uncertainty curves"),
    "ablate": ("ablate", "ablate COLD's loss terms over seeds"),
    "tune": ("tune", "search the loss weights, learning rate or annotation delay with KerasTuner"),
    "benchmark": ("benchmark", "compare every model with an equal tuning budget over seeds"),
    "export": ("export", "export a run as a SavedModel for TensorFlow Serving"),
    "serve-client": ("serve_client", "send recordings to a TensorFlow Serving model over gRPC"),
    "example-gen": ("example_gen", "convert a corpus into TFRecord shards, checking every field"),
    "statistics-gen": ("statistics_gen", "statistics, schema and anomaly report of the shards"),
    "transform": ("transform", "fit the feature normalisation on the train partition"),
    "prepare": ("prepare", "run (or reuse) the three data components for a configuration or a run"),
    "settings": ("settings", "print every configuration key with its default and allowed values"),
    "synthetic": ("datasets.synthetic", "write a synthetic corpus (features, or faces and audio with --raw)"),
    "extract": ("extract", "turn audio and video files into a corpus folder"),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: cold-keras <command> [flags]   (or: python -m pipelines <command> [flags])",
        "",
        "COLD fusion for audiovisual emotion recognition: every step of a run is a command.",
        "`cold-keras <command> --help` explains a command's flags; `cold-keras <command> ...` is",
        "`python -m pipelines.<module> ...`.",
        "",
        "commands:",
    ]
    for name, (module, summary) in COMMANDS.items():
        lines.append(f"  {name:<{width}}  {summary}  [pipelines.{module}]")
    return "\n".join(lines)


def _module_of(name: str):
    if name in COMMANDS:
        return COMMANDS[name][0]
    for module, _ in COMMANDS.values():  # the module's own name works too (serve_client, example_gen)
        if name in (module, module.rsplit(".", 1)[-1]):
            return module
    return None


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    module = _module_of(argv[0])
    if module is None:
        print(
            f"error: no command {argv[0]!r}; the commands are: {', '.join(COMMANDS)} (cold-keras --help)",
            file=sys.stderr,
        )
        sys.exit(2)
    from pipelines.core import quiet

    quiet.install(verbose=quiet.verbose_requested(argv[1:]))
    # As `python -m pipelines.<module>`: the module runs as `__main__` with the command's flags.
    sys.argv = [f"cold-keras {argv[0]}", *argv[1:]]
    runpy.run_module(f"pipelines.{module}", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
