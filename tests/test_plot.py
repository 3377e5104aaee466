"""genoae.plot: structure plots and PCA, rendered with Agg and checked as files (size, type) and as numbers."""
import struct

import numpy as np
import pytest

from genoae.io.labels import read_labels
from genoae.compare import load_runs
from genoae.pca import pca
from genoae.commands.plot import structure_plot_runs
from genoae.plot import pca_plot, structure_order, structure_plot


def png_size(path):
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


@pytest.fixture(scope="module")
def admixture_dir():
    from conftest import shared_path

    return shared_path("hapmap3_admixture", "admixture_1.3.0_output")


@pytest.fixture(scope="module")
def labels(admixture_dir):
    return read_labels(admixture_dir.parent / "hapmap3.pops", n_samples=324)


def test_structure_plot_hapmap3_k2_to_5(admixture_dir, labels, tmp_path):
    runs = load_runs(admixture_dir / "hapmap3", ks=[2, 3, 4, 5])
    path = structure_plot_runs(runs, tmp_path / "k2-5.png", labels=labels, dpi=100)
    width, height = png_size(path)
    # fixed margins: width is 3 + n/60 inches clipped to [7, 12] (324 individuals -> 8.4 in), height grows with K
    assert width == round(100 * (3.0 + 324 / 60.0))
    one = structure_plot_runs(load_runs(admixture_dir / "hapmap3", ks=[3]), tmp_path / "k3.png", labels=labels,
                              dpi=100)
    assert png_size(one)[0] == width
    assert height - png_size(one)[1] == pytest.approx(3 * 105, abs=2)  # three more 1.05-inch panels
    assert path.stat().st_size < 300_000


@pytest.mark.parametrize("suffix, magic", [(".pdf", b"%PDF"), (".svg", b"<?xml")])
def test_structure_plot_other_formats(admixture_dir, labels, tmp_path, suffix, magic):
    runs = load_runs(admixture_dir / "hapmap3", ks=[2, 3])
    path = structure_plot_runs(runs, tmp_path / f"fig{suffix}", labels=labels)
    assert path.read_bytes()[:len(magic)] == magic


def test_structure_plot_refuses_unknown_type(tmp_path):
    from genoae.errors import UsageError

    with pytest.raises(UsageError, match="figure type"):
        structure_plot([(np.full((4, 2), 0.5), "K=2")], tmp_path / "fig.jpg")
    assert not (tmp_path / "fig.jpg").exists()


def test_structure_order_groups_and_sorts():
    Q = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.1, 0.9], [0.7, 0.3], [0.95, 0.05]])
    labels = np.array(["B", "A", "B", "A", "A", "B"])
    order, groups = structure_order(Q, labels)
    # B is dominated by cluster 0, A by cluster 1: B comes first
    assert [g[0] for g in groups] == ["B", "A"]
    assert groups == [("B", 0, 3), ("A", 3, 6)]
    # inside B: all dominated by cluster 0, sorted by its share, largest first
    assert order[:3].tolist() == [5, 0, 2]
    # inside A: the group's main cluster (1) first, by share; then the individual dominated by cluster 0
    assert order[3:].tolist() == [3, 1, 4]
    unlabelled_order, unlabelled_groups = structure_order(Q)
    assert len(unlabelled_groups) == 1 and sorted(unlabelled_order.tolist()) == list(range(6))


def test_pca_separates_populations_and_matches_exact_svd(labels, tmp_path):
    from conftest import shared_path
    from genoae.io import read_genotypes

    genotypes = read_genotypes(shared_path("hapmap3_admixture", "hapmap3.bed"))
    scores, explained = pca(genotypes, n_components=4, seed=1)
    again, _ = pca(genotypes, n_components=4, seed=1, cache_bytes=0, chunk=1000)  # streamed in blocks
    np.testing.assert_allclose(scores, again, rtol=1e-5, atol=1e-4)
    # exact SVD of the same standardized matrix
    counts = genotypes.counts().astype(np.float64)
    freqs = genotypes.allele_freqs()
    keep = (freqs > 0) & (freqs < 1)
    X = (counts[:, keep] - 2 * freqs[keep]) / np.sqrt(2 * freqs[keep] * (1 - freqs[keep]))
    X[counts[:, keep] < 0] = 0
    singular = np.linalg.svd(X, compute_uv=False)
    ours = np.sqrt(explained * (X ** 2).sum())
    np.testing.assert_allclose(ours[:2], singular[:2], rtol=1e-4)
    # past PC2 the hapmap3 spectrum is flat noise, where a randomized SVD is only approximately right
    np.testing.assert_allclose(ours[2:4], singular[2:4], rtol=2e-2)
    # PC1 puts YRI and CEU at opposite ends, ASW between them
    pc1 = {pop: scores[labels == pop, 0].mean() for pop in ("YRI", "CEU", "ASW")}
    assert np.sign(pc1["YRI"]) != np.sign(pc1["CEU"])
    assert min(pc1["YRI"], pc1["CEU"]) < pc1["ASW"] < max(pc1["YRI"], pc1["CEU"])
    path = pca_plot(scores, explained, tmp_path / "pca.png", labels=labels, dpi=80)
    width, height = png_size(path)
    assert width > height > 200


def test_cli_plot_structure_and_pca(admixture_dir, tmp_path, capsys):
    from genoae.cli import main

    folder = admixture_dir.parent
    with pytest.raises(SystemExit) as exit_info:
        main(["plot", str(admixture_dir / "hapmap3"), "-k", "2-5", "--pop", str(folder / "labels.tsv"),
              "-o", str(tmp_path / "structure.png")])
    assert exit_info.value.code == 0
    assert png_size(tmp_path / "structure.png")[1] > 400
    with pytest.raises(SystemExit) as exit_info:
        main(["plot", "--pca", str(folder / "hapmap3.bed"), str(admixture_dir / "hapmap3.3.Q"),
              "-o", str(tmp_path / "pca.svg"), "--device", "cpu"])
    assert exit_info.value.code == 0
    assert b"<svg" in (tmp_path / "pca.svg").read_bytes()[:2000]
    with pytest.raises(SystemExit) as exit_info:
        main(["plot", "-o", str(tmp_path / "nothing.png")])
    assert exit_info.value.code == 2


@pytest.mark.cuda
def test_pca_on_cuda_matches_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from conftest import shared_path
    from genoae.io import read_genotypes

    genotypes = read_genotypes(shared_path("hapmap3_admixture", "hapmap3.bed"))
    cpu, explained_cpu = pca(genotypes, n_components=3, seed=2)
    gpu, explained_gpu = pca(genotypes, n_components=3, seed=2, device="cuda")
    np.testing.assert_allclose(explained_gpu[:2], explained_cpu[:2], rtol=1e-4)
    np.testing.assert_allclose(np.abs(gpu[:, :2]), np.abs(cpu[:, :2]), rtol=1e-3, atol=1e-2)


def test_structure_order_groups_coarse_to_fine():
    labels = np.repeat(["A", "B", "C", "D"], 3)
    K2 = np.repeat([[0.9, 0.1], [0.1, 0.9], [0.8, 0.2], [0.2, 0.8]], 3, axis=0)
    K3 = np.repeat([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.3, 0.1, 0.6], [0.1, 0.8, 0.1]], 3, axis=0)
    _, fine_only = structure_order(K3, labels)
    assert [g[0] for g in fine_only] == ["A", "B", "D", "C"]
    _, coarse_first = structure_order(K3, labels, coarser=[K2])
    # C shares A's cluster at K=2, so it stays beside A although K=3 gives it a cluster of its own
    assert [g[0] for g in coarse_first] == ["A", "C", "B", "D"]


def test_population_styles_tell_26_populations_apart_and_group_them():
    from genoae.plot.figure import population_styles

    pops = [f"P{i}" for i in range(26)]
    group_of = {pop: f"G{i % 5}" for i, pop in enumerate(pops)}
    for groups in (None, group_of):
        styles = population_styles(pops, groups)
        assert len(set(styles.values())) == 26, "two populations share colour and shape"
    grouped = population_styles(pops, group_of)
    # inside a group one hue family: the members' colours are closer to each other than to another group's
    import matplotlib

    rgb = {pop: np.array(matplotlib.colors.to_rgb(colour)) for pop, (colour, _) in grouped.items()}
    within = np.linalg.norm(rgb["P0"] - rgb["P5"])
    across = np.linalg.norm(rgb["P0"] - rgb["P1"])
    assert within < across


def test_structure_plot_orders_populations_as_the_file_or_by_group():
    from genoae.plot.structure import population_file_order

    labels = ["YRI", "CEU", "YRI", "CHB", "GBR", "CEU"]
    assert population_file_order(labels) == ["YRI", "CEU", "CHB", "GBR"]
    group_of = {"YRI": "AFR", "CEU": "EUR", "GBR": "EUR", "CHB": "EAS"}
    assert population_file_order(labels, group_of) == ["YRI", "CEU", "GBR", "CHB"]
