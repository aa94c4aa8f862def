"""A strict Avro binary decoder, compiled from a schema into Python source at startup (pure).

fastavro reads leniently where the Avro specification does not allow it: it indexes enum symbols and
union branches as Python lists (an index of -1 reads as the last one), reads any boolean byte but 0 as
true, a negative length as "the rest", overlong and wrapped varints, and ``int`` values past 32 bits.
The decoder here refuses all of these, so that every body it accepts is the canonical encoding of the
record it returns (a record re-encodes to the same bytes), with two exceptions the specification allows:
arrays and maps in several blocks or with block sizes (fastavro writes one block), and a float32 NaN
whose payload Python quietens. It is also faster than a ``schemaless_reader``
call per message, because the schema is walked once, when the reader is compiled, not once per message.

Supported: null, boolean, int, long, float, double, bytes, string, enum, fixed, union, record (nested,
named references, recursion), array and map. Logical types read as their underlying type. A block of more
items than bytes left is refused (so an array of nulls cannot claim a billion items in ten bytes), and so is
a map key given twice.

>>> import fastavro, io
>>> schema = fastavro.parse_schema({"type": "record", "name": "R", "fields": [
...     {"name": "n", "type": "int"}, {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
...     {"name": "o", "type": ["null", "string"]}]})
>>> read = compile_reader(schema)
>>> read(b"\\x04\\x02\\x02\\x02x", 0)
({'n': 2, 'e': 'B', 'o': 'x'}, 5)
>>> read(b"\\x04\\x01\\x00", 0)
Traceback (most recent call last):
...
stream_scorer.codec.strict.MalformedAvro: enum E: index -1 out of range 0..1
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

Reader = Callable[[bytes, int], tuple[Any, int]]

_DOUBLE = struct.Struct("<d").unpack_from
_FLOAT = struct.Struct("<f").unpack_from


class MalformedAvro(ValueError):
    """The bytes are not the canonical Avro encoding of a value of the schema."""


def _long(b: bytes, p: int) -> tuple[int, int]:
    x = b[p]
    if x < 0x80:
        return (x >> 1) ^ -(x & 1), p + 1
    n, shift = x & 0x7F, 7
    while True:
        p += 1
        x = b[p]
        n |= (x & 0x7F) << shift
        if x < 0x80:
            break
        shift += 7
        if shift > 63:
            raise MalformedAvro("a varint longer than 10 bytes")
    if x == 0:
        raise MalformedAvro("an overlong varint (a zero last byte)")
    if n >= 1 << 64:
        raise MalformedAvro("a varint past 64 bits")
    return (n >> 1) ^ -(n & 1), p + 1


def _int(b: bytes, p: int) -> tuple[int, int]:
    n, q = _long(b, p)
    if not -(1 << 31) <= n < 1 << 31:
        raise MalformedAvro(f"an int past 32 bits ({q - p} bytes)")
    return n, q


def _bytes(b: bytes, p: int) -> tuple[bytes, int]:
    n, p = _long(b, p)
    end = p + n
    if n < 0 or end > len(b):
        raise MalformedAvro(f"a length of {n} with {len(b) - p} bytes left")
    return b[p:end], end


def _string(b: bytes, p: int) -> tuple[str, int]:
    n, p = _long(b, p)
    end = p + n
    if n < 0 or end > len(b):
        raise MalformedAvro(f"a length of {n} with {len(b) - p} bytes left")
    return b[p:end].decode(), end


def _boolean(b: bytes, p: int) -> tuple[bool, int]:
    x = b[p]
    if x > 1:
        raise MalformedAvro(f"a boolean byte {x} (0 or 1 only)")
    return x == 1, p + 1


def _double(b: bytes, p: int) -> tuple[float, int]:
    return _DOUBLE(b, p)[0], p + 8


def _float(b: bytes, p: int) -> tuple[float, int]:
    return _FLOAT(b, p)[0], p + 4


def _null(b: bytes, p: int) -> tuple[None, int]:
    return None, p


_PRIMITIVES: Mapping[str, str] = {
    "null": "_null",
    "boolean": "_boolean",
    "int": "_int",
    "long": "_long",
    "float": "_float",
    "double": "_double",
    "bytes": "_bytes",
    "string": "_string",
}


class _Compiler:
    """Writes one Python function per complex type; primitives are calls to the helpers above."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self.named: dict[str, str] = {}  # full name -> function name
        self.schemas: dict[str, Any] = {}  # full name -> schema, for references by name
        self._functions = 0

    def _new_function(self) -> str:
        self._functions += 1
        return f"_r{self._functions}"

    def reader(self, schema: Any) -> str:
        """The name of a function ``(bytes, position) -> (value, position)`` for ``schema``."""
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return _PRIMITIVES[schema]
            if schema in self.named:
                return self.named[schema]
            if schema in self.schemas:
                return self.reader(self.schemas[schema])
            raise MalformedAvro(f"unknown type {schema!r}")
        if isinstance(schema, list):
            return self._union(schema)
        kind = schema["type"]
        if kind in _PRIMITIVES:
            return _PRIMITIVES[kind]
        name = schema.get("name")
        if name is not None and name in self.named:
            return self.named[name]
        function = self._new_function()
        if name is not None:
            self.named[name] = function
            self.schemas[name] = schema
        build = {
            "record": self._record,
            "error": self._record,
            "enum": self._enum,
            "fixed": self._fixed,
            "array": self._blocks,
            "map": self._blocks,
        }
        if kind not in build:
            raise MalformedAvro(f"unsupported type {kind!r}")
        build[kind](function, schema)
        return function

    def _constant(self, value: Any) -> str:
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def _emit(self, *lines: str) -> None:
        self.lines.extend(lines)
        self.lines.append("")

    def _record(self, function: str, schema: Any) -> None:
        readers = [(field["name"], self.reader(field["type"])) for field in schema["fields"]]
        body = [f"    v{i}, p = {reader}(b, p)" for i, (_, reader) in enumerate(readers)]
        items = ", ".join(f"{name!r}: v{i}" for i, (name, _) in enumerate(readers))
        self._emit(f"def {function}(b, p):", *body, f"    return {{{items}}}, p")

    def _enum(self, function: str, schema: Any) -> None:
        symbols = self._constant(tuple(schema["symbols"]))
        n = len(schema["symbols"])
        where = self._constant(f"enum {schema['name'].rsplit('.', 1)[-1]}")
        self._emit(
            f"def {function}(b, p):",
            "    i, p = _int(b, p)",
            f"    if not 0 <= i < {n}:",
            f"        raise MalformedAvro(f'{{{where}}}: index {{i}} out of range 0..{n - 1}')",
            f"    return {symbols}[i], p",
        )

    def _fixed(self, function: str, schema: Any) -> None:
        size = int(schema["size"])
        if size < 0:
            raise MalformedAvro(f"a fixed of size {size}")
        self._emit(
            f"def {function}(b, p):",
            f"    end = p + {size}",
            "    if end > len(b):",
            f"        raise MalformedAvro('a fixed of {size} bytes past the end')",
            "    return b[p:end], end",
        )

    def _union(self, branches: list[Any]) -> str:
        function = self._new_function()
        readers = [self.reader(branch) for branch in branches]
        cases = [f"    {'if' if i == 0 else 'elif'} i == {i}:\n        return {r}(b, p)" for i, r in enumerate(readers)]
        self._emit(
            f"def {function}(b, p):",
            "    i, p = _long(b, p)",
            *cases,
            f"    raise MalformedAvro(f'union index {{i}} out of range 0..{len(readers) - 1}')",
        )
        return function

    def _blocks(self, function: str, schema: Any) -> None:
        item = self.reader(schema["items"] if schema["type"] == "array" else schema["values"])
        if schema["type"] == "array":
            init, read = "out = []", [f"            v, p = {item}(b, p)", "            out.append(v)"]
        else:
            init = "out = {}"
            read = [
                "            k, p = _string(b, p)",
                "            if k in out:",
                "                raise MalformedAvro('a map key given twice')",
                f"            out[k], p = {item}(b, p)",
            ]
        self._emit(
            f"def {function}(b, p):",
            f"    {init}",
            "    while True:",
            "        n, p = _long(b, p)",
            "        if n == 0:",
            "            return out, p",
            "        size = -1",
            "        if n < 0:  # a block with its size in bytes",
            "            n = -n",
            "            size, p = _long(b, p)",
            "        if n > len(b) - p:  # more items than bytes left: refused even for items of no width",
            "            raise MalformedAvro(f'a block of {n} items with {len(b) - p} bytes left')",
            "        start = p",
            "        for _ in range(n):",
            *read,
            "        if size >= 0 and p - start != size:",
            "            raise MalformedAvro(f'a block of {size} bytes that holds {p - start}')",
        )


def compile_reader(schema: Any) -> Reader:
    """A strict reader for ``schema`` (parsed by ``fastavro.parse_schema``, logical types removed).

    ``read(body, start)`` returns the value and the position after it; it raises :class:`MalformedAvro`
    for a non-canonical encoding, ``IndexError`` or ``struct.error`` for a body cut short, ``RecursionError``
    for a recursive record nested past Python's recursion limit, and
    ``UnicodeDecodeError`` for a string that is not UTF-8.
    """
    compiler = _Compiler()
    entry = compiler.reader(schema)
    namespace: dict[str, Any] = {
        "MalformedAvro": MalformedAvro,
        **{name: globals()[name] for name in _PRIMITIVES.values()},
        **compiler.constants,
    }
    # The generated source names fields only through repr() and symbols only through constants: a schema
    # cannot inject code into it.
    label = schema.get("name", "") if isinstance(schema, dict) else ""
    exec(compile("\n".join(compiler.lines), f"<avro reader {label}>", "exec"), namespace)
    reader: Reader = namespace[entry]
    return reader
