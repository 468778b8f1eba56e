"""`python -m pipelines.extract`: turn audio and video files into a corpus folder.

The command's flags are read by `pipelines.components.extract.main`; `--help` lists them.
"""

from pipelines.components.extract import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
