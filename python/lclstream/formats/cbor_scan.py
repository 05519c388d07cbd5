"""A pre-scan of CBOR bytes before ``cbor2`` decodes them: structure checked, nothing built.

Why: ``cbor2.loads`` trusts what the bytes declare. Value sharing (tags 28/29) lets a ~1 KB
message reference one container from thousands of places (decoders that rebuild or walk it
take tens of seconds), deep nesting recurses, and a declared length of 2^32 items makes it
allocate before it finds the bytes missing. This scanner walks the item headers only
(iteratively: no recursion, strings skipped in O(1)), so its cost is proportional to the
number of items actually present, and refuses, with a :class:`~lclstream.errors.FormatError`:

* tags 28 (shareable) and 29 (shared reference) and any tag in ``REFUSED_TAGS``;
* nesting deeper than ``Limits.max_cbor_depth`` (arrays, maps and tags);
* a container declaring more than ``Limits.max_cbor_length`` items, or more items than
  bytes left (each item takes at least one byte);
* a string longer than ``Limits.max_cbor_string`` or than the bytes left;
* reserved additional-information values, a break outside an indefinite container,
  bytes after the top-level item, and a truncated item.
"""

from __future__ import annotations

from typing import Any

from lclstream.errors import FormatError
from lclstream.limits import DEFAULT_LIMITS, LimitExceeded, Limits

__all__ = ["REFUSED_TAGS", "scan"]

#: value sharing (RFC 8949 registry: 28 shareable, 29 sharedref) and string references
#: (256 stringref namespace, 25 stringref), which cbor2 also expands.
REFUSED_TAGS = frozenset({25, 28, 29, 256})

_INDEFINITE = -1


def scan(buf: Any, limits: Limits = DEFAULT_LIMITS, what: str = "CBOR", *, offset: int = 0) -> int:
    """Check the one CBOR item starting at ``offset`` of ``buf``; returns the number of items.

    Trailing bytes after the item are refused too (a message is one item).
    """
    mv = memoryview(buf)
    if mv.ndim != 1 or mv.itemsize != 1:
        mv = mv.cast("B")
    end = len(mv)
    pos = offset
    max_depth = limits.max_cbor_depth
    max_len = limits.max_cbor_length
    max_str = limits.max_cbor_string
    # stack of items still expected in each open container (-1: indefinite, until break);
    # a tag counts as a container of one item.
    stack: list[int] = []
    items = 0
    while True:
        if pos >= end:
            raise FormatError(f"{what}: truncated at byte {pos} (item incomplete)")
        ib = mv[pos]
        pos += 1
        major = ib >> 5
        info = ib & 0x1F
        if ib == 0xFF:  # break
            if not stack or stack[-1] != _INDEFINITE:
                raise FormatError(f"{what}: break code outside an indefinite container")
            stack.pop()
            n_done = True
        else:
            items += 1
            if info < 24:
                arg = info
            elif info <= 27:
                size = 1 << (info - 24)
                if pos + size > end:
                    raise FormatError(f"{what}: truncated at byte {pos} (item header)")
                arg = int.from_bytes(mv[pos : pos + size], "big")
                pos += size
            elif info == 31 and major in (2, 3, 4, 5):
                arg = _INDEFINITE
            else:
                raise FormatError(f"{what}: reserved additional information {info} at {pos - 1}")
            n_done = True
            if major in (2, 3):
                if arg == _INDEFINITE:  # chunks until break; each chunk a definite string
                    if len(stack) >= max_depth:
                        raise LimitExceeded(f"{what}: nesting deeper than max_cbor_depth")
                    stack.append(_INDEFINITE)
                    n_done = False
                else:
                    if arg > max_str:
                        raise LimitExceeded(
                            f"{what}: string of {arg} bytes, more than max_cbor_string={max_str}"
                        )
                    if pos + arg > end:
                        raise FormatError(
                            f"{what}: string declares {arg} bytes, {end - pos} left (truncated?)"
                        )
                    pos += arg
            elif major in (4, 5):
                if arg == _INDEFINITE:
                    count = _INDEFINITE
                else:
                    count = arg * 2 if major == 5 else arg
                    if arg > max_len:
                        raise LimitExceeded(
                            f"{what}: container of {arg} items, more than max_cbor_length={max_len}"
                        )
                    if count > end - pos:
                        raise FormatError(
                            f"{what}: container declares {arg} items, only {end - pos} bytes "
                            "left (truncated?)"
                        )
                if count != 0:
                    if len(stack) >= max_depth:
                        raise LimitExceeded(
                            f"{what}: nesting deeper than max_cbor_depth={max_depth}"
                        )
                    stack.append(count)
                    n_done = False
            elif major == 6:
                if arg in REFUSED_TAGS:
                    raise FormatError(
                        f"{what}: tag {arg} (value sharing / string references) is refused"
                    )
                if len(stack) >= max_depth:
                    raise LimitExceeded(f"{what}: nesting deeper than max_cbor_depth={max_depth}")
                stack.append(1)
                n_done = False
            # majors 0, 1, 7: the header was the whole item
        if n_done:
            # one item finished: count it off the open containers (definite ones)
            while stack and stack[-1] != _INDEFINITE:
                stack[-1] -= 1
                if stack[-1] == 0:
                    stack.pop()
                    continue
                break
            if not stack:
                break
    if pos != end:
        raise FormatError(f"{what}: {end - pos} bytes after the CBOR item")
    return items
