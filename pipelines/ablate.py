"""`python -m pipelines.ablate`: ablate COLD's loss terms over seeds (paper Table 8).

The ablation itself is `pipelines.experiments.ablate.run`; `--help` lists the flags.
"""

import argparse
import warnings
from pathlib import Path

from pipelines.config import files as config_lib
from pipelines.config.merging import deep_update
from pipelines.core import cli
from pipelines.core.errors import ConfigError, cli_main
from pipelines.experiments import ablate as ablate_lib


def build_config(args):
    """The dataset's config file, then --config, then the flags (merged as mappings, then parsed into a
    RunConfig); the model is always cold_fusion."""
    source = args.config or str(config_lib.default_config_path(args.dataset))
    config = config_lib.load_file(config_lib.default_config_path(args.dataset))
    if args.config:
        config = deep_update(config, config_lib.load_file(args.config))
    flags = {"dataset": args.dataset, "model": {"name": "cold_fusion"}, "training": {}}
    for key in ("data_dir", "features_dir", "task"):
        if getattr(args, key) is not None:
            flags[key] = getattr(args, key)
    if args.epochs is not None:
        flags["training"]["epochs"] = args.epochs
    return config_lib.validate(deep_update(config, flags), source)


def _seeds(text):
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--seeds takes comma-separated integers, e.g. 0,1,2; got {text!r}") from None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.ablate",
        description="Ablation of the COLD loss terms (paper Table 8). "
        "Example: python -m pipelines.ablate --dataset synthetic --seeds 0,1,2",
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument(
        "--dataset",
        required=True,
        choices=config_lib.DATASETS,
        help="corpus adapter; `synthetic` is generated on first use",
    )
    parser.add_argument("--data-dir", help="corpus folder (avec, iemocap)")
    parser.add_argument("--features-dir", help="IEMOCAP: folder of per-utterance feature files")
    parser.add_argument("--config", help="YAML file overriding configs/<dataset>.yaml")
    parser.add_argument(
        "--task", choices=config_lib.TASKS, help="regression (CCC) or 3-way classification (default from the config)"
    )
    parser.add_argument(
        "--epochs", type=cli.positive_int, help="training epochs of every variant (default from the config)"
    )
    parser.add_argument("--seeds", default="0", help="comma-separated seeds; each variant is trained once per seed")
    parser.add_argument(
        "--variants", default=",".join(ablate_lib.VARIANTS), help="comma-separated subset of the variants"
    )
    parser.add_argument("--output-dir", help="default runs/ablation_<dataset>_<task>")
    parser.add_argument("--progress", action="store_true", help="progress bars while training")
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    config = build_config(args)
    seeds = _seeds(args.seeds)
    variants = [part.strip() for part in args.variants.split(",") if part.strip()]
    for variant in variants:  # before the output folder is made
        if variant not in ablate_lib.VARIANTS:
            raise ConfigError(f"unknown ablation variant {variant!r}; choose from {', '.join(ablate_lib.VARIANTS)}")
    default = Path("runs") / f"ablation_{args.dataset}_{config.task}"
    output_dir = Path(args.output_dir) if args.output_dir else default
    cli.check_output_dir(output_dir, "--output-dir" if args.output_dir else "the default output folder")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(libtensorflow_io|file system plugins).*")
        ablate_lib.run(config, output_dir, seeds=seeds, variants=variants, progress=args.progress)


if __name__ == "__main__":
    main()
