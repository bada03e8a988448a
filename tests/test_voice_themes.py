"""The customers' own words (agg_voice_themes): terms that set negative texts apart
from positive ones, on a handful of texts whose counts and chi-square statistics are
worked out by hand here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

MODEL = Path(__file__).resolve().parents[1] / "models" / "marts" / "agg_voice_themes.py"


def _module():
    spec = importlib.util.spec_from_file_location("agg_voice_themes", MODEL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NEGATIVE = [
    "Late delivery, broken!",
    "late delivery",
    "Late delivery again",
    "late box, great",
    "bad",
    "bad box 2",
]
POSITIVE = [
    "Great fit",
    "great delivery",
    "great delivery fast",
    "great price",
    "great colour delivery",
    "lovely @[handle]",
]


def test_terms_that_set_negative_texts_apart() -> None:
    texts = pd.DataFrame(
        {
            "stage": "experience",
            "touchpoint_id": "review_site",
            "text": NEGATIVE + POSITIVE,
            "sentiment_label": ["negative"] * 6 + ["positive"] * 6,
        }
    )
    # A neutral text and a text of another stage are no part of the comparison.
    texts.loc[len(texts)] = ["experience", "review_site", "late late late", "neutral"]
    frame = _module().themes(texts)
    rows = {(r["touchpoint_id"], r["polarity"], r["term"]): r for r in frame.to_dict("records")}
    # Six texts a side, so a term's expected count on each side is half its texts.
    # late: 4 negative, 0 positive; expected 2 and 2: (4-2)^2/2 + (0-2)^2/2 = 4.
    # late delivery: 3 and 0; expected 1.5 each: 2 * 1.5^2 / 1.5 = 3.
    # great: 1 and 5; expected 3 each: 4/3 + 4/3 = 8/3.
    # delivery: 3 and 3, as common on both sides: no theme. box, bad, great delivery:
    # in fewer than 3 texts. Digits and the masked handle are no terms.
    for place in ("review_site", "(all)"):
        late = rows[(place, "negative", "late")]
        assert (late["negative_texts_with_term"], late["positive_texts_with_term"]) == (4, 0)
        assert late["chi2"] == pytest.approx(4.0)
        assert late["theme_rank"] == 1
        phrase = rows[(place, "negative", "late delivery")]
        assert phrase["chi2"] == pytest.approx(3.0) and phrase["theme_rank"] == 2
        great = rows[(place, "positive", "great")]
        assert great["chi2"] == pytest.approx(8 / 3) and great["theme_rank"] == 1
        assert (great["negative_texts"], great["positive_texts"]) == (6, 6)
    assert {term for _, _, term in rows} == {"late", "late delivery", "great"}


def test_a_place_with_too_few_texts_on_a_side_has_no_themes() -> None:
    texts = pd.DataFrame(
        {
            "stage": "purchase",
            "touchpoint_id": "site_checkout",
            "text": NEGATIVE[:4] + POSITIVE,
            "sentiment_label": ["negative"] * 4 + ["positive"] * 6,
        }
    )
    assert _module().themes(texts).empty
