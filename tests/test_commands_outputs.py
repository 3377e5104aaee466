"""No command writes over its inputs, and admix replaces an existing PREFIX.h5 only when it holds genoae results."""
import hashlib

import numpy as np
import pytest

from genoae.cli import main
from genoae.genotypes import Genotypes
from genoae.io import write_genotypes


def _run(capsys, *args):
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in args])
    return stop.value.code, capsys.readouterr().err


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def geno_h5(tmp_path):
    path = tmp_path / "geno.h5"
    write_genotypes(Genotypes.from_counts(np.random.default_rng(0).integers(0, 3, (30, 120))), path)
    return path


def test_admix_refuses_the_default_prefix_that_is_its_input(tmp_path, geno_h5, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _digest(geno_h5)
    code, err = _run(capsys, "admix", "geno.h5", "-k", 2, "--quiet")
    assert code == 2 and "geno.h5 is the input" in err
    assert _digest(geno_h5) == before and sorted(p.name for p in tmp_path.iterdir()) == ["geno.h5"]


def test_admix_replaces_its_own_results_but_not_a_genotype_h5(tmp_path, geno_h5, capsys):
    out = tmp_path / "run"
    assert _run(capsys, "admix", geno_h5, "-k", 2, "-o", out, "--quiet")[0] == 0
    assert _run(capsys, "admix", geno_h5, "-k", 2, "-o", out, "--quiet")[0] == 0  # a rerun replaces its results
    other = tmp_path / "other.h5"
    other.write_bytes(geno_h5.read_bytes())
    before = _digest(other)
    code, err = _run(capsys, "admix", geno_h5, "-k", 2, "-o", tmp_path / "other", "--quiet")
    assert code == 2 and "not a genoae results file" in err and _digest(other) == before
    assert not (tmp_path / "other.2.Q").exists()


def test_convert_and_vae_refuse_to_write_over_their_input(tmp_path, geno_h5, capsys):
    write_genotypes(Genotypes.from_counts(np.zeros((4, 3), np.int8)), tmp_path / "x.bed")
    for args in (("convert", geno_h5, geno_h5), ("convert", tmp_path / "x.bed", tmp_path / "x.fam"),
                 ("vae", "train", geno_h5, "-o", geno_h5)):
        code, err = _run(capsys, *args)
        assert code == 2 and "is the input" in err, args


def test_check_outputs_sees_through_links_and_refuses_directories(tmp_path, geno_h5):
    from genoae.commands.common import check_outputs
    from genoae.errors import UsageError

    alias = tmp_path / "alias.h5"
    alias.symlink_to(geno_h5)
    with pytest.raises(UsageError, match="is the input"):
        check_outputs([alias], [geno_h5])
    (tmp_path / "folder.Q").mkdir()
    with pytest.raises(UsageError, match="directory"):
        check_outputs([tmp_path / "folder.Q"], [geno_h5])
    check_outputs([tmp_path / "fresh.h5"], [geno_h5, None], results_file=tmp_path / "fresh.h5")  # nothing there yet
