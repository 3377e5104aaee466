"""`genoae info` and `genoae convert` through the CLI entry point (exit codes, one-line errors, no partial output)."""
import numpy as np
import pytest

from genoae.cli import main
from genoae.genotypes import Genotypes
from genoae.io import read_genotypes, write_genotypes
from tests.test_io_vcf import HEADER, record


def run(args, capsys):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_info_reports_skipped_records(tmp_path, capsys):
    path = tmp_path / "x.vcf"
    path.write_text(HEADER + record(1, "A", "G", "0/1", "0/0", "1/1") + record(2, "A", "G,T", "0/1", "0/0", "0/0")
                    + record(3, "AC", "A", "0/1", "0/0", "0/0"))
    code, out, err = run(["info", path], capsys)
    assert code == 0
    assert "variants:     1" in out and "skipped records: 2 of 3 (1 multi-allelic, 1 indel/MNP)" in out
    assert err.count("\n") == 1 and "skipped 2 of 3 records" in err


def test_convert_with_filters(tmp_path, capsys):
    counts = np.array([[0, 0, 1, -1], [0, 1, 2, -1], [0, 2, 2, 0], [0, 1, 1, 2]])  # samples x SNPs
    write_genotypes(Genotypes.from_counts(counts), tmp_path / "in.npy")
    code, out, _ = run(["convert", tmp_path / "in.npy", tmp_path / "out.bed", "--maf", "0.05",
                        "--max-missing", "0.25"], capsys)
    assert code == 0 and "4 samples x 2 variants" in out
    np.testing.assert_array_equal(read_genotypes(tmp_path / "out.bed").counts(), counts[:, 1:3])


@pytest.mark.parametrize("args, fault", [
    (["convert", "{tmp}/bad.vcf", "{tmp}/out.vcf.gz"], "record has 2 sample columns"),
    (["convert", "{tmp}/good.vcf", "{tmp}/out.xyz"], "unknown output format"),
    (["convert", "{tmp}/good.vcf", "{tmp}/out.bed", "--maf", "0.4"], "no variant passes the filters"),
    (["convert", "{tmp}/absent.vcf", "{tmp}/out.bed"], "no such file"),
    (["info", "{tmp}/absent.bed"], "missing .bed"),
    (["info", "{tmp}/good.xyz"], "unknown genotype format"),
])
def test_errors_are_one_line_exit_2_no_output(tmp_path, capsys, args, fault):
    (tmp_path / "bad.vcf").write_text(HEADER + record(1, "A", "G", "0/1", "0/0", "1/1")
                                      + record(2, "A", "G", "0/1", "0/0"))
    (tmp_path / "good.vcf").write_text(HEADER + record(1, "A", "G", "0/0", "0/0", "0/1"))
    (tmp_path / "good.xyz").write_text("x")
    before = set(tmp_path.iterdir())
    code, out, err = run([a.format(tmp=tmp_path) for a in args], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and fault in err and "Traceback" not in err
    assert set(tmp_path.iterdir()) == before  # nothing written, no temp file left


def test_hapt_legend_option(tmp_path, capsys):
    (tmp_path / "h.hapt").write_text("Real a_A 0 1\nReal a_B 1 1\n")
    (tmp_path / "other.legend").write_text("id position a0 a1\n2:7_A_C 7 A C\n2:9_G_T 9 G T\n")
    code, out, _ = run(["convert", tmp_path / "h.hapt", tmp_path / "h.vcf", "--legend", tmp_path / "other.legend"],
                       capsys)
    assert code == 0 and "(phased)" in out
    text = (tmp_path / "h.vcf").read_text()
    assert "2\t7\t2:7_A_C\tA\tC\t.\t.\t.\tGT\t0|1" in text
    code, out, _ = run(["info", tmp_path / "h.hapt"], capsys)
    assert code == 0 and "placeholder" in out


def test_written_files_get_normal_permissions(tmp_path):
    import os
    import stat

    geno = Genotypes.from_counts(np.array([[0, 1], [2, -1]]))
    umask = os.umask(0o022)
    try:
        for name in ("g.bed", "g.vcf.gz", "g.h5", "g.npy"):
            write_genotypes(geno, tmp_path / name)
    finally:
        os.umask(umask)
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name
