"""The identity graph's connected components (cjm_pipeline/dbt_functions.py), which
int_identity__customers calls through DuckDB: checked on random graphs against
networkx's own component search, and on the hand-drawn cases of a chain, a lone node
and a graph without edges. (The model's stable-id and merge rules are its dbt unit
tests, which run in the full build.)"""

from __future__ import annotations

import duckdb
import networkx as nx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cjm_pipeline.dbt_functions import Plugin, component_ranks


def expected(node_count: int, edges: list[tuple[int, int]]) -> list[int]:
    graph = nx.Graph()
    graph.add_nodes_from(range(node_count))
    graph.add_edges_from(edges)
    smallest = {}
    for component in nx.connected_components(graph):
        first = min(component)
        smallest.update(dict.fromkeys(component, first))
    return [smallest[node] for node in range(node_count)]


@st.composite
def graphs(draw) -> tuple[int, list[tuple[int, int]]]:
    node_count = draw(st.integers(min_value=1, max_value=60))
    node = st.integers(min_value=0, max_value=node_count - 1)
    edges = draw(st.lists(st.tuples(node, node), max_size=80))
    return node_count, edges


@given(graphs())
def test_every_node_is_named_by_the_smallest_node_of_its_component(graph) -> None:
    node_count, edges = graph
    a = np.array([e[0] for e in edges], dtype=np.int64)
    b = np.array([e[1] for e in edges], dtype=np.int64)
    assert component_ranks(node_count, a, b).tolist() == expected(node_count, edges)


@pytest.fixture
def con():
    with duckdb.connect() as connection:
        Plugin(name="dbt_functions", plugin_config={}).configure_connection(connection)
        yield connection


def test_the_sql_function_names_components_and_takes_no_edges(con) -> None:
    # 0-1-2 a chain (2 reached through 1 only), 3 alone, 4 joined to 0, 5-6 a pair.
    rows = con.sql(
        "with e(a, b) as (values (2, 1), (1, 0), (4, 0), (6, 5)) "
        "select cjm_component_ranks(7, list({'a': a, 'b': b})) from e"
    ).fetchall()
    assert rows == [([0, 0, 0, 3, 0, 5, 5],)]
    # No edge at all (list() of no rows is null): every node is its own component.
    rows = con.sql(
        "with e(a, b) as (select 1, 2 where false) "
        "select cjm_component_ranks(3, list({'a': a, 'b': b})) from e"
    ).fetchall()
    assert rows == [([0, 1, 2],)]
    assert con.sql("select cjm_component_ranks(0, [])").fetchall() == [([],)]


def test_an_edge_outside_the_nodes_is_an_error(con) -> None:
    with pytest.raises(duckdb.Error, match=r"outside 0\.\.2"):
        con.sql("select cjm_component_ranks(3, [{'a': 0, 'b': 3}])").fetchall()
