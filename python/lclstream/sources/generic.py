"""LCLStreamer's generic data sources: random arrays, constant values, the source identifier.

They behave as LCLStreamer's do (``GenericRandomNumpyArray`` gives integers in [0, 255) or
floats in [0, 1) of the configured shape and dtype, a new array per event), but are seeded
so runs are reproducible.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lclstream.errors import SourceError
from lclstream.protocols import DetectorInfo


class GenericRandomNumpyArray:
    def __init__(
        self, name: str, array_shape: str | list[int], array_dtype: str, seed: int | None = None
    ) -> None:
        self.name = name
        try:
            if isinstance(array_shape, str):
                shape = tuple(int(x) for x in array_shape.split(",") if x.strip())
            else:
                shape = tuple(int(x) for x in array_shape)
        except ValueError:
            raise SourceError(
                f"data_sources.{name}.array_shape: {array_shape!r} is not a shape "
                '(comma-separated integers, e.g. "20,2")'
            ) from None
        if any(d < 0 for d in shape):
            raise SourceError(
                f"data_sources.{name}.array_shape: {array_shape!r} has a negative size"
            )
        try:
            dtype = np.dtype(array_dtype)
        except TypeError:
            raise SourceError(
                f"data_sources.{name}.array_dtype: {array_dtype!r} is not a numpy dtype"
            ) from None
        if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
            raise SourceError(
                f"data_sources.{name}.array_dtype: {array_dtype!r} is not an integer or float type"
            )
        self.shape = shape
        self.dtype = dtype
        self._rng = np.random.default_rng(seed)

    def info(self) -> DetectorInfo:
        return DetectorInfo(self.name, "generic", self.shape, self.dtype.name)

    def get_data(self, index: int) -> np.ndarray:
        if np.issubdtype(self.dtype, np.integer):
            return self._rng.integers(0, 255, size=self.shape).astype(self.dtype)
        return self._rng.random(self.shape).astype(self.dtype)

    def close(self) -> None:
        pass


class ConstantValue:
    """``IntValue`` / ``FloatValue``: the same scalar in every event."""

    def __init__(self, name: str, value: Any, dtype: Any) -> None:
        self.name = name
        self.value = np.array(value, dtype=dtype)

    def info(self) -> DetectorInfo | None:
        return None

    def get_data(self, index: int) -> np.ndarray:
        return self.value

    def close(self) -> None:
        pass


class SourceIdentifierValue(ConstantValue):
    """The config's ``source_identifier`` as a 0-d string array in every event."""

    def __init__(self, name: str, identifier: str) -> None:
        super().__init__(name, identifier, None)
