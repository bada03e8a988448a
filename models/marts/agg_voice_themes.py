"""The customers' own words: per stage and touchpoint, the terms and phrases that most
set negative texts apart from positive ones (and the reverse).

The texts are the scored voice texts (int_text_sentiment: reviews, posts, comments,
messages; addresses and handles were masked at ingestion), labelled negative or
positive by their scorer. Words and two-word phrases are counted once per text
(scikit-learn's CountVectorizer, binary; tokens of letters only, so masked
placeholders and numbers are not terms). A term's distinctiveness is the chi-square
statistic of its text counts on the two sides against the sides' shares of all texts
(scikit-learn's ``chi2``); it leans to the side where its share of texts is larger, and
a term as common on both sides is no theme. A word of scikit-learn's English stop-word
list is no term, nor a phrase that starts or ends with one ('after a week'); other
languages keep their function words, which seldom lean to one side. A
term must occur in at least ``MIN_TEXTS_WITH_TERM`` texts; a place needs at least
``MIN_TEXTS_PER_SIDE`` negative and positive texts to be compared. The ``THEMES_PER_SIDE``
strongest terms of each side are kept, for each stage and touchpoint and for each
stage as a whole (touchpoint_id '(all)').
"""

from __future__ import annotations

import pandas as pd

MIN_TEXTS_PER_SIDE = 5
MIN_TEXTS_WITH_TERM = 3
THEMES_PER_SIDE = 10
ALL = "(all)"
COLUMNS = [
    "stage",
    "touchpoint_id",
    "polarity",
    "theme_rank",
    "term",
    "texts_with_term",
    "negative_texts_with_term",
    "positive_texts_with_term",
    "negative_texts",
    "positive_texts",
    "chi2",
]


def themes(texts: pd.DataFrame) -> pd.DataFrame:
    """The themes table from voice texts (columns stage, touchpoint_id, text,
    sentiment_label), as the docstring says."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer
    from sklearn.feature_selection import chi2

    labelled = texts[texts["sentiment_label"].isin(["negative", "positive"])]
    places = [labelled.assign(touchpoint_id=ALL), labelled]
    rows: list[dict] = []
    for (stage, touchpoint), group in pd.concat(places).groupby(["stage", "touchpoint_id"]):
        negative = (group["sentiment_label"] == "negative").to_numpy()
        n_neg, n_pos = int(negative.sum()), int((~negative).sum())
        if min(n_neg, n_pos) < MIN_TEXTS_PER_SIDE:
            continue
        vectoriser = CountVectorizer(
            binary=True,
            lowercase=True,
            ngram_range=(1, 2),
            min_df=MIN_TEXTS_WITH_TERM,
            token_pattern=r"(?u)\b[^\W\d_]{2,}\b",
        )
        try:
            matrix = vectoriser.fit_transform(group["text"].fillna(""))
        except ValueError:  # no term in enough texts
            continue
        scores, _ = chi2(matrix, negative)
        with_neg = matrix[negative].sum(axis=0).A1
        with_pos = matrix[~negative].sum(axis=0).A1
        for term, score, a, b in zip(
            vectoriser.get_feature_names_out(), scores, with_neg, with_pos, strict=True
        ):
            words = term.split()
            if words[0] in ENGLISH_STOP_WORDS or words[-1] in ENGLISH_STOP_WORDS:
                continue  # 'and', 'after week': function words say nothing by themselves
            if a * n_pos == b * n_neg:
                continue  # as common on both sides: it sets neither apart
            polarity = "negative" if a * n_pos > b * n_neg else "positive"
            rows.append(
                {
                    "stage": stage,
                    "touchpoint_id": touchpoint,
                    "polarity": polarity,
                    "term": term,
                    "texts_with_term": int(a + b),
                    "negative_texts_with_term": int(a),
                    "positive_texts_with_term": int(b),
                    "negative_texts": n_neg,
                    "positive_texts": n_pos,
                    "chi2": float(score),
                }
            )
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "theme_rank"])
    if frame.empty:
        return _typed(frame.assign(theme_rank=pd.Series(dtype="int64")))
    frame = frame.sort_values(
        ["stage", "touchpoint_id", "polarity", "chi2", "texts_with_term", "term"],
        ascending=[True, True, True, False, False, True],
        kind="mergesort",
    )
    frame["theme_rank"] = frame.groupby(["stage", "touchpoint_id", "polarity"]).cumcount() + 1
    return _typed(frame[frame["theme_rank"] <= THEMES_PER_SIDE])


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[COLUMNS].reset_index(drop=True)
    for column in ("stage", "touchpoint_id", "polarity", "term"):
        frame[column] = frame[column].astype("string")
    for column in COLUMNS[3:10]:
        if column != "term":
            frame[column] = frame[column].astype("int64")
    frame["chi2"] = frame["chi2"].astype("float64")
    return frame


def model(dbt, session):
    dbt.config(materialized="table")
    scored = dbt.ref("int_text_sentiment").select("event_id, sentiment_label")
    events = dbt.ref("fct_journey_events").select("event_id, stage, touchpoint_id, text")
    texts = events.join(scored, "event_id").df()
    return themes(texts)
