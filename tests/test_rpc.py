"""The RPC frame format: plain data round-trips, everything else is refused."""

from __future__ import annotations

import io
import json
import os
import struct

import numpy as np
import pytest
import torch

from grader.inside import rpc


def roundtrip(value):
    frame = rpc.encode_frame({"id": 1}, value)
    read, write = os.pipe()
    try:
        rpc.write_all(write, frame)
        return rpc.read_frame(read)["value"]
    finally:
        os.close(read)
        os.close(write)


def test_plain_values_roundtrip_exactly():
    value = {
        "none": None, "bool": True, "int": 2**70, "float": 1.5, "nan": float("nan"),
        "inf": float("-inf"), "str": "é", "bytes": b"\x00\xff", "list": [1, [2]],
        "tuple": (1, (2, 3)), "nested": {"a": {"b": [()]}},
    }  # fmt: skip
    back = roundtrip(value)
    assert back["tuple"] == (1, (2, 3)) and type(back["tuple"]) is tuple
    assert np.isnan(back.pop("nan")) and np.isnan(value.pop("nan"))
    assert back == value


def test_arrays_keep_dtype_and_shape():
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    back = roundtrip((array, np.int64(3), np.float64(2.5), np.bool_(True)))
    assert type(back[0]) is np.ndarray and back[0].dtype == np.float32
    np.testing.assert_array_equal(back[0], array)
    assert back[1:] == (3, 2.5, True) and type(back[1]) is int


def test_tensors_become_arrays():
    tensor = torch.ones(2, 2, requires_grad=True) * 3
    back = roundtrip(tensor)
    assert type(back) is np.ndarray
    np.testing.assert_array_equal(back, np.full((2, 2), 3.0, np.float32))


class Liar:
    def __eq__(self, other):
        return True


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(Liar(), "Liar"), (np.arange(3).view(type("Sub", (np.ndarray,), {})), "Sub"),
     ({1: "int key"}, None), (np.array([object()]), None), ({1, 2}, "set")],
)  # fmt: skip
def test_non_plain_values_are_refused(value, type_name):
    with pytest.raises(rpc.UnsupportedValue) as caught:
        rpc.encode_frame({"id": 1}, value)
    if type_name:
        assert type_name in str(caught.value)


def _frame(header: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">4sIQ", rpc.MAGIC, len(header), len(payload)) + header + payload


def _read(frame: bytes, **kwargs):
    read, write = os.pipe()
    try:
        os.write(write, frame)
        os.close(write)
        return rpc.read_frame(read, **kwargs)
    finally:
        os.close(read)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"XXXX" + b"\x00" * 12, "out of sync"),
        (_frame(b"not json"), "not valid JSON"),
        (_frame(b'{"value": {"__class__": "os.system"}}'), "unknown tag"),
        (_frame(b'{"value": {"a": 1, "b": 2}}'), "untagged JSON object"),
        (_frame(b'{"value": {"$x": 1}}'), "unknown tag"),
        (_frame(b'{"value": {"$a": 0}, "blobs": [3]}', b"abc"), "not a valid npy blob"),
        (_frame(b'{"value": {"$a": 5}, "blobs": []}'), "does not exist"),
        (_frame(b'{"blobs": [10]}', b"abc"), "does not match"),
    ],
)
def test_malformed_frames_are_frame_errors(frame, message):
    with pytest.raises(rpc.FrameError, match=message):
        _read(frame)


def test_pickled_npy_is_refused():
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    blob = buffer.getvalue()
    frame = _frame(b'{"value": {"$a": 0}, "blobs": [%d]}' % len(blob), blob)
    with pytest.raises(rpc.FrameError, match="not a valid npy blob"):
        _read(frame)


def test_oversized_frame_is_refused_before_reading_it():
    header = struct.pack(">4sIQ", rpc.MAGIC, 10, 2**40)
    with pytest.raises(rpc.FrameError, match="over the 1 MB limit"):
        _read(header, max_frame_bytes=1_000_000)


def test_closed_channel_and_timeout():
    read, write = os.pipe()
    with pytest.raises(rpc.ChannelTimeout):
        rpc.read_frame(read, deadline=0)
    os.close(write)
    with pytest.raises(rpc.ChannelClosed):
        rpc.read_frame(read)
    os.close(read)


def _pipe_roundtrip(frame):
    """Write a frame from a thread (it can be larger than the pipe's buffer) and read it back."""
    import threading

    read, write = os.pipe()
    writer = threading.Thread(target=rpc.write_all, args=(write, frame))
    writer.start()
    try:
        return rpc.read_frame(read)["value"]
    finally:
        writer.join()
        os.close(read)
        os.close(write)


def test_arrays_are_sent_from_their_own_memory_and_received_as_views():
    array = np.zeros(1000, dtype=np.float64)
    frame = rpc.encode_frame({"id": 1}, {"x": array})
    array[7] = 5.0  # changed after encoding, before writing: the frame holds no copy
    back = _pipe_roundtrip(frame)["x"]
    assert back[7] == 5.0
    assert not back.flags.owndata and back.flags.writeable and back.flags.aligned


@pytest.mark.parametrize(
    "array",
    [
        np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        np.arange(20, dtype=np.int16)[::3],
        np.array(3.5),
        np.zeros((0, 4), dtype=np.float32),
        np.arange(5, dtype=">i4"),
        np.array([True, False]),
        np.array([1 + 2j], dtype=np.complex128),
    ],
    ids=["fortran", "strided", "0-d", "empty", "big-endian", "bool", "complex"],
)
def test_unusual_arrays_roundtrip(array):
    back = roundtrip((b"x", array, b"yy", array))  # bytes between arrays shift the blob offsets
    for got in back[1], back[3]:
        assert got.dtype == array.dtype and got.shape == array.shape
        np.testing.assert_array_equal(got, array)
        assert got.flags.aligned


def test_a_large_array_crosses_a_pipe_intact():
    array = np.random.default_rng(0).standard_normal((2048, 4096)).astype(np.float32)  # 32 MB
    back = _pipe_roundtrip(rpc.encode_frame({"id": 1}, [array, array[:3]]))
    np.testing.assert_array_equal(back[0], array)
    np.testing.assert_array_equal(back[1], array[:3])


def test_npy_header_that_disagrees_with_the_blob_length_is_refused():
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.arange(4.0), allow_pickle=False)
    blob = buffer.getvalue()[:-8]  # one float short
    frame = _frame(b'{"value": {"$a": 0}, "blobs": [%d]}' % len(blob), blob)
    with pytest.raises(rpc.FrameError, match="does not match its npy header"):
        _read(frame)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (_frame(b'{"value": ' + b"9" * 5000 + b"}"), "cannot be decoded"),  # int over Python's digit limit
        (_frame(b"[" * 50_000), "cannot be decoded|not valid JSON"),  # recursion in the JSON parser (fits a pipe)
        (_frame(b'{"value": {"$t": [{"$b": 0}, {"$b": 0}]}, "blobs": [2]}', b"ab"), "one payload blob twice"),
        (_frame(b'{"value": [{"$b": 0}, {"$b": 1}], "blobs": [1, 1]}', b"a" + b"x" * 63 + b"b"), "non-zero padding"),
        (_frame(b'{"blobs": [0, 0, -1]}'), "malformed blob table"),
    ],
    ids=["huge-int", "deep-json", "blob-twice", "padding", "negative-length"],
)
def test_hostile_frames_are_frame_errors_and_nothing_else(frame, message):
    with pytest.raises(rpc.FrameError, match=message):
        _read(frame)


def test_a_huge_blob_table_costs_no_views():
    """A million empty blobs used to make a million memoryviews before anything was checked."""
    import threading
    import tracemalloc

    header = b'{"blobs": [' + b",".join([b"0"] * 1_000_000) + b"]}"
    read, write = os.pipe()
    writer = threading.Thread(target=rpc.write_all, args=(write, _frame(header)))  # larger than a pipe holds
    writer.start()
    tracemalloc.start()
    try:
        rpc.read_frame(read)
    finally:
        writer.join()
        os.close(read)
        os.close(write)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 80 * 2**20, f"decoding an empty blob table peaked at {peak / 2**20:.0f} MB"


def test_write_all_keeps_order_across_partial_writes_of_many_buffers(monkeypatch):
    written = bytearray()

    def short_writev(fd, views):  # writes at most 7 bytes a call, like a full pipe would
        taken = b"".join(bytes(v) for v in views)[:7]
        written.extend(taken)
        return len(taken)

    monkeypatch.setattr(rpc.os, "writev", short_writev)
    parts = [bytes([i % 251]) * (i % 5) for i in range(2000)]
    rpc.write_all(0, parts)
    assert bytes(written) == b"".join(parts)


# ------------------------------------------------------------------ strings from the box (issue 11)


def test_lone_surrogates_from_the_box_become_replacement_characters():
    """A str may hold "\\ud800"; JSON spells it, but no report or gradebook can store it."""
    value = {"s": "a\ud800b", "key \udcff": ["\udfff", ("\ud83d",)], "fine": "é😀"}
    frame = rpc.encode_frame({"id": 1, "message": "ValueError: \ud800", "detail": {"x\udc80": ["\udc80"]}}, value)
    read, write = os.pipe()
    try:
        rpc.write_all(write, frame)
        header = rpc.read_frame(read)
    finally:
        os.close(read)
        os.close(write)
    assert header["value"] == {"s": "a\ufffdb", "key \ufffd": ["\ufffd", ("\ufffd",)], "fine": "é😀"}
    assert header["message"] == "ValueError: \ufffd"
    assert header["detail"] == {"x\ufffd": ["\ufffd"]}
    json.dumps(header["value"], ensure_ascii=False).encode()  # what writing a report needs: no error


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (_frame(b'{"message": "\xed\xa0\x80"}'), "not valid JSON"),  # a surrogate as raw (invalid) UTF-8
        (_frame(b'{"id": 1}'.replace(b"1", b"1, \xff")), "not valid JSON"),
        (_frame(b'{"detail": ' + b"[" * 40 + b"]" * 40 + b"}"), "header is nested deeper than 32"),
    ],
    ids=["raw-surrogate", "not-utf8", "deep-header-field"],
)
def test_header_fields_are_checked_like_values(frame, message):
    with pytest.raises(rpc.FrameError, match=message):
        _read(frame)
