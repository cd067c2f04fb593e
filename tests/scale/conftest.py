"""A Dask cluster of worker processes for the partitioned-data tests of each module."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def client():
    # worker processes: every recipe, pass and result crosses a process boundary, as on a real cluster
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()
