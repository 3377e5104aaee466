import numpy as np
import pytest

from genoae.errors import InputError
from genoae.genotypes import Samples, Variants
from genoae.io.qp import read_p, read_pop, read_q, write_q
from genoae.io.results import AdmixtureResult, read_results_h5, write_results_h5


def test_q_round_trip_in_admixture_format(tmp_path):
    Q = np.array([[0.25, 0.75], [1 / 3, 2 / 3]])
    path = write_q(Q, tmp_path / "x.2.Q")
    assert path.read_text().splitlines()[0] == "0.250000 0.750000"
    np.testing.assert_allclose(read_q(path), Q, atol=1e-6)
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_q_names_line(tmp_path):
    bad = tmp_path / "bad.Q"
    bad.write_text("0.5 0.5\n0.5 0.2\n")
    with pytest.raises(InputError, match=r"bad.Q:line 2: Q row sums"):
        read_q(bad)
    bad.write_text("0.5 0.5\n0.5\n")
    with pytest.raises(InputError, match=r"line 2: .Q line has 1 columns"):
        read_q(bad)
    bad.write_text("0.5 x\n")
    with pytest.raises(InputError, match="'x' is not a number"):
        read_p(bad)


def test_pop_file(tmp_path):
    path = tmp_path / "a.pop"
    path.write_text("YRI\n-\nCEU\n")
    assert list(read_pop(path, 3)) == ["YRI", "", "CEU"]
    with pytest.raises(InputError, match="expected one per individual"):
        read_pop(path, 4)


def test_results_h5_round_trip(tmp_path):
    samples = Samples(iid=["a", "b", "c"])
    variants = Variants(chrom=["1", "1"], pos=[10, 20], id=["rs1", "rs2"], a1=["A", "C"], a2=["G", "T"])
    rng = np.random.default_rng(0)
    res = [AdmixtureResult(Q=rng.dirichlet([1, 1], 3), P=rng.random((2, 2)), loglik=-12.5,
                           loglik_trace=np.array([-20.0, -12.5]), settings={"seed": 1})]
    write_results_h5(tmp_path / "r.h5", res, samples, variants)
    back, s, v = read_results_h5(tmp_path / "r.h5")
    assert list(back) == [2] and back[2].loglik == -12.5 and back[2].settings == {"seed": 1}
    np.testing.assert_array_equal(back[2].Q, res[0].Q)
    assert list(s.iid) == ["a", "b", "c"] and list(v.a2) == ["G", "T"]
