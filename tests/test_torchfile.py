"""torch's state-dict file format, written and read without torch (genoae.io.torchfile), checked against torch."""
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch

from genoae.io.torchfile import FormatError, read_state_dict, write_state_dict


def sample_state():
    rng = np.random.default_rng(3)
    return {"encoder.weight": rng.random((3, 1000), dtype=np.float32), "encoder.bias": np.arange(3, dtype=np.float32),
            "p_logits": rng.random((1000, 3)), "counts": np.array([5, -7, 300], np.int64),
            "empty": np.zeros((0, 3), np.float32), "scalar": np.array(2.5), "flags": np.array([True, False])}


def test_torch_reads_what_genoae_writes_with_weights_only(tmp_path):
    state = sample_state()
    write_state_dict(tmp_path / "m.pt", state)
    loaded = torch.load(tmp_path / "m.pt", weights_only=True)
    assert list(loaded) == list(state)
    for name, value in state.items():
        assert tuple(loaded[name].shape) == value.shape, name
        np.testing.assert_array_equal(loaded[name].numpy(), value, err_msg=name)
    # torch can also map it: every tensor's bytes start on a 64-byte boundary, as torch.save writes them
    mapped = torch.load(tmp_path / "m.pt", weights_only=True, mmap=True)
    np.testing.assert_array_equal(mapped["p_logits"].numpy(), state["p_logits"])
    with zipfile.ZipFile(tmp_path / "m.pt") as archive:
        for info in archive.infolist():
            if "/data/" in info.filename:
                assert (info.header_offset + 30 + len(info.filename) + len(info.extra)) % 64 == 0


def test_genoae_reads_what_torch_writes_and_what_it_wrote(tmp_path):
    state = sample_state()
    torch.save({name: torch.from_numpy(value) for name, value in state.items()}, tmp_path / "t.pt")
    torch.save({"t": torch.arange(12.0).reshape(3, 4).T}, tmp_path / "strided.pt")  # a non-contiguous tensor
    write_state_dict(tmp_path / "g.pt", state)
    for path in (tmp_path / "t.pt", tmp_path / "g.pt"):
        back = read_state_dict(path)
        assert list(back) == list(state)
        for name, value in state.items():
            assert back[name].dtype == value.dtype and back[name].shape == value.shape, name
            np.testing.assert_array_equal(back[name], value, err_msg=name)
    np.testing.assert_array_equal(read_state_dict(tmp_path / "strided.pt")["t"], np.arange(12.0).reshape(3, 4).T)


def test_the_same_arrays_give_the_same_bytes(tmp_path):
    write_state_dict(tmp_path / "a.pt", sample_state())
    write_state_dict(tmp_path / "b.pt", sample_state())
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_objects_other_than_tensors_are_refused(tmp_path):
    torch.save({"weights": torch.ones(2), "step": torch.nn.Linear(2, 1)}, tmp_path / "module.pt")
    with pytest.raises(FormatError, match="refused to load"):
        read_state_dict(tmp_path / "module.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(zipfile.BadZipFile):
        read_state_dict(tmp_path / "junk.pt")


def test_admix_on_the_cpu_never_imports_torch(tmp_path):
    """The CPU path of admix (read, start, refinement, encoder, every output incl. the model file) and of project
    computes with NumPy: importing torch alone costs ~190 MB of memory and 1.5-2 s a run."""
    from tests.test_cli_admix import simulated_plink

    prefix, _, _, _ = simulated_plink(tmp_path, n=60, m=400)
    script = textwrap.dedent(f"""
        import sys
        from genoae.commands.admix import run_admix
        from genoae.commands.project import run_project
        run_admix({str(prefix) + ".bed"!r}, [2], prefix={str(tmp_path / "out")!r}, device="cpu", progress=False,
                  echo=lambda *a: None)
        run_project({str(prefix) + ".bed"!r}, {str(tmp_path / "out.2.model.pt")!r}, {str(tmp_path / "proj")!r},
                    device="cpu", progress=False, echo=lambda *a: None)
        print("torch" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                            cwd=str(tmp_path.parent))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"
    assert (tmp_path / "out.2.model.pt").exists() and (tmp_path / "proj.2.Q").exists()


def test_a_tensor_cannot_reach_past_its_storage(tmp_path):
    """A crafted pickle (a storage that is not a stored buffer, or a size beyond the storage) is refused, never
    read out of bounds."""

    from genoae.io import torchfile

    write_state_dict(tmp_path / "ok.pt", {"w": np.zeros(4, np.float32)})
    with zipfile.ZipFile(tmp_path / "ok.pt") as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}

    def crafted(payload: bytes, name: str):
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            for entry, data in entries.items():
                archive.writestr(entry, payload if entry.endswith("data.pkl") else data)
        return tmp_path / name

    # a storage argument that is not a stored buffer (a plain list in its place)
    forged = entries["archive/data.pkl"].replace(b"tQ", b"t0]", 1)
    with pytest.raises(Exception, match="stored buffer|unexpected|past"):
        torchfile.read_state_dict(crafted(forged, "forged.pt"))
    # a size larger than the 4 stored values
    too_big = entries["archive/data.pkl"].replace(b"(K\x04t(K\x01t", b"(K\x09t(K\x01t", 1)
    assert too_big != entries["archive/data.pkl"]
    with pytest.raises(FormatError, match="past its storage"):
        torchfile.read_state_dict(crafted(too_big, "big.pt"))



def test_attributes_are_set_only_on_a_state_dict(tmp_path):
    """torch.save writes a module's state dict with its ``_metadata`` attribute (a BUILD opcode), which is read;
    a crafted pickle that BUILDs on the tensor-rebuilding function (setting its ``__defaults__``) is refused and
    leaves the function as it was."""
    import pickle

    from genoae.io import torchfile

    module = torch.nn.Linear(3, 2)
    torch.save(module.state_dict(), tmp_path / "module_state.pt")
    back = read_state_dict(tmp_path / "module_state.pt")
    np.testing.assert_array_equal(back["weight"], module.weight.detach().numpy())

    write_state_dict(tmp_path / "ok.pt", {"w": np.zeros(4, np.float32)})
    with zipfile.ZipFile(tmp_path / "ok.pt") as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    defaults = torchfile._rebuild_tensor.__defaults__
    # GLOBAL torch._utils._rebuild_tensor_v2, then (None, {"__defaults__": (1, 2)}) BUILD, then POP, before the dict
    attack = (pickle.PROTO + b"\x02" + pickle.GLOBAL + b"torch._utils\n_rebuild_tensor_v2\n" + pickle.NONE
              + pickle.EMPTY_DICT + pickle.SHORT_BINUNICODE + b"\x0c__defaults__" + pickle.BININT1 + b"\x01"
              + pickle.BININT1 + b"\x02" + pickle.TUPLE2 + pickle.SETITEM + pickle.TUPLE2 + pickle.BUILD + pickle.POP)
    payload = entries["archive/data.pkl"]
    assert payload.startswith(pickle.PROTO + b"\x02")
    with zipfile.ZipFile(tmp_path / "attack.pt", "w") as archive:
        for entry, data in entries.items():
            archive.writestr(entry, attack + payload[2:] if entry.endswith("data.pkl") else data)
    with pytest.raises(FormatError, match="sets attributes"):
        read_state_dict(tmp_path / "attack.pt")
    assert torchfile._rebuild_tensor.__defaults__ == defaults


def test_counts_of_two_to_the_31_values_or_more_are_written():
    """A tensor of 2³¹ values or more (its storage's count and its size) is pickled with LONG1, as pickle does, not
    packed into a 32-bit integer (which raised); the metadata alone is checked, on a broadcast view (no 2 GB)."""
    import io
    import pickle
    from collections import OrderedDict

    from genoae.io.torchfile import _pickle_state

    n = 2**31 + 5
    data = _pickle_state({"big": np.broadcast_to(np.zeros(1, np.uint8), (n,)), "small": np.zeros(3, np.int64)})

    class Recording(pickle.Unpickler):
        def find_class(self, module, name):
            if name == "_rebuild_tensor_v2":
                return lambda *args: args
            return OrderedDict if name == "OrderedDict" else name

        def persistent_load(self, pid):
            return pid

    state = Recording(io.BytesIO(data)).load()
    storage, offset, size = state["big"][:3]
    assert storage[4] == n and offset == 0 and size == (n,)
    assert state["small"][0][4] == 3 and state["small"][2] == (3,)


def test_writing_does_not_copy_the_weights(tmp_path):
    """The writer hashes and writes each array's bytes in place: writing a 30 MB array allocates well under a
    copy of it (it held 2 copies while hashing: 61 MB here)."""
    import tracemalloc

    weights = {"w": np.random.default_rng(0).random((4000, 1000))}
    tracemalloc.start()
    try:
        write_state_dict(tmp_path / "w.pt", weights)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < weights["w"].nbytes / 10
    np.testing.assert_array_equal(read_state_dict(tmp_path / "w.pt")["w"], weights["w"])
