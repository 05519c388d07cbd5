"""The ePix10ka gain-mode table, written out once for the numpy references of several tests."""

from __future__ import annotations

import numpy as np


def epix_gain_conditions(cb: np.ndarray) -> list[np.ndarray]:
    """Masks of the 7 gain modes, in the order of the constants' first axis, for ``np.select``.

    ``cb`` is the pixel's config bits with raw bit 14 (the auto-ranging switch) as bit 5.
    """
    return [
        cb & 28 == 28,
        cb & 28 == 12,
        cb & 12 == 8,
        cb & 60 == 16,
        cb & 60 == 0,
        cb & 60 == 48,
        cb & 60 == 32,
    ]
