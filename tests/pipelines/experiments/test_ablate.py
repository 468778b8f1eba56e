"""Tests of `python -m pipelines.ablate` (paper Table 8)."""

from __future__ import annotations

import json

import pytest

from pipelines.core.errors import ConfigError
from pipelines.experiments import ablate
from tests.pipelines import evaluation_helpers as helpers

LAMBDAS = ("lambda_co_visual", "lambda_co_audio", "lambda_co_cross", "lambda_regu")


@pytest.mark.parametrize(
    "variant, zeroed",
    [
        ("all", ()),
        ("no_intramodal", ("lambda_co_visual", "lambda_co_audio")),
        ("no_crossmodal", ("lambda_co_cross",)),
        ("no_regulariser", ("lambda_regu",)),
        ("none", LAMBDAS),
    ],
)
def test_each_variant_zeroes_exactly_its_lambdas(variant, zeroed):
    config = helpers.tiny_config()
    config["model"].update(
        name="feature_fusion", lambda_co_visual=2.0, lambda_co_audio=3.0, lambda_co_cross=4.0, lambda_regu=5.0
    )
    before = json.dumps(config, sort_keys=True)
    out = ablate.variant_config(config, variant, seed=7)
    assert json.dumps(config, sort_keys=True) == before  # the input is not modified
    assert out.model.name == "cold_fusion" and out.training.seed == 7
    for key in LAMBDAS:
        assert getattr(out.model, key) == (0.0 if key in zeroed else config["model"][key]), key
    rest = {k: v for k, v in out.model.to_dict().items() if k not in LAMBDAS and k != "name"}
    assert rest == {k: v for k, v in config["model"].items() if k not in LAMBDAS and k != "name"}


def test_unknown_variants_and_seeds_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown ablation variant 'no_kl'"):
        ablate.run(helpers.tiny_config(), tmp_path, variants=["all", "no_kl"], verbose=False)
    result = helpers.cli(
        "pipelines.ablate", ["--dataset", "synthetic", "--variants", "all,bogus", "--output-dir", tmp_path / "out"]
    )
    helpers.assert_one_line_error(result, "unknown ablation variant 'bogus'")
    result = helpers.cli(
        "pipelines.ablate", ["--dataset", "synthetic", "--seeds", "0,x", "--output-dir", tmp_path / "out"]
    )
    helpers.assert_one_line_error(result, "--seeds takes comma-separated integers")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_tiny_ablation_trains_each_variant_in_its_own_run(tmp_path_factory, capsys):
    output_dir, table = helpers.tiny_ablation(tmp_path_factory)
    assert json.loads((output_dir / "ablation.json").read_text()) == table
    assert list(table["variants"]) == list(helpers.ABLATION_VARIANTS) and table["seeds"] == [0]
    for name, entry in table["variants"].items():
        run_dir = output_dir / f"{name}_seed0"
        assert entry["runs"] == [str(run_dir)]
        config = json.loads((run_dir / "config.json").read_text())
        assert config["model"]["name"] == "cold_fusion" and config["training"]["epochs"] == 1
        for key in LAMBDAS:
            assert config["model"][key] == entry["lambdas"][key]
            assert (config["model"][key] == 0.0) == (name == "none"), (name, key)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        for partition in ("devel", "test"):
            for key in ("ccc_valence", "ccc_arousal", "ccc_mean"):
                assert entry["scores"][partition][key] == metrics[partition]["av"][key]

    text = ablate.format_table(table)
    assert "all constraints" in text and "none" in text and "test mean" in text
    assert f"{table['variants']['all']['scores']['devel']['ccc_mean']:.4f}" in text

    # Running again reuses the finished runs instead of training.
    mtime = (output_dir / "all_seed0" / "model.keras").stat().st_mtime
    again = ablate.run(
        helpers.tiny_config("regression", epochs=1),
        output_dir,
        seeds=[0],
        variants=helpers.ABLATION_VARIANTS,
        verbose=True,
    )
    assert again == table
    assert (output_dir / "all_seed0" / "model.keras").stat().st_mtime == mtime
    printed = capsys.readouterr().out
    assert printed.count("already holds a finished run") == 2 and "COLD fusion ablation" in printed


def test_table_reports_mean_and_spread_over_seeds():
    metrics = [
        {"devel": {"av": {"ccc_valence": v, "ccc_arousal": a, "ccc_mean": (v + a) / 2}}}
        for v, a in ((0.2, 0.4), (0.4, 0.8))
    ]
    scores = ablate._average(metrics, "regression")
    assert scores["devel"]["ccc_valence"] == pytest.approx(0.3)
    assert scores["devel"]["ccc_mean"] == pytest.approx(0.45)
    assert scores["devel"]["ccc_arousal_std"] == pytest.approx(0.2828427, abs=1e-6)
    assert "test" not in scores
    table = {"task": "regression", "seeds": [0, 1], "variants": {"all": {"title": "all constraints", "scores": scores}}}
    assert "0.600 ± 0.283" in ablate.format_table(table)
