"""torch's file format for a state dict of plain tensors, read and written with NumPy, without importing torch.

``genoae admix`` writes its model as a torch state dict (``torch.load(path, weights_only=True)`` reads it) from a
process that never imports torch (its import alone costs ~190 MB and 1.5-2 s).  The format (torch ≥ 1.6): an
uncompressed zip whose ``PREFIX/data.pkl`` is a protocol-2 pickle of an ``OrderedDict`` of
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)``, each storage a persistent
id ``('storage', torch.<Type>Storage, key, 'cpu', numel)`` whose bytes are the entry ``PREFIX/data/<key>``
(little-endian, 64-byte aligned).  The reader unpickles with an allow-list as ``weights_only`` does: only those
three names resolve (to functions of this module), so a file cannot run code.
"""
from __future__ import annotations

import hashlib
import io
import math
import pickle
import struct
import zipfile
from collections import OrderedDict

import numpy as np

# torch's storage class per dtype (little-endian)
_STORAGE_OF = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
               np.dtype(np.int64): "LongStorage", np.dtype(np.int32): "IntStorage",
               np.dtype(np.uint8): "ByteStorage", np.dtype(np.bool_): "BoolStorage"}
_DTYPE_OF = {name: dtype for dtype, name in _STORAGE_OF.items()}
_ALIGNMENT = 64
_PREFIX = "archive"


class FormatError(ValueError):
    """A file that is not a state dict of plain tensors in torch's format."""


# ------------------------------------------------------------------------------------------------ writing
def _pickle_state(state: dict) -> bytes:
    """The ``data.pkl`` of ``state`` (name → array), storages keyed '0', '1', … in order: pickle opcodes written
    out, because pickling torch's names the usual way would import torch."""
    out = io.BytesIO()

    def text(value: str) -> None:
        raw = value.encode("utf-8")
        out.write(pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw)

    def integer(value: int) -> None:
        if 0 <= value < 256:
            out.write(pickle.BININT1 + bytes([value]))
        elif -2**31 <= value < 2**31:
            out.write(pickle.BININT + struct.pack("<i", value))
        else:  # 2³¹ values or more in one tensor (a storage's count, a stride): pickle's LONG1, as pickle writes it
            raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            out.write(pickle.LONG1 + bytes([len(raw)]) + raw)

    def int_tuple(values) -> None:
        out.write(pickle.MARK)
        for value in values:
            integer(int(value))
        out.write(pickle.TUPLE)

    out.write(pickle.PROTO + b"\x02")
    out.write(pickle.GLOBAL + b"collections\nOrderedDict\n" + pickle.EMPTY_TUPLE + pickle.REDUCE)
    out.write(pickle.MARK)
    for key, (name, array) in enumerate(state.items()):
        text(name)
        out.write(pickle.GLOBAL + b"torch._utils\n_rebuild_tensor_v2\n")
        out.write(pickle.MARK)
        out.write(pickle.MARK)
        text("storage")
        out.write(pickle.GLOBAL + f"torch\n{_STORAGE_OF[array.dtype]}\n".encode())
        text(str(key))
        text("cpu")
        integer(array.size)
        out.write(pickle.TUPLE + pickle.BINPERSID)
        integer(0)
        int_tuple(array.shape)
        int_tuple(np.array(array.strides, np.int64) // max(array.itemsize, 1) if array.size else [1] * array.ndim)
        out.write(pickle.NEWFALSE)
        out.write(pickle.GLOBAL + b"collections\nOrderedDict\n" + pickle.EMPTY_TUPLE + pickle.REDUCE)
        out.write(pickle.TUPLE + pickle.REDUCE)
    out.write(pickle.SETITEMS + pickle.STOP)
    return out.getvalue()


def _write_entry(archive: zipfile.ZipFile, name: str, data, align: bool = False) -> None:
    """One stored (uncompressed) member; ``data`` bytes or a byte-format memoryview."""
    info = zipfile.ZipInfo(f"{_PREFIX}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    if align:  # pad the local header with an extra field so that the data start on a 64-byte boundary
        start = archive.fp.tell() + 30 + len(info.filename.encode()) + 4
        pad = -start % _ALIGNMENT
        info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    archive.writestr(info, data)


def write_state_dict(path, state: dict) -> None:
    """Write ``state`` (name → NumPy array of float32/64, int32/64, uint8 or bool) as torch.save would.

    The file is reproducible: the same arrays give the same bytes."""
    arrays = OrderedDict((name, np.require(np.asarray(value), requirements="C")) for name, value in state.items())
    for name, array in arrays.items():
        if array.dtype not in _STORAGE_OF:
            raise TypeError(f"{name}: dtype {array.dtype} has no torch storage here")
    payload = _pickle_state(arrays)
    # each array's little-endian bytes as a view (a copy only for a big-endian array): hashed and written in
    # place, never joined or copied again
    raw = [memoryview(np.ascontiguousarray(a, a.dtype.newbyteorder("<")).reshape(-1)).cast("B") if a.size else b""
           for a in arrays.values()]
    digest = hashlib.sha256(payload)
    for data in raw:
        digest.update(data)
    digest = digest.digest()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        _write_entry(archive, "data.pkl", payload)
        _write_entry(archive, ".format_version", b"1")
        _write_entry(archive, ".storage_alignment", str(_ALIGNMENT).encode())
        _write_entry(archive, "byteorder", b"little")
        for key, data in enumerate(raw):
            _write_entry(archive, f"data/{key}", data, align=True)
        _write_entry(archive, "version", b"3\n")
        _write_entry(archive, ".data/serialization_id", str(int.from_bytes(digest[:16], "little")).encode())


# ------------------------------------------------------------------------------------------------ reading
class _Storage:
    """A storage type named in the pickle (its dtype)."""

    def __init__(self, name: str):
        self.dtype = _DTYPE_OF[name]


class _LoadedStorage:
    """A storage read from the archive: a flat array (the only thing :func:`_rebuild_tensor` accepts)."""

    def __init__(self, array: np.ndarray):
        self.array = array


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, *extra):
    if not isinstance(storage, _LoadedStorage):
        raise FormatError("a tensor built from something other than a stored buffer")
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)):
        raise FormatError("a tensor's size and stride must be tuples of the same length")
    numbers = (offset, *size, *stride)
    if not all(type(value) is int and value >= 0 for value in numbers):
        raise FormatError("a tensor's offset, size and stride must be non-negative integers")
    array = storage.array
    count = math.prod(size)
    if count == 0:
        return np.zeros(size, array.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    # a tensor reads at most its own storage, and holds at most as many values as that storage after its offset
    if last >= array.size or count > array.size - offset:
        raise FormatError("a tensor reaches past its storage")
    itemsize = array.dtype.itemsize
    view = np.ndarray(size, array.dtype, buffer=array, offset=offset * itemsize,
                      strides=tuple(s * itemsize for s in stride))
    return np.array(view)


class _Unpickler(pickle._Unpickler):
    """pickle's Python unpickler (its opcodes are a table this class can narrow) with three classes, persistent
    storages read from the archive, and BUILD only where ``torch.save`` puts it: a state dict's ``_metadata``
    attribute.  BUILD on anything else would set attributes of this module's objects (``_rebuild_tensor``'s
    ``__defaults__``, a storage's dtype) from the file."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, handle, archive: zipfile.ZipFile, prefix: str):
        super().__init__(handle)
        self.archive, self.prefix = archive, prefix
        self.storages = {}

    def load_build(self):
        state = self.stack.pop()
        target = self.stack[-1]
        if type(target) is not OrderedDict or type(state) is not dict or not all(type(k) is str for k in state):
            raise FormatError("refused to load: the pickle sets attributes of something other than a state dict")
        target.__dict__.update(state)

    dispatch[pickle.BUILD[0]] = load_build

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _DTYPE_OF:
            return _Storage(name)
        raise FormatError(f"refused to load {module}.{name}: only a state dict of plain tensors is read")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _Storage)):
            raise FormatError(f"unexpected persistent id {pid!r}")
        _, storage, key, _location, numel = pid
        if type(numel) is not int or numel < 0 or not isinstance(key, str):
            raise FormatError(f"unexpected persistent id {pid!r}")
        if key not in self.storages:
            info = self.archive.getinfo(f"{self.prefix}/data/{key}")
            dtype = storage.dtype.newbyteorder("<")
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != numel * dtype.itemsize:
                raise FormatError(f"storage {key}: {info.file_size} stored bytes, {numel} values expected")
            data = self.archive.read(info)
            self.storages[key] = _LoadedStorage(np.frombuffer(data, dtype).astype(storage.dtype))
        return self.storages[key]


def read_state_dict(path) -> dict:
    """A state dict written by :func:`write_state_dict` or by ``torch.save`` (plain tensors only), as NumPy
    arrays.  Raises :class:`FormatError` (or ``zipfile.BadZipFile``, ``pickle.UnpicklingError``, ``KeyError``,
    ``EOFError``) for anything else."""
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise FormatError("no data.pkl in the archive: not a torch state dict file")
        prefix = pickles[0].split("/")[0]
        byteorder = f"{prefix}/byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise FormatError("big-endian tensors are not read")
        state = _Unpickler(io.BytesIO(archive.read(pickles[0])), archive, prefix).load()
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise FormatError("the file does not hold a state dict of tensors")
    return dict(state)
