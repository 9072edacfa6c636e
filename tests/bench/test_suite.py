"""Suite files: the shipped ones load, and every bad field or section is one ConfigError naming the file and the
field."""

from __future__ import annotations

import pytest

from segformer_bench.bench.suite import SUITES_DIR, load_suite
from segformer_bench.config import ConfigError

from ..helpers import TESTS, analyses_suite, corruption_suite


def test_shipped_suites_validate():
    suites = sorted(SUITES_DIR.glob("*.yaml"))
    assert suites, "no suites shipped"
    for path in suites:
        assert load_suite(path).name == path.stem


@pytest.mark.parametrize(("change", "message"), [
    ({"models": []}, "field 'models' is empty"),
    ({"modles": []}, "unknown field"),
    ({"seed": "zero"}, "field 'seed': expected int"),
    ({"models": [{"name": "x", "variant": "b9", "checkpoint": "b0.pt"}]},
     r"models\[0\].variant: unknown model variant"),
    ({"models": [{"name": "x", "variant": "b0"}]}, "needs exactly one of 'checkpoint' or 'train'"),
    ({"corruptions": {"protocol": "nope"}}, "unknown corruption protocol"),
    ({"corruptions": {"cells": [["fog", 7]]}}, "severity must be an integer from 1 to 5"),
    ({"reference_model": "B5"}, "reference_model 'B5' is not one of the models"),
    ({"version": 2}, "suite version 2 is not supported"),
])
def test_bad_suites_name_the_file_and_field(tmp_path, change, message):
    path = corruption_suite(tmp_path, **change)
    with pytest.raises(ConfigError, match=message) as err:
        load_suite(path)
    assert "tiny.yaml" in str(err.value)


def test_malformed_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML at line"):
        load_suite(path)


@pytest.mark.parametrize(("change", "message"), [
    ({"analyses": ["resolution"], "resolution": None}, "there is no resolution section; add resolution: {tests"),
    ({"analyses": ["resolution"], "resolution": {"tests": []}}, "the resolution section has no tests"),
    ({"analyses": ["erf"], "erf": None}, "there is no erf section"),
    ({"analyses": ["erf", "erf"]}, "at most once"),
    ({"analyses": ["speed"]},
     r"field 'analyses'\[0\]: expected 'corruption' or 'resolution' or 'erf' or 'adversarial' or 'conditions', "
     "got 'speed'"),
    ({"resolution": {"tests": TESTS, "models": ["B7"]}}, r"resolution.models \['B7'\] are not among the models"),
    ({"resolution": {"tests": TESTS, "baseline": "8x"}}, "resolution.baseline '8x' is not one of the tests"),
    ({"resolution": {"tests": [TESTS[0], TESTS[0]]}}, "test names must be unique"),
    ({"resolution": {"tests": [{"name": "a", "eval": {"overrides": {"mode": "tiles"}}}]}},
     r"resolution.tests\[0\].eval.overrides"),
    ({"erf": {"taps": ["stage5"]}}, r"erf.taps \['stage5'\]: choose from stage1"),
    ({"erf": {"images": 0}}, "erf needs images ≥ 1"),
    ({"models": [{"name": "Mix", "variant": "b0", "checkpoint": "mix.pt", "eval": {"crop": 5}}],
      "analyses": ["corruption"], "resolution": None, "erf": None}, r"models\[0\].eval: field 'crop'"),
])
def test_bad_analysis_sections_name_the_file_and_field(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_suite(analyses_suite(tmp_path, **change))
    assert "tiny.yaml" in str(err.value)

