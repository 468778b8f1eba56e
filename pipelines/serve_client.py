"""`python -m pipelines.serve_client`: send recordings to a TensorFlow Serving model over gRPC.

    python -m pipelines.serve_client --server localhost:8500 --model NAME --recording FILE.csv
    python -m pipelines.serve_client --server localhost:8500 --model NAME --run-dir RUN --partition devel

The recording file format and what is sent: `pipelines.serving.client`.
"""

from __future__ import annotations

import argparse

from pipelines.core import cli
from pipelines.core.errors import ConfigError, cli_main
from pipelines.data import features
from pipelines.serving import client
from pipelines.serving.servable import SERVING_DEFAULT, SIGNATURES


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.serve_client",
        description="Predict recordings through TF Serving's gRPC API (port 8500 by default). Example: "
        "python -m pipelines.serve_client --model cold_fusion --run-dir RUN --partition devel",
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument("--server", default="localhost:8500", help="host:port of the gRPC endpoint")
    parser.add_argument("--model", required=True, help="model name on the server")
    parser.add_argument("--version", type=int, help="model version (default: the newest the server has)")
    parser.add_argument("--signature", default=SERVING_DEFAULT, choices=SIGNATURES, help="serving signature to call")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--recording", nargs="+", help="per-frame feature CSV file(s)")
    source.add_argument("--run-dir", help="run directory: predict recordings of its data artefacts")
    parser.add_argument("--partition", default=features.DEVEL, choices=features.PARTITIONS, help="with --run-dir")
    parser.add_argument("--max-recordings", type=int, default=0, help="with --run-dir: at most this many (0 = all)")
    parser.add_argument("--output-dir", help="write every per-frame output to <output-dir>/<name>.csv")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    cli.finish_parser(parser)
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        raise ConfigError(f"--timeout must be positive, got {args.timeout}")
    if args.output_dir:  # checks only: `run` makes it once the server answers
        cli.check_output_dir(args.output_dir, "--output-dir", create=False)
    return args


@cli_main
def main(argv=None):
    client.run(parse_args(argv))


if __name__ == "__main__":
    main()
