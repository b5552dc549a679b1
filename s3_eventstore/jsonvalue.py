"""Exact JSON values: what an envelope may hold, and how it is read and written losslessly.

agent-sdk writes envelopes with serde_json; this library keeps each envelope's bytes and
hands out Python values on request. Both directions must keep every value exact, or
refuse it with :class:`InvalidEnvelopeError` before anything is stored:

* **Integers** of any size up to 308 digits are kept exactly (Python ints). orjson reads
  only -2**63..2**64-1 as integers (it turns larger ones into floats), so lines holding
  larger integers are read with the standard library's parser instead.
* **Floats** must be exactly what their text says once read as an IEEE double (the text
  and the shortest rendering of the double denote the same decimal): ``0.1``, ``1.10``,
  ``-0.0``, ``1e300`` are, ``3.14159265358979323846``, ``1e400``, ``2.5e-324`` are not.
  NaN and infinities have no JSON form at all.
* ``-0`` (an integer literal) is read as ``-0.0``, as serde_json does.
* **Nesting** deeper than serde_json's recursion limit (127 levels, the envelope included)
  is refused: agent-sdk could not read it back.
* Only JSON types: ``dict`` (string keys), ``list``/``tuple``, ``str``, ``int``, ``float``,
  ``bool``, ``None`` (subclasses of these are written as their base value). Dataclasses,
  datetimes, enums that are not str/int/float subclasses, UUIDs, numpy values, orjson
  fragments and every other type that orjson would render by its own rules are refused.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import orjson

from s3_eventstore.errors import InvalidEnvelopeError

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "dump_exact", "load_exact", "plain_json"]

MAX_DEPTH: Final = 127
"""Deepest nesting of arrays and objects (the envelope object counts): serde_json refuses
a document whose 128th nested container opens (its default recursion limit)."""
MAX_INT_DIGITS: Final = 308
"""Longest integer accepted: any longer one overflows a double, which orjson then refuses."""
_INT_LIMIT: Final = 10**MAX_INT_DIGITS
_ORJSON_INT_MIN: Final = -(2**63)
_ORJSON_INT_MAX: Final = 2**64 - 1
_NEGATIVE_ZERO = re.compile(rb"-0(?![\w.])")
"""``-0`` as an integer literal (``-0.5``, ``-0e1`` and ``-03:00`` do not match)."""


class _Refused(Exception):
    """Raised inside the standard library parser's hooks to stop it."""


def _describe(path: tuple[Any, ...]) -> str:
    text = "$"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def plain_json(value: Any) -> tuple[Any, bool]:
    """Copy ``value`` into plain JSON types, refusing anything that is not exactly JSON.

    Iterative, so that deep input fails with a clear error instead of ``RecursionError``.
    Returns the copy and whether it holds an integer orjson cannot write (outside
    ``-2**63..2**64-1``).

    Raises:
        InvalidEnvelopeError: a value has no exact JSON form, or nesting is too deep.
    """
    wide = False
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, tuple[Any, ...], int]] = [(value, root, 0, (), 0)]
    while stack:
        item, parent, slot, path, depth = stack.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            parent[slot] = item
        elif kind is int:
            if not _ORJSON_INT_MIN <= item <= _ORJSON_INT_MAX:
                _check_int(item, path)
                wide = True
            parent[slot] = item
        elif kind is float:
            if not math.isfinite(item):
                raise InvalidEnvelopeError(
                    f"{_describe(path)} is {item!r}, which JSON cannot represent"
                )
            parent[slot] = item
        elif kind is dict or kind is list or kind is tuple or isinstance(item, dict | list | tuple):
            if depth + 1 > MAX_DEPTH:
                raise InvalidEnvelopeError(
                    f"{_describe(path)} is nested more than {MAX_DEPTH} levels deep "
                    "(serde_json's recursion limit): agent-sdk could not read it"
                )
            if isinstance(item, dict):
                out: dict[str, Any] = {}
                parent[slot] = out
                for key, sub in item.items():
                    if type(key) is not str:
                        if not isinstance(key, str):
                            raise InvalidEnvelopeError(
                                f"envelope is not JSON-serialisable: Dict key must be str, "
                                f"not {type(key).__name__} {key!r} at {_describe(path)}"
                            )
                        key = str.__str__(key)
                    out[key] = None  # keeps the key order; filled in below
                    stack.append((sub, out, key, (*path, key), depth + 1))
            else:
                items = list(item)
                parent[slot] = items
                stack.extend(
                    (sub, items, index, (*path, index), depth + 1)
                    for index, sub in enumerate(items)
                )
        elif isinstance(item, str):
            parent[slot] = str.__str__(item)
        elif isinstance(item, int):
            stack.append((int.__int__(item), parent, slot, path, depth))
        elif isinstance(item, float):
            stack.append((float.__float__(item), parent, slot, path, depth))
        else:
            raise InvalidEnvelopeError(
                f"envelope is not JSON-serialisable: Type is not JSON serializable: "
                f"{type(item).__name__} at {_describe(path)} (an envelope holds only JSON "
                "values: dict, list, str, int, float, bool, None; convert it first)"
            )
    return root[0], wide


def _check_int(value: int, path: tuple[Any, ...]) -> None:
    if not -_INT_LIMIT < value < _INT_LIMIT:
        raise InvalidEnvelopeError(
            f"{_describe(path)} is an integer of more than {MAX_INT_DIGITS} digits, "
            "which a JSON reader cannot hold (it overflows a double)"
        )


def dump_exact(plain: Any, *, wide: bool) -> bytes:
    """Render a value from :func:`plain_json` as one compact JSON line (exact-size bytes).

    Raises:
        InvalidEnvelopeError: a string holds a lone surrogate (not UTF-8).
    """
    try:
        if not wide:
            # orjson's result keeps a ~4 KiB allocation; a copy holds only its length.
            return bytes(memoryview(orjson.dumps(plain)))
        text = json.dumps(plain, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8")
    except (TypeError, ValueError) as err:  # orjson.JSONEncodeError is a TypeError
        raise InvalidEnvelopeError(f"envelope is not JSON-serialisable: {err}") from None


def _has_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float:
            return True
    return False


def _depth(value: Any) -> int:
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is dict or kind is list:
            deepest = max(deepest, depth)
            stack.extend((sub, depth + 1) for sub in (item.values() if kind is dict else item))
    return deepest


def _exact_int(text: str) -> int | float:
    if text == "-0":
        return -0.0
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(
            f"an integer of more than {MAX_INT_DIGITS} digits, which a JSON reader "
            "cannot hold (it overflows a double)"
        )
    return int(text)


def _exact_float(text: str) -> float:
    number = float(text)
    try:
        exact = math.isfinite(number) and Decimal(repr(number)) == Decimal(text)
    except InvalidOperation:  # pragma: no cover - the JSON grammar is a Decimal subset
        exact = False
    if not exact:
        raise _Refused(
            f"the number {text[:40]} cannot be held exactly by a double "
            f"(it would read as {number!r}); write it as a string"
        )
    return number


def _no_constant(text: str) -> Any:
    raise _Refused(f"{text} is not JSON")


def load_exact(raw: bytes) -> tuple[Any, bool]:
    """Parse one JSON document exactly. Returns the value and whether it needs
    :func:`load_wide` to be read again exactly (integers orjson cannot hold, ``-0``).

    Raises:
        InvalidEnvelopeError: not JSON, nested too deep, or a number that cannot be
            held exactly.
    """
    too_deep = (
        f"envelope is nested more than {MAX_DEPTH} levels deep (serde_json's recursion "
        "limit): agent-sdk could not read it"
    )
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        if "depth limit" in str(err):  # orjson stops at 1024 levels
            raise InvalidEnvelopeError(too_deep) from None
        raise InvalidEnvelopeError(f"envelope is not valid JSON: {err}") from None
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _depth(data) > MAX_DEPTH:
        raise InvalidEnvelopeError(too_deep)
    # orjson renders every number it read exactly as the shortest form of its value: a
    # line it reproduces byte for byte holds only exact numbers (the common case, cheap).
    if orjson.dumps(data) == raw or not (_has_float(data) or _NEGATIVE_ZERO.search(raw)):
        return data, False
    exact = load_wide(raw)
    return exact, _has_wide(exact)


def load_wide(raw: bytes) -> Any:
    """Parse with the standard library, every integer exact and every float checked.

    Raises:
        InvalidEnvelopeError: a number cannot be held exactly, or the text is not JSON.
    """
    try:
        return json.loads(
            raw,
            parse_int=_exact_int,
            parse_float=_exact_float,
            parse_constant=_no_constant,
        )
    except _Refused as err:
        raise InvalidEnvelopeError(f"envelope holds {err}") from None
    except (ValueError, RecursionError) as err:
        raise InvalidEnvelopeError(f"envelope is not valid JSON: {err}") from None


def _has_wide(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is int and not _ORJSON_INT_MIN <= item <= _ORJSON_INT_MAX:
            return True
        elif kind is float and item == 0.0 and math.copysign(1.0, item) < 0:
            return True  # could come from "-0", which orjson reads as the integer 0
    return False
