"""The sentiment of what customers say: one row per voice text, scored per language.

A voice text is an event of a type in the voice_event_types seed (reviews, posts,
comments, direct messages, shares) with text; search queries and system text are never
scored. Its language is the one its record declares (``pt-BR`` -> ``pt``), else the one
py3langid detects (its model ships in the wheel), else unknown when the text is too short
or the detector unsure. Each language has one offline scorer whose lexicon or model ships
in its wheel: nothing is downloaded at run time. A text in a language without a scorer is
``not_scored`` with a null score, never neutral.

Incremental like the event models: a night scores the events its build wrote
(``build_id``), a full refresh scores every voice text.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable
from functools import cache

import pandas as pd

COLUMNS = [
    "event_id",
    "language",
    "language_source",
    "scorer",
    "sentiment_score",
    "sentiment_label",
    "build_id",
]
# The conventional VADER cut-offs, applied to every scorer's -1..1 score.
POSITIVE_FROM = 0.05
NEGATIVE_TO = -0.05
# Detection needs two words and a normalised probability of at least this; below it
# a guess would send the text to the wrong scorer.
MIN_WORDS = 2
MIN_CONFIDENCE = 0.25
WORD = re.compile(r"[^\W\d_]+")
# The language each scorer reads and its name in the scorer column.
SCORERS = {
    "en": "vader_en",
    "pt": "leia_pt",
    "es": "sentiment_spanish_es",
    "fr": "textblob_fr",
}


def normalise_language(declared: str | None) -> str | None:
    """'pt-BR', 'PT_br', ' pt ' -> 'pt'; empty or unparseable -> None."""
    if declared is None or (isinstance(declared, float) and declared != declared):
        return None
    code = re.split(r"[-_]", str(declared).strip().lower(), maxsplit=1)[0]
    return code if re.fullmatch(r"[a-z]{2,3}", code) else None


@cache
def _identifier():
    from py3langid.langid import _load_identifier

    return _load_identifier(norm_probs=True)


def detect_language(text: str) -> str | None:
    """The language py3langid finds, or None for a text too short or too unsure."""
    if len(WORD.findall(text)) < MIN_WORDS:
        return None
    language, probability = _identifier().classify(text)
    return language if probability >= MIN_CONFIDENCE else None


def language_of(text: str, declared: str | None) -> tuple[str | None, str]:
    """(language, source): the declared language wins over detection."""
    code = normalise_language(declared)
    if code is not None:
        return code, "declared"
    detected = detect_language(text)
    return (detected, "detected") if detected is not None else (None, "unknown")


# Each analyser is built once per process, and only for a language that has texts.
@cache
def _analyser(language: str) -> Callable[[str], float]:
    if language == "en":
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        vader = SentimentIntensityAnalyzer()
        return lambda text: vader.polarity_scores(text)["compound"]
    if language == "pt":
        from LeIA import SentimentIntensityAnalyzer as LeiaAnalyzer

        leia = LeiaAnalyzer()
        return lambda text: leia.polarity_scores(text)["compound"]
    if language == "es":
        from sentiment_analysis_spanish.sentiment_analysis import SentimentAnalysisSpanish

        # Its model is a scikit-learn pickle of an older release: it loads and predicts
        # the same, and the version warning would only repeat on every build.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spanish = SentimentAnalysisSpanish()
        # The probability that the text is positive, stretched to -1..1.
        return lambda text: 2.0 * float(spanish.sentiment(text)) - 1.0
    if language == "fr":
        from textblob import Blobber
        from textblob_fr import PatternAnalyzer, PatternTagger

        blob = Blobber(pos_tagger=PatternTagger(), analyzer=PatternAnalyzer())
        return lambda text: float(blob(text).sentiment[0])
    raise KeyError(language)


def label(score: float | None) -> str:
    if score is None:
        return "not_scored"
    if score >= POSITIVE_FROM:
        return "positive"
    if score <= NEGATIVE_TO:
        return "negative"
    return "neutral"


def score_texts(
    rows: Iterable[tuple[str, str, str | None]],
) -> list[tuple[str, str | None, str, str | None, float | None, str]]:
    """(event_id, text, declared language) -> (event_id, language, language_source,
    scorer, sentiment_score, sentiment_label), scores rounded to 6 places."""
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for event_id, text, declared in rows:
            language, source = language_of(text, declared)
            scorer = SCORERS.get(language) if language else None
            score = None
            if scorer is not None:
                raw = _analyser(language)(text)
                score = round(min(1.0, max(-1.0, float(raw))), 6)
            out.append((event_id, language, source, scorer, score, label(score)))
    return out


def to_frame(scored: list[tuple], build_id: int) -> pd.DataFrame:
    """The model's rows as a frame whose columns keep their types when empty or null."""
    frame = pd.DataFrame(scored, columns=COLUMNS[:-1])
    frame["sentiment_score"] = frame["sentiment_score"].astype("float64")
    frame["build_id"] = pd.Series([build_id] * len(frame), dtype="int64")
    # pandas' string dtype, so a column of only nulls (or a night with no text) is
    # still VARCHAR in DuckDB, not its NULL type.
    for column in ("event_id", "language", "language_source", "scorer", "sentiment_label"):
        frame[column] = frame[column].astype("string")
    return frame


def model(dbt, session):
    dbt.config(
        materialized="incremental",
        unique_key="event_id",
        incremental_strategy="delete+insert",
    )
    build_id = int(dbt.config.get("build_id"))
    events = dbt.ref("fct_journey_events")
    voice = dbt.ref("voice_event_types").select("event_type")
    texts = events.filter("text is not null and trim(text) != ''")
    if dbt.is_incremental:
        texts = texts.filter(f"build_id = {build_id}")
    texts = texts.join(voice, "event_type").select("event_id, text, language")
    return to_frame(score_texts(texts.fetchall()), build_id)
