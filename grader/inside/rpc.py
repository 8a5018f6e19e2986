"""The RPC frame format between the grader and the sandboxed worker: plain data only.

A frame is ``MAGIC | u32 header length | u64 payload length | header JSON | payload``. The header
is a JSON object; values inside it use a small tagged encoding so that tuples, bytes, dicts and
numpy arrays survive the trip. Arrays travel as npy blobs in the payload; an npy header is parsed
with numpy's own reader and object dtypes are refused. Nothing is ever pickled or evaluated, and
every length is capped before anything is allocated. This module is imported inside the sandbox:
it needs only the stdlib and (lazily) numpy.

Large arrays are not copied on the way (issue 6): the sender writes each array's own memory with
writev, and the receiver's arrays are views into the one buffer the frame was read into. Every
blob starts at a multiple of 64 bytes in the payload (zero padding between blobs) and npy
headers are padded to 64 bytes; the payload buffer itself is only as aligned as malloc makes it
(16 bytes), which is enough for every numpy dtype (an unaligned view would be copied). Each blob
may be referenced once, so two decoded arrays never share memory.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import select
import struct
import sys
import time
from collections.abc import Sequence
from typing import Any

MAGIC = b"GRD1"
_PREFIX = struct.Struct(">4sIQ")
MAX_HEADER_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_FRAME_BYTES = 512 * 1024 * 1024
MAX_DEPTH = 32
MAX_ITEMS = 2_000_000
BLOB_ALIGN = 64
NPY_HEADER_MAX = 10_240  # numpy reads at most 10,000 header bytes unless told otherwise
IOV_MAX = 512  # buffers per writev call; Linux allows 1024

Buffer = bytes | bytearray | memoryview
# JSON can spell a lone surrogate ("\\ud800"), which a str may hold but no report or gradebook can
# store (UTF-8 has no encoding for it): every string that comes out of a frame has them replaced.
_SURROGATE = re.compile("[\ud800-\udfff]")


class FrameError(Exception):
    """A frame is malformed, too large, or holds a value that may not cross the boundary."""


class UnsupportedValue(FrameError):
    """A value of a type that may not cross the boundary; the message names the type."""


class ChannelClosed(Exception):
    """The other side closed the channel (the worker died or exited)."""


class ChannelTimeout(Exception):
    """No complete frame arrived before the deadline."""


def _valid_str(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (issue 11)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def _plain(node: Any, depth: int = 0) -> Any:
    """A header field other than the value (a message, a traceback): JSON with its strings made valid."""
    if depth > MAX_DEPTH:
        raise FrameError(f"frame header is nested deeper than {MAX_DEPTH}")
    kind = type(node)
    if kind is str:
        return _valid_str(node)
    if kind is list:
        return [_plain(item, depth + 1) for item in node]
    if kind is dict:
        return {_valid_str(key): _plain(item, depth + 1) for key, item in node.items()}
    return node


def _type_name(value: object) -> str:
    kind = type(value)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _aligned(offset: int) -> int:
    return -(-offset // BLOB_ALIGN) * BLOB_ALIGN


class _Encoder:
    def __init__(self) -> None:
        self.blobs: list[tuple[Buffer, ...]] = []  # each blob: the buffers it is made of
        self.items = 0

    def blob(self, *parts: Buffer) -> int:
        self.blobs.append(parts)
        return len(self.blobs) - 1

    def encode(self, value: Any, depth: int = 0) -> Any:
        self.items += 1
        if depth > MAX_DEPTH or self.items > MAX_ITEMS:
            raise UnsupportedValue(f"value is nested deeper than {MAX_DEPTH} or has too many items")
        kind = type(value)
        if value is None or kind is bool or kind is str or kind is int:
            return value
        if kind is float:
            return value if math.isfinite(value) else {"$f": repr(value)}
        if kind is bytes:
            return {"$b": self.blob(value)}
        if kind is list:
            return [self.encode(item, depth + 1) for item in value]
        if kind is tuple:
            return {"$t": [self.encode(item, depth + 1) for item in value]}
        if kind is dict:
            if not all(type(key) is str for key in value):
                raise UnsupportedValue("dict keys must all be str")
            return {"$d": {key: self.encode(item, depth + 1) for key, item in value.items()}}
        return self.encode_foreign(value, depth)

    def encode_foreign(self, value: Any, depth: int) -> Any:
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            if type(value) is numpy.ndarray:
                return {"$a": self.blob(*_array_to_npy(numpy, value))}
            scalar_types = numpy.bool_ | numpy.integer | numpy.floating
            if isinstance(value, scalar_types) and type(value).__module__ == "numpy":
                return self.encode(value.item(), depth)
        torch = sys.modules.get("torch")
        if torch is not None and type(value) in (torch.Tensor, torch.nn.Parameter):
            array = value.detach().cpu().resolve_conj().resolve_neg().numpy()
            return {"$a": self.blob(*_array_to_npy(numpy, array))}
        raise UnsupportedValue(
            f"a value of type {_type_name(value)} cannot be returned; return plain data "
            "(numbers, strings, lists, tuples, dicts with str keys, numpy arrays or tensors)"
        )


def _array_to_npy(numpy: Any, array: Any) -> tuple[bytes, memoryview]:
    """An npy header and a view of the array's own bytes (copied only if not C-contiguous)."""
    if array.dtype.hasobject or array.dtype.fields is not None:
        raise UnsupportedValue(f"numpy arrays of dtype {array.dtype} cannot cross the boundary")
    if not array.flags.c_contiguous:
        array = array.copy(order="C")  # (ascontiguousarray would turn a 0-d array into 1-d)
    header = io.BytesIO()
    numpy.lib.format.write_array_header_2_0(header, numpy.lib.format.header_data_from_array_1_0(array))
    return header.getvalue(), memoryview(array.reshape(-1).view(numpy.uint8))


class _Decoder:
    def __init__(self, payload: memoryview, offsets: list[int], lengths: list[int]) -> None:
        self.payload, self.offsets, self.lengths = payload, offsets, lengths
        self.used: set[int] = set()
        self.items = 0

    def blob(self, index: Any) -> memoryview:
        """A blob, sliced only when referenced; each at most once (decoded arrays never share memory)."""
        if type(index) is not int or not 0 <= index < len(self.offsets):
            raise FrameError("frame references a payload blob that does not exist")
        if index in self.used:
            raise FrameError("frame references one payload blob twice")
        self.used.add(index)
        start = self.offsets[index]
        gap_start = self.offsets[index - 1] + self.lengths[index - 1] if index else 0
        if any(self.payload[gap_start:start]):
            raise FrameError("frame has non-zero padding between payload blobs")
        return self.payload[start : start + self.lengths[index]]

    def decode(self, node: Any, depth: int = 0) -> Any:
        self.items += 1
        if depth > MAX_DEPTH or self.items > MAX_ITEMS:
            raise FrameError(f"value is nested deeper than {MAX_DEPTH} or has too many items")
        kind = type(node)
        if kind is str:
            return _valid_str(node)
        if node is None or kind in (bool, int, float):
            return node
        if kind is list:
            return [self.decode(item, depth + 1) for item in node]
        if kind is not dict or len(node) != 1:
            raise FrameError("frame holds an untagged JSON object")
        tag, inner = next(iter(node.items()))
        if tag == "$t" and type(inner) is list:
            return tuple(self.decode(item, depth + 1) for item in inner)
        if tag == "$d" and type(inner) is dict:
            return {_valid_str(key): self.decode(item, depth + 1) for key, item in inner.items()}
        if tag == "$f" and inner in ("nan", "inf", "-inf"):
            return float(inner)
        if tag == "$b":
            return bytes(self.blob(inner))
        if tag == "$a":
            return _npy_to_array(self.blob(inner))
        raise FrameError(f"frame holds an unknown tag {tag!r}")


def _npy_to_array(data: memoryview) -> Any:
    """The array an npy blob holds, as a view into the frame's buffer (no copy of its data)."""
    import numpy

    npy = numpy.lib.format
    try:
        stream = io.BytesIO(data[:NPY_HEADER_MAX])  # only the header region is copied
        version = npy.read_magic(stream)
        read_header = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}[version]
        shape, fortran_order, dtype = read_header(stream)
        if dtype.hasobject or dtype.fields is not None:
            raise FrameError("array payload holds an object or structured dtype")
        count = math.prod(shape)
        if len(data) - stream.tell() != count * dtype.itemsize:
            raise FrameError("array payload length does not match its npy header")
        array = numpy.frombuffer(data, dtype=dtype, count=count, offset=stream.tell())
        array = array.reshape(shape, order="F" if fortran_order else "C")
    except FrameError as exc:
        raise FrameError(f"array payload is not a valid npy blob ({exc})") from None
    except Exception as exc:  # a corrupt blob can raise ValueError, EOFError, KeyError, OverflowError...
        raise FrameError(f"array payload is not a valid npy blob ({type(exc).__name__})") from None
    if not array.flags.aligned:
        array = array.copy()  # never from our own encoder, whose blobs are aligned
    return array


def encode_frame(header: dict[str, Any], value: Any = None) -> list[Buffer]:
    """One frame as the buffers to write in order; ``value`` goes into header['value'], arrays
    into blobs that are views of the arrays themselves (keep them unchanged until written)."""
    encoder = _Encoder()
    body = dict(header)
    body["value"] = encoder.encode(value)
    lengths = [sum(len(memoryview(part).cast("B")) for part in parts) for parts in encoder.blobs]
    body["blobs"] = lengths
    header_bytes = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    buffers: list[Buffer] = []
    offset = 0
    for parts, length in zip(encoder.blobs, lengths, strict=True):
        if offset != _aligned(offset):
            buffers.append(bytes(_aligned(offset) - offset))
            offset = _aligned(offset)
        buffers.extend(parts)
        offset += length
    return [_PREFIX.pack(MAGIC, len(header_bytes), offset) + header_bytes, *buffers]


def decode_frame(header_bytes: bytes, payload: memoryview) -> dict[str, Any]:
    """Parse and strictly validate a frame's header and payload into plain data.

    Whatever the bytes, this returns plain data or raises FrameError: the frames come from
    student code, and any other exception would look like a bug in the grader.
    """
    try:
        return _decode_frame(header_bytes, payload)
    except FrameError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. ValueError (a 5000-digit int), RecursionError ("[[[...")
        raise FrameError(f"frame cannot be decoded ({type(exc).__name__})") from None


def _decode_frame(header_bytes: bytes, payload: memoryview) -> dict[str, Any]:
    try:
        header = json.loads(header_bytes.decode("utf-8"))  # strict: our encoder writes ASCII only
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FrameError("frame header is not valid JSON") from None
    if type(header) is not dict:
        raise FrameError("frame header is not a JSON object")
    lengths = header.pop("blobs", [])
    header = {_valid_str(key): item if key == "value" else _plain(item) for key, item in header.items()}
    if type(lengths) is not list or len(lengths) > MAX_ITEMS:
        raise FrameError("frame header has a malformed blob table")
    offsets, offset = [], 0
    for length in lengths:  # plain arithmetic: no view is made until a value refers to a blob
        if type(length) is not int or length < 0:
            raise FrameError("frame header has a malformed blob table")
        offset = _aligned(offset)
        offsets.append(offset)
        offset += length
    if offset != len(payload):
        raise FrameError("frame payload length does not match its blob table")
    if "value" in header:
        header["value"] = _Decoder(payload, offsets, lengths).decode(header["value"])
    return header


def write_all(fd: int, data: Buffer | Sequence[Buffer]) -> None:
    """Write every byte of one buffer, or of several in order with writev (no joining copy)."""
    parts = [data] if isinstance(data, bytes | bytearray | memoryview) else data
    views = [view for view in (memoryview(part).cast("B") for part in parts) if len(view)]
    first = 0  # views before this one are fully written
    while first < len(views):
        written = os.writev(fd, views[first : first + IOV_MAX])
        while first < len(views) and written >= len(views[first]):
            written -= len(views[first])
            first += 1
        if written:
            views[first] = views[first][written:]


def _read_exact(fd: int, size: int, deadline: float | None) -> bytearray:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise ChannelTimeout()
        chunk = os.readv(fd, [view[got:]])
        if chunk == 0:
            raise ChannelClosed()
        got += chunk
    return buffer


def read_frame(
    fd: int, deadline: float | None = None, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> dict[str, Any]:
    """Read and decode one frame; raise ChannelTimeout, ChannelClosed or FrameError."""
    magic, header_len, payload_len = _PREFIX.unpack(_read_exact(fd, _PREFIX.size, deadline))
    if magic != MAGIC:
        raise FrameError("channel is out of sync (bad frame magic)")
    if header_len > MAX_HEADER_BYTES or header_len + payload_len > max_frame_bytes:
        raise FrameError(
            f"frame of {(header_len + payload_len) / 1e6:.1f} MB is over the "
            f"{max_frame_bytes / 1e6:.0f} MB limit for one value"
        )
    header = _read_exact(fd, header_len, deadline)
    payload = _read_exact(fd, payload_len, deadline)
    return decode_frame(bytes(header), memoryview(payload))
