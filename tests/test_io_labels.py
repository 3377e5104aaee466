import numpy as np
import pytest

from genoae.errors import InputError
from genoae.genotypes import Samples
from genoae.io.labels import read_labels
from tests.conftest import shared_path


def test_table_matched_by_iid_in_sample_order(tmp_path):
    (tmp_path / "l.tsv").write_text("FID\tIID\tPOP\nf1\ta\tYRI\nf2\tb\tCEU\nf3\tc\tCHB\n")
    np.testing.assert_array_equal(read_labels(tmp_path / "l.tsv", Samples(["c", "a"])), ["CHB", "YRI"])
    np.testing.assert_array_equal(read_labels(tmp_path / "l.tsv"), ["YRI", "CEU", "CHB"])
    with pytest.raises(InputError, match="no label for sample 'zz'"):
        read_labels(tmp_path / "l.tsv", ["a", "zz"])
    with pytest.raises(InputError, match="no column 'super_pop'"):
        read_labels(tmp_path / "l.tsv", ["a"], column="super_pop")


def test_column_choice_and_plain_file(tmp_path):
    (tmp_path / "l.tsv").write_text("sample pop super_pop gender\nx GBR EUR male\ny YRI AFR female\n")
    np.testing.assert_array_equal(read_labels(tmp_path / "l.tsv", ["y", "x"]), ["YRI", "GBR"])
    np.testing.assert_array_equal(read_labels(tmp_path / "l.tsv", ["y"], column="super_pop"), ["AFR"])
    (tmp_path / "plain.txt").write_text("YRI\nCEU\n")
    np.testing.assert_array_equal(read_labels(tmp_path / "plain.txt", ["p", "q"]), ["YRI", "CEU"])
    with pytest.raises(InputError, match="2 labels"):
        read_labels(tmp_path / "plain.txt", ["p"])


def test_shared_label_files():
    from genoae.io import read_genotypes

    geno = read_genotypes(shared_path("hapmap3_admixture", "hapmap3.bed"))
    labels = read_labels(shared_path("hapmap3_admixture", "labels.tsv"), geno.samples)
    assert len(labels) == 324 and labels[0] == "ASW"
    for folder in ("hapmap3_hm3_957", "hgdp_subset_159"):
        bed = next(shared_path(folder).glob("*.bed"))
        geno = read_genotypes(bed)
        assert len(read_labels(shared_path(folder, "labels.tsv"), geno.samples)) == geno.n_samples
