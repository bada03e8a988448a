"""Functions the dbt models call that SQL has no good way to write, registered on each
of dbt's DuckDB connections (a dbt-duckdb plugin: ``plugins`` in profiles.yml).

``cjm_component_ranks``: the connected components of the identity graph. Label
propagation in SQL (each node takes its neighbours' smallest label until nothing
changes) runs a round per step of the longest chain and rescans the changed nodes'
edges each round; at tens of millions of identifiers that takes many minutes. SciPy's
``connected_components`` (a graph search over the sparse adjacency matrix) labels
every node in one pass, in time linear in nodes and edges.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from dbt.adapters.duckdb.plugins import BasePlugin


def component_ranks(node_count: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For nodes ``0 .. node_count - 1`` and the undirected edges ``a[i] - b[i]``: each
    node's component, named by the smallest node in it.

    The nodes are numbered oldest first, so that smallest node is the component's
    oldest identifier, the one its customer id is made from."""
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components

    if node_count == 0:
        return np.empty(0, dtype=np.int64)
    if len(a) and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= node_count):
        raise ValueError(f"an edge names a node outside 0..{node_count - 1}")
    graph = coo_array(
        (np.ones(len(a), dtype=np.int8), (a, b)), shape=(node_count, node_count)
    ).tocsr()
    count, labels = connected_components(graph, directed=False)
    smallest = np.full(count, node_count, dtype=np.int64)
    np.minimum.at(smallest, labels, np.arange(node_count, dtype=np.int64))
    return smallest[labels]


def _component_ranks_udf(node_count: pa.Array, edges: pa.Array) -> pa.Array:
    """The SQL face of ``component_ranks``: a row of (node count, list of edges as
    structs {a, b}) in, one list of component ranks out. A null list is no edges."""
    out = []
    for i in range(len(node_count)):
        count = node_count[i].as_py() or 0
        # Flattened, a null pair is a null at both ends.
        ends = edges[i].values.flatten() if edges[i].is_valid else [pa.array([], pa.int64())] * 2
        if any(end.null_count for end in ends):
            raise ValueError("an edge has a null end")
        a, b = (end.to_numpy(zero_copy_only=False).astype(np.int64, copy=False) for end in ends)
        out.append(component_ranks(count, a, b))
    offsets = np.zeros(len(out) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(ranks) for ranks in out])
    values = np.concatenate(out) if out else np.empty(0, dtype=np.int64)
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values, pa.int64()))


class Plugin(BasePlugin):
    def configure_connection(self, conn) -> None:
        from duckdb import sqltypes

        conn.create_function(
            "cjm_component_ranks",
            _component_ranks_udf,
            [sqltypes.BIGINT, "STRUCT(a BIGINT, b BIGINT)[]"],
            "BIGINT[]",
            type="arrow",
            null_handling="special",
            side_effects=False,
        )
