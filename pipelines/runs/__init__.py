"""Run folders: preparing the data artefacts of a run, opening a run directory, the checks that need
no TensorFlow, and the mid-epoch backup that makes a resumed run the same run."""
