"""genoae.io.vae_model: the VAE model file (state dict + JSON metadata, read with weights_only=True)."""
import json
import pickle

import pytest
import torch

from genoae.errors import InputError
from genoae.io.vae_model import FORMAT_NAME, load_vae, save_vae


def test_round_trip_records_format_and_allele_convention(tmp_path):
    path = tmp_path / "m.pt"
    state = {"weight": torch.arange(6.0).view(2, 3), "bias": torch.zeros(3)}
    save_vae(path, state, {"mode": "haplotype", "populations": ["YRI"]})
    loaded, metadata = load_vae(path)
    assert set(loaded) == {"weight", "bias"} and torch.equal(loaded["weight"], state["weight"])
    assert metadata["format"] == FORMAT_NAME and metadata["mode"] == "haplotype"
    assert metadata["allele_convention"].startswith("A2")
    assert not list(tmp_path.glob("*.tmp*"))  # nothing left beside the file


def test_other_formats_are_refused(tmp_path):
    wrong_format = tmp_path / "other.pt"
    torch.save({"state_dict": {}, "metadata": json.dumps({"format": "something-else"})}, wrong_format)
    with pytest.raises(InputError, match="model format 'something-else'"):
        load_vae(wrong_format)
    not_torch = tmp_path / "text.pt"
    not_torch.write_text("hello\n")
    with pytest.raises(InputError, match="not a genoae VAE model file .not a torch.save archive"):
        load_vae(not_torch)
    with pytest.raises(FileNotFoundError):
        load_vae(tmp_path / "absent.pt")


class _Payload:
    """An arbitrary object: weights_only loading must refuse to rebuild it."""


def test_pickled_objects_are_not_loaded(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "metadata": _Payload()}, path, pickle_module=pickle)
    with pytest.raises(InputError, match="not a genoae VAE model"):
        load_vae(path)
