"""Nothing lost, nothing guessed: outputs never replace inputs, a prefix holds one run, malicious model files run
nothing, nonsense options and unwritable outputs are refused before the work, Ctrl-C stops a write and cleans up."""
import json
import os
import pickle
import signal

import numpy as np
import pytest
import torch

from genoae.ancestry import NeuralAdmixture
from genoae.cli import main
from genoae.commands.admix import run_admix
from genoae.errors import InputError, UsageError
from genoae.genotypes import Genotypes
from genoae.io import read_genotypes, write_genotypes
from genoae.io.atomic import OutputSet, atomic_path, check_interrupt
from genoae.io.model import load_model
from genoae.io.qp import read_q
from genoae.io.results import read_results_h5
from genoae.io.vae_model import load_vae


def small_set(seed=0, n=30, m=150):
    rng = np.random.default_rng(seed)
    freqs = rng.uniform(0.1, 0.9, (m, 2))
    q = rng.dirichlet([1, 1], n)
    return Genotypes.from_counts(rng.binomial(2, q @ freqs.T).astype(np.int8))


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return stop.value.code, out, err


# ------------------------------------------------------------------------- malicious model files
class _Payload:
    """Unpickling this runs ``touch MARKER``: a loader that unpickles code would create the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("container", ["dict", "list", "raw"])
def test_admix_model_payload_never_runs(tmp_path, container):
    marker = tmp_path / "PWNED"
    payload = _Payload(marker)
    weights = tmp_path / "evil.2.model.pt"
    if container == "raw":
        weights.write_bytes(pickle.dumps(payload))
    else:
        torch.save({"p_logits": payload} if container == "dict" else [payload], weights)
    variants = {"chrom": ["1"], "pos": [1], "id": ["rs1"], "a1": ["A"], "a2": ["G"]}
    (tmp_path / "evil.2.model.json").write_text(json.dumps(
        {"format": "genoae-neural-admixture", "version": 2, "K": 2, "n_variants": 1, "variants": variants}))
    with pytest.raises(InputError, match="cannot read the model weights") as error:
        load_model(weights, NeuralAdmixture)
    assert not marker.exists(), "the pickle payload ran"
    assert "weights_only=False" not in str(error.value)
    # and the payload is real: unpickling it without weights_only does run it
    pickle.loads(pickle.dumps(payload))
    assert marker.exists()


@pytest.mark.parametrize("container", ["metadata", "state_dict", "raw"])
def test_vae_model_payload_never_runs(tmp_path, container):
    marker = tmp_path / "PWNED"
    payload = _Payload(marker)
    path = tmp_path / "evil.pt"
    if container == "raw":
        path.write_bytes(pickle.dumps(payload))
    else:
        blob = {"state_dict": {}, "metadata": "{}"}
        blob[container] = payload
        torch.save(blob, path)
    with pytest.raises(InputError, match="not a genoae VAE model") as error:
        load_vae(path)
    assert not marker.exists(), "the pickle payload ran"
    assert "weights_only" not in str(error.value)


# ------------------------------------------------------------------------- malformed model metadata
@pytest.fixture(scope="module")
def fitted_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    write_genotypes(small_set(), folder / "data.bed")
    run_admix(folder / "data.bed", 2, prefix=folder / "fit", progress=False, echo=lambda line: None)
    return folder


@pytest.mark.parametrize("edit, fault", [
    (lambda d: d.pop("K"), "'K' is None"),
    (lambda d: d.update(K="two"), "'K' is 'two'"),
    (lambda d: d.update(K=2.5), "'K' is 2.5"),
    (lambda d: d.update(n_variants=-4), "'n_variants' is -4"),
    (lambda d: d.pop("version"), "model file version None"),
    (lambda d: d.update(version=1), "version 1, this genoae reads version 2 .*re-run genoae admix"),
    (lambda d: d.update(K=3), "weights do not match"),
    (lambda d: d.update(n_variants=7), "variants.chrom has 150 entries, n_variants is 7"),
    (lambda d: d.pop("variants"), "'variants' must map"),
    (lambda d: d.update(variants=[1, 2]), "'variants' must map"),
    (lambda d: d["variants"].pop("pos"), "'variants' must map"),
    (lambda d: d["variants"].update(pos=d["variants"]["pos"][:3]), "variants.pos has 3 entries"),
    (lambda d: d["variants"].update(pos=["x"] * len(d["variants"]["pos"])), "variants.pos holds 'x'"),
    (lambda d: d.update(populations=5), "'populations' is 5"),
])
def test_malformed_model_json_is_one_input_error(fitted_model, tmp_path, edit, fault):
    metadata = json.loads((fitted_model / "fit.2.model.json").read_text())
    edit(metadata)
    (tmp_path / "m.2.model.pt").write_bytes((fitted_model / "fit.2.model.pt").read_bytes())
    (tmp_path / "m.2.model.json").write_text(json.dumps(metadata))
    with pytest.raises(InputError, match=fault):
        load_model(tmp_path / "m.2.model.pt", NeuralAdmixture)


# ------------------------------------------------------------------------- options and outputs, before the work
@pytest.mark.parametrize("extra", [
    ["--threads", "0"], ["--threads", "-1"],
    ["--max-iter", "0"], ["--tol", "nan"], ["--tol", "0"], ["--tol", "-1"], ["--tol", "inf"], ["--cv", "1"],
    ["--cv", "-2"], ["--cv", "100000"], ["-o", ""], ["--seed", "-3"], ["--seed", "x"],
])
def test_nonsense_admix_options_are_one_line_before_any_output(tmp_path, capsys, extra):
    write_genotypes(small_set(), tmp_path / "data.bed")
    argv = ["admix", tmp_path / "data.bed", "-k", "2", "--quiet", *extra]
    if "-o" not in extra:
        argv += ["-o", tmp_path / "out"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genoae: error:"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bed", "data.bim", "data.fam"]


@pytest.mark.parametrize("option", [["--epochs", "-1"], ["--block-size", "0"], ["--batch-size", "0"],
                                    ["--lr", "-1"], ["--validation", "1.5"], ["--beta", "nan"],
                                    ["--latent-dim", "0"], ["--hidden", "0"]])
def test_nonsense_vae_options_are_refused(tmp_path, capsys, option):
    write_genotypes(small_set(), tmp_path / "data.vcf")
    code, _, err = run_cli(["vae", "train", tmp_path / "data.vcf", "-o", tmp_path / "m.pt", "--quiet", *option],
                           capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.pt").exists()


def test_outputs_under_a_file_or_in_an_unwritable_place_are_refused_first(tmp_path, capsys):
    write_genotypes(small_set(), tmp_path / "data.bed")
    (tmp_path / "afile").write_text("x")
    for target in (tmp_path / "afile" / "out", "/proc/genoae-test/out"):
        code, _, err = run_cli(["admix", tmp_path / "data.bed", "-k", "2", "-o", target, "--quiet"], capsys)
        assert code == 2 and "cannot write in" in err
        code, _, err = run_cli(["convert", tmp_path / "data.bed", f"{target}.vcf"], capsys)
        assert code == 2 and "cannot write in" in err
    (tmp_path / "adir").mkdir()
    code, _, err = run_cli(["convert", tmp_path / "data.bed", tmp_path / "adir"], capsys)
    assert code == 2 and "is a folder" in err
    code, _, err = run_cli(["admix", tmp_path / "data.bed", "-k", "2", "-o", f"{tmp_path}/adir/"], capsys)
    assert code == 2 and "needs a file name part" in err


def test_default_prefix_never_replaces_an_hdf5_input(tmp_path, capsys, monkeypatch):
    write_genotypes(small_set(), tmp_path / "geno.h5")
    before = (tmp_path / "geno.h5").read_bytes()
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["admix", "geno.h5", "-k", "2", "--quiet"], capsys)
    assert code == 2 and "is the input" in err
    np.save(tmp_path / "geno.npy", small_set().counts())  # geno.npy -> prefix geno -> geno.h5, a genotype file
    code, _, err = run_cli(["admix", "geno.npy", "-k", "2", "--quiet"], capsys)
    assert code == 2 and "not a genoae results file" in err
    assert (tmp_path / "geno.h5").read_bytes() == before


def test_an_individual_without_calls_is_refused(tmp_path):
    counts = small_set().counts()
    counts[4] = -1
    np.save(tmp_path / "g.npy", counts)
    with pytest.raises(InputError, match=r"1 individual\(s\) have no observed call \(ind5; first at sample 5\)"):
        run_admix(tmp_path / "g.npy", 2, prefix=tmp_path / "out", progress=False, echo=lambda line: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.npy"]


# ------------------------------------------------------------------------- one run per prefix
def test_a_second_run_into_a_locked_prefix_is_refused_and_a_dead_lock_taken_over(tmp_path):
    prefix = tmp_path / "run"
    with OutputSet(prefix):
        with pytest.raises(UsageError, match="another genoae run is writing this prefix"):
            with OutputSet(prefix):
                pass
    assert not (tmp_path / "run.lock").exists()
    import socket

    (tmp_path / "run.lock").write_text(f"{socket.gethostname()} 999999999 2026-01-01 00:00:00\n")  # no such pid
    with OutputSet(prefix) as output:
        output.path(tmp_path / "run.2.Q").write_text("1\n")
    assert (tmp_path / "run.2.Q").exists() and not (tmp_path / "run.lock").exists()


def test_a_failed_run_leaves_the_prefix_as_it_was(tmp_path):
    (tmp_path / "run.2.Q").write_text("old\n")
    with pytest.raises(RuntimeError):
        with OutputSet(tmp_path / "run") as output:
            output.path(tmp_path / "run.2.Q").write_text("new\n")
            output.path(tmp_path / "run.h5").write_text("new\n")
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.2.Q"]
    assert (tmp_path / "run.2.Q").read_text() == "old\n"


def test_reruns_into_one_prefix_keep_it_one_set(tmp_path):
    write_genotypes(small_set(0), tmp_path / "a.bed")
    write_genotypes(small_set(1), tmp_path / "b.bed")
    quiet = dict(progress=False, echo=lambda line: None)
    prefix = tmp_path / "run"
    run_admix(tmp_path / "a.bed", 2, prefix=prefix, **quiet)
    run_admix(tmp_path / "a.bed", 3, prefix=prefix, **quiet)  # ADMIXTURE's habit: one K per call, same data
    results, _, _ = read_results_h5(f"{prefix}.h5")
    assert sorted(results) == [2, 3]
    for K in (2, 3):
        np.testing.assert_allclose(read_q(f"{prefix}.{K}.Q"), results[K].Q, atol=1e-6)
    run_admix(tmp_path / "b.bed", 3, prefix=prefix, **quiet)  # other data: K=2's files are stale and go
    results, _, _ = read_results_h5(f"{prefix}.h5")
    assert sorted(results) == [3] and not (tmp_path / "run.2.Q").exists()
    assert "removed, from an earlier run on other data: run.2.Q" in (tmp_path / "run.log").read_text()
    assert not list(tmp_path.glob(".run*"))


# ------------------------------------------------------------------------- Ctrl-C during a write
def test_ctrl_c_inside_a_write_stops_it_and_leaves_no_file(tmp_path):
    target = tmp_path / "out.txt"
    blocks = []
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            for block in range(100):
                if block == 3:
                    os.kill(os.getpid(), signal.SIGINT)  # recorded, not raised here
                blocks.append(block)
                check_interrupt()
                tmp.write_text(str(block))
    assert blocks == [0, 1, 2, 3], "the write went on after Ctrl-C"
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_swallowed_by_a_callback_still_stops_the_write(tmp_path):
    """A KeyboardInterrupt raised inside a finaliser is printed and lost; the guard raises it afterwards."""
    import weakref

    class Thing:
        pass

    target = tmp_path / "out.txt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            thing = Thing()
            weakref.finalize(thing, os.kill, os.getpid(), signal.SIGINT)
            del thing
            tmp.write_text("done")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------- what genoae writes, it reads back
def test_names_with_whitespace_are_written_safely_and_read_back(tmp_path, capsys):
    from genoae.genotypes import Samples, Variants

    geno = small_set(n=6, m=4)
    odd = Genotypes(geno.packed, Samples(np.array(["a b", "c\td", "e", "f", "g h", "i"])),
                    Variants(chrom=np.array(["1"] * 4), pos=np.arange(1, 5), id=np.array(["rs 1", "rs2", "r s3", "x"]),
                             a1=np.array(["A"] * 4), a2=np.array(["G"] * 4)))
    with pytest.warns(UserWarning, match="sample IDs hold characters"):
        write_genotypes(odd, tmp_path / "odd.bed")
    back = read_genotypes(tmp_path / "odd.bed")
    assert list(back.samples.iid) == ["a_b", "c_d", "e", "f", "g_h", "i"]
    assert list(back.variants.id) == ["rs_1", "rs2", "r_s3", "x"]
    np.testing.assert_array_equal(back.counts(), geno.counts())
    with pytest.warns(UserWarning, match="sample IDs hold characters"):
        write_genotypes(odd, tmp_path / "odd.vcf")
    back = read_genotypes(tmp_path / "odd.vcf")
    assert list(back.samples.iid) == ["a b", "c_d", "e", "f", "g h", "i"]  # VCF keeps spaces, not tabs
    np.testing.assert_array_equal(back.counts(), geno.counts())


def test_pop_column_chooses_the_label_column():
    from pathlib import Path

    from genoae.commands.plot import _labels_for

    data = Path(__file__).resolve().parents[1] / "genoae" / "data"
    geno = read_genotypes(data / "demo_1kg805.bed")
    supers = _labels_for(data / "demo_1kg805.labels.tsv", [], geno, column="super_pop")
    pops = _labels_for(data / "demo_1kg805.labels.tsv", [], geno, column="pop")
    assert set(supers) == {"AFR", "AMR", "EAS", "EUR", "SAS"} and len(set(pops)) > 5
