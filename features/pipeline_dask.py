"""Former home of the Dask feature engine, now ``features.pipeline.dask_engine``.

Kept only so ``training/cli.py``'s ``from features.pipeline_dask import dask_client`` works
until that import moves; delete this module then.
"""

from features.pipeline.dask_engine import dask_client

__all__ = ["dask_client"]
