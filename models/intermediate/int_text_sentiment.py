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
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from functools import cache
from importlib.metadata import distribution

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
    "de": "textblob_de",
}
# German reads the polarity lexicon textblob-de ships (Klenner et al.'s German Polarity
# Lexicon as Pattern XML, Apache-2.0, about 7,400 polar words) with the scorer below:
# the package itself no longer imports with current TextBlob.
GERMAN_LEXICON = "textblob_de/data/de-sentiment.xml"
# Words the lexicon rates polar (kaufen, bezahlen and passen negative, Qualität
# positive) that in a shop's reviews only name the purchase, the payment, the fit or
# the aspect judged.
GERMAN_SHOP_NEUTRAL = frozenset({"kaufen", "bezahlen", "passen", "Qualität"})
GERMAN_NEGATIONS = frozenset(
    {"nicht", "nie", "niemals", "nichts", "ohne", "kein", "keine", "keinem", "keinen", "keiner"}
)
# Inflection endings of adjectives and nouns, longest first, tried when a word form is
# not in the lexicon (which holds base forms): "freundlicher" -> "freundlich".
GERMAN_ENDINGS = ("sten", "ste", "em", "en", "er", "es", "e")
# A noun in a review is mostly the thing judged ("Lieferung", "Service"); the judgement
# is its adjective or verb, so a noun's polarity counts half.
GERMAN_NOUN_WEIGHT = 0.5
# VADER's scalar: a negated word counts -0.74 times its polarity ("nicht schlecht" is
# mildly positive, "nicht gut" clearly negative).
NEGATION_SCALAR = -0.74
# A negation governs the first polar word up to this many words after it, else the
# nearest one before it in its clause ("Die Größe stimmt nicht").
NEGATION_REACH = 3


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


class GermanLexiconScorer:
    """The weighted mean polarity of a text's polar words, -1..1; 0 without any.

    Each word is looked up as written, then case-folded, then without an inflection
    ending, then a participle ("gefreut") as its infinitive ("freuen"). A negation flips
    one polar word of its clause (see NEGATION_REACH).
    """

    def __init__(self, lexicon_path) -> None:
        self.exact: dict[str, tuple[float, float]] = {}
        self.folded: dict[str, tuple[float, float]] = {}
        for word in ET.parse(lexicon_path).getroot().iter("word"):
            form, polarity = word.get("form"), float(word.get("polarity"))
            if polarity == 0 or form in GERMAN_SHOP_NEUTRAL:
                continue
            entry = (polarity, GERMAN_NOUN_WEIGHT if word.get("pos") == "NN" else 1.0)
            self.exact[form] = entry
            # A noun and a verb or adjective of one spelling ("Elend", "elend"): the
            # case-folded form, read for a word capitalised as the first of a sentence,
            # keeps the stronger.
            known = self.folded.get(form.lower())
            if known is None or abs(entry[0] * entry[1]) > abs(known[0] * known[1]):
                self.folded[form.lower()] = entry

    def lookup(self, word: str) -> tuple[float, float] | None:
        if word in self.exact:
            return self.exact[word]
        folded = word.lower()
        if folded in self.folded:
            return self.folded[folded]
        for ending in GERMAN_ENDINGS:
            stem = folded.removesuffix(ending)
            if stem != folded and len(stem) >= 3 and stem in self.folded:
                return self.folded[stem]
        if folded.startswith("ge") and folded.endswith("t"):
            return self.folded.get(folded[2:-1] + "en")
        return None

    def __call__(self, text: str) -> float:
        total = weights = 0.0
        for clause in re.split(r"[.,;:!?]", text):
            words = WORD.findall(clause)
            negated = [word.lower() in GERMAN_NEGATIONS for word in words]
            found = [None if neg else self.lookup(w) for w, neg in zip(words, negated, strict=True)]
            for at in (i for i, neg in enumerate(negated) if neg):
                after = [j for j in range(at + 1, at + 1 + NEGATION_REACH) if j < len(words)]
                target = next((j for j in after if found[j]), None)
                if target is None:
                    target = next((j for j in range(at - 1, -1, -1) if found[j]), None)
                if target is not None:
                    polarity, weight = found[target]
                    found[target] = (NEGATION_SCALAR * polarity, weight)
            for polarity, weight in filter(None, found):
                total += polarity * weight
                weights += weight
        return total / weights if weights else 0.0


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
    if language == "de":
        # Located through the installed distribution: importing textblob_de would fail.
        return GermanLexiconScorer(distribution("textblob-de").locate_file(GERMAN_LEXICON))
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
    # The night's number comes from int_night: a config would hold the one dbt parsed.
    # (dbt finds a ref only in a call of its own, not at the head of a chain.)
    night = dbt.ref("int_night")
    build_id = int(night.select("build_id").fetchall()[0][0])
    events = dbt.ref("fct_journey_events")
    voice = dbt.ref("voice_event_types").select("event_type")
    texts = events.filter("text is not null and trim(text) != ''")
    if dbt.is_incremental:
        texts = texts.filter(f"build_id = {build_id}")
    texts = texts.join(voice, "event_type").select("event_id, text, language")
    return to_frame(score_texts(texts.fetchall()), build_id)
