"""Ray consumers of lclstream streams (``pip install 'lclstream[ray]'``).

A stream's batches land in Ray's object store once each and reach user code as read-only
numpy views of it, with bounded batches in flight (the producer waits, the store never
spills) and a result that says whether every event was processed::

    from lclstream.ray import BatchStream, map_batches

    result = map_batches("tcp://0.0.0.0:5000", radial_profile, actors=2)
    assert result.complete, result.incomplete_reason()

See ``docs/ray.md``.
"""

from lclstream.ray.batch import RayBatch
from lclstream.ray.consume import BatchStream, FailedBatch, StreamResult, map_batches

__all__ = ["BatchStream", "FailedBatch", "RayBatch", "StreamResult", "map_batches"]
