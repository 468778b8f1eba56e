"""`python -m pipelines.serve_client`: send recordings to a TensorFlow Serving model over gRPC.

The command's flags are read by `pipelines.serving.client.parse_args`; `--help` lists them.
"""

from pipelines.serving.client import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    main()
