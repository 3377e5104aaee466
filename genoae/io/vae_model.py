"""Trained VAE models on disk: one file, ``torch.save`` of ``{"state_dict": tensors, "metadata": JSON text}``.

Read back with ``torch.load(weights_only=True)``, so a model file can hold tensors and strings only: nothing in a
user's file is unpickled as code.  What the weights mean (architecture, populations, the training variants, the
allele convention) is the JSON metadata; :class:`genoae.vae.SyntheticGenomes` builds itself from the two.
"""
from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import torch

from genoae.errors import InputError
from genoae.genotypes import ALLELE_CONVENTION
from genoae.io.atomic import atomic_path

FORMAT_NAME = "genoae-vae-1"


def save_vae(path, state_dict: dict, metadata: dict) -> None:
    """Write the weights (moved to the CPU) and ``metadata`` (plus format and allele convention) atomically."""
    state = {name: tensor.detach().cpu() for name, tensor in state_dict.items()}
    metadata = {"format": FORMAT_NAME, "allele_convention": ALLELE_CONVENTION, **metadata}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "metadata": json.dumps(metadata)}, tmp)


def load_vae(path) -> tuple[dict, dict]:
    """Read a file written by :func:`save_vae`.

    Returns
    -------
    state_dict : dict of str -> Tensor (CPU)
    metadata : dict

    Raises
    ------
    FileNotFoundError  when the file is absent; InputError when it is not a genoae VAE model.
    """
    if Path(path).is_file() and not zipfile.is_zipfile(path):
        # torch.save writes a zip archive; anything else (a VCF, a text file) gets a plain answer, not a parse error
        raise InputError(path, "not a genoae VAE model file (not a torch.save archive; expected the model written "
                               "by `genoae vae train`)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError:  # torch's message advises weights_only=False: exactly what must not be done
        raise InputError(path, "not a genoae VAE model file: it holds objects other than tensors and text, which "
                               "genoae never unpickles (a model file cannot run code)") from None
    except Exception as error:  # noqa: BLE001 - any unreadable file is an input error for the user
        raise InputError(path, f"not a genoae VAE model file ({type(error).__name__})") from None
    try:
        metadata = json.loads(blob["metadata"])
        state_dict = blob["state_dict"]
    except (TypeError, KeyError, IndexError, ValueError) as error:
        raise InputError(path, f"not a genoae VAE model file (no metadata and state dict: "
                               f"{type(error).__name__})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        found = metadata.get("format") if isinstance(metadata, dict) else None
        raise InputError(path, f"model format {found!r}, expected {FORMAT_NAME!r}")
    return state_dict, metadata
