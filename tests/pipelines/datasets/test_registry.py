"""`open_corpus`: dispatch by name, option checking, and adapters that stay free of TensorFlow."""

import subprocess
import sys

import pytest

from pipelines.core.errors import ConfigError
from pipelines.datasets import open_corpus
from tests.fixtures import write_avec_fixture


def test_dispatches_by_name(tmp_path):
    write_avec_fixture(tmp_path)
    corpus = open_corpus("avec", str(tmp_path), audio_features="egemaps", visual_features=["au"])
    assert corpus.dataset == "avec" and corpus.root == str(tmp_path)
    assert len(corpus.audio_feature_names) == 3 and len(corpus.visual_feature_names) == 2


def test_unknown_dataset_option_and_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset 'sewa'; choose one of avec, iemocap, synthetic"):
        open_corpus("sewa", tmp_path)
    with pytest.raises(ConfigError, match="does not take the option\\(s\\) features_dir"):
        open_corpus("avec", tmp_path, features_dir=tmp_path)
    with pytest.raises(ConfigError, match="needs a data folder"):
        open_corpus("synthetic", None)


def test_adapters_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "import pipelines.datasets.avec, pipelines.datasets.iemocap, pipelines.datasets.synthetic\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
