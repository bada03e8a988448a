"""Markov-chain attribution: the removal effect of every channel and touchpoint.

The chain is int_attribution_transitions: states are touches plus '(start)' and two
absorbing states, '(conversion)' and '(null)'. P is the probability of reaching
'(conversion)' from '(start)'. Removing a node sends every transition into it to
'(null)'; its removal effect is 1 - P_without / P, the share of conversions the
chain loses without it. Solved exactly as an absorbing chain, (I - Q) v = r.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

START = "(start)"
CONVERSION = "(conversion)"
NULL = "(null)"
COLUMNS = ["level", "node", "removal_effect", "conversion_probability", "probability_without"]


def conversion_probability(
    states: list[str], counts: dict[tuple[str, str], float], removed: str | None = None
) -> float:
    """Probability of absorption in '(conversion)' from '(start)'."""
    index = {state: i for i, state in enumerate(states)}
    q = np.zeros((len(states), len(states)))
    r = np.zeros(len(states))
    totals: dict[str, float] = {}
    for (source, _), n in counts.items():
        totals[source] = totals.get(source, 0.0) + n
    for (source, target), n in counts.items():
        share = n / totals[source]
        if target == CONVERSION:
            r[index[source]] += share
        elif target != NULL and target != removed:
            q[index[source], index[target]] += share
    v = np.linalg.lstsq(np.eye(len(states)) - q, r, rcond=None)[0]
    return float(v[index[START]])


def removal_effects(counts: dict[tuple[str, str], float]) -> tuple[float, dict[str, float]]:
    """P and each node's removal effect, from transition counts {(from, to): n}."""
    nodes = sorted(({s for s, _ in counts} | {t for _, t in counts}) - {START, CONVERSION, NULL})
    states = [START, *nodes]
    p = conversion_probability(states, counts)
    if p <= 0:
        return p, dict.fromkeys(nodes, 0.0)
    effects = {}
    for node in nodes:
        without = conversion_probability(states, counts, removed=node)
        effect = 1.0 - without / p
        # Below 1e-12 the difference is rounding, not an effect.
        effects[node] = effect if effect > 1e-12 else 0.0
    return p, effects


def model(dbt, session):
    dbt.config(materialized="table")
    transitions = dbt.ref("int_attribution_transitions").df()
    rows = []
    for level, edges in transitions.groupby("level", sort=True):
        counts = {
            (row.from_node, row.to_node): float(row.transitions)
            for row in edges.itertuples(index=False)
        }
        p, effects = removal_effects(counts)
        for node, effect in sorted(effects.items()):
            without = p * (1.0 - effect)
            rows.append((level, node, effect, p, without))
    return pd.DataFrame(rows, columns=COLUMNS)
