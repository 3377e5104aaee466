"""Numba kernels over packed 2-bit PLINK calls: the EM pass, ℓ, observed counts and the CV deviance on the CPU.

Each kernel reads SNP-major rows of a ``.bed`` (4 calls per byte, PLINK codes 00 = A1/A1, 01 = missing,
10 = A1/A2, 11 = A2/A2), decodes one row at a time into per-thread buffers of ``n_samples`` floats through a
256-entry table, and works along the row with contiguous loops the compiler vectorises.  Nothing of size
N × M is ever formed: the memory beyond the packed calls is a few rows per thread plus one N × K accumulator per
thread for the Q update's sums.

Rows are split into ``len(bounds) − 1`` fixed ranges, one per ``prange`` iteration; each writes its own partial
result and the caller adds them in range order, so a result depends on the number of ranges (the thread count)
only, never on scheduling: same inputs and thread count → the same bits.

Cross-validation needs held-out calls without an N × M mask: :func:`fold_of` maps (seed, SNP, individual) to a
fold by a SplitMix64 hash, so any pass can tell a held-out call from a training one as it decodes it.  Kernels take
``holdout = (n_folds, fold, seed)``; ``n_folds = 0`` means every observed call is used, ``fold ≥ 0`` with
``keep_fold = False`` drops that fold's calls (training), ``keep_fold = True`` keeps only them (scoring).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

FREQ_MIN = 1e-5
FREQ_MAX = 1.0 - 1e-5

# PLINK code -> (A2 copies g, A1 copies r); a missing call counts 0 of each, so it drops out of every sum
_CODE_G = np.array([0.0, 0.0, 1.0, 2.0])
_CODE_R = np.array([2.0, 0.0, 1.0, 0.0])
_SHIFTS = 2 * np.arange(4)
BYTE_TO_G = np.ascontiguousarray(_CODE_G[(np.arange(256)[:, None] >> _SHIFTS) & 3])  # (256, 4) float64
BYTE_TO_R = np.ascontiguousarray(_CODE_R[(np.arange(256)[:, None] >> _SHIFTS) & 3])

_OPTIONS = dict(cache=True, nogil=True, fastmath={"contract", "reassoc", "nsz"}, error_model="numpy")
_LOG_GROUP = 16  # calls whose likelihood factors are multiplied before one log: each factor ≥ 1e-10, 16 ≥ 1e-160


@njit(inline="always", cache=True)
def fold_of(seed, j, i, n_samples, n_folds):
    """CV fold (0 … n_folds − 1) of the call of individual ``i`` at SNP ``j``: SplitMix64 of its index."""
    z = np.uint64(seed) + np.uint64(j) * np.uint64(n_samples) + np.uint64(i) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.int64(z % np.uint64(n_folds))


@njit(inline="always", cache=True)
def _decode_row(row, n_samples, g, r, lut_g, lut_r, j, holdout, keep_fold):
    """Row j's calls into g (A2 copies) and r (A1 copies), both 0 where missing or excluded by ``holdout``."""
    for b in range(row.shape[0]):
        byte = row[b]
        for s in range(4):
            g[4 * b + s] = lut_g[byte, s]
            r[4 * b + s] = lut_r[byte, s]
    n_folds, fold, seed = holdout[0], holdout[1], holdout[2]
    if n_folds > 0:
        for i in range(n_samples):
            if (fold_of(seed, j, i, n_samples, n_folds) == fold) != keep_fold:
                g[i] = 0.0
                r[i] = 0.0


@njit(inline="always", cache=True)
def _expected_freqs(P, j, QT, h, n_samples):
    """h_i = Σ_k P_jk Q_ik, clamped to ADMIXTURE's bounds."""
    for i in range(n_samples):
        h[i] = 0.0
    for k in range(QT.shape[0]):
        p = P[j, k]
        for i in range(n_samples):
            h[i] += p * QT[k, i]
    for i in range(n_samples):
        h[i] = min(max(h[i], FREQ_MIN), FREQ_MAX)


@njit(inline="always", cache=True)
def _row_loglik(g, r, h, n_samples):
    """Σ_i g log h + r log(1 − h) for one row, as log Π h^g (1 − h)^r in groups (one log per group)."""
    total = 0.0
    for start in range(0, n_samples, _LOG_GROUP):
        product = 1.0
        for i in range(start, min(start + _LOG_GROUP, n_samples)):
            hi, gi, ri = h[i], g[i], r[i]
            factor = 1.0
            if gi > 0.5:
                factor = hi
                if gi > 1.5:
                    factor *= hi
            if ri > 0.5:
                factor *= 1.0 - hi
                if ri > 1.5:
                    factor *= 1.0 - hi
            product *= factor
        total += np.log(product)
    return total


@njit(parallel=True, **_OPTIONS)
def em_pass(packed, n_samples, QT, P, P_new, q_parts, loglik_parts, bounds, update_p, with_loglik,
            holdout, keep_fold, lut_g, lut_r):
    """One pass of ADMIXTURE's EM over rows ``bounds[0] … bounds[-1]`` of ``packed``.

    With a = g / h and b = r / (1 − h):
      q_parts[t, k, i] = Σ_j [a_ij P_jk + b_ij (1 − P_jk)] over range t's rows (the Q update's numerator);
      P_new[j, k] = A / (A + B), A = P_jk Σ_i a_ij Q_ik, B = (1 − P_jk) Σ_i b_ij Q_ik (P kept where A + B = 0);
      loglik_parts[t] = ℓ at the input (Q, P) over range t's rows (when ``with_loglik``).

    Shapes: packed (M, ceil(N/4)) uint8; QT (K, N); P, P_new (M, K) indexed by global row; q_parts (T, K, N);
    loglik_parts (T,); bounds (T + 1,) int64.
    """
    K = QT.shape[0]
    width = packed.shape[1] * 4
    for t in prange(bounds.shape[0] - 1):
        q_sum = q_parts[t]
        q_sum[:, :] = 0.0
        g = np.empty(width)
        r = np.empty(width)
        h = np.empty(width)
        total = 0.0
        for j in range(bounds[t], bounds[t + 1]):
            _decode_row(packed[j], n_samples, g, r, lut_g, lut_r, j, holdout, keep_fold)
            _expected_freqs(P, j, QT, h, n_samples)
            if with_loglik:
                total += _row_loglik(g, r, h, n_samples)
            for i in range(n_samples):
                g[i] = g[i] / h[i]
                r[i] = r[i] / (1.0 - h[i])
            for k in range(K):
                p = P[j, k]
                sum_a = 0.0
                sum_b = 0.0
                q_row = q_sum[k]
                q_k = QT[k]
                for i in range(n_samples):
                    sum_a += g[i] * q_k[i]
                    sum_b += r[i] * q_k[i]
                    q_row[i] += p * (g[i] - r[i]) + r[i]
                if update_p:
                    A = p * sum_a
                    B = (1.0 - p) * sum_b
                    P_new[j, k] = A / (A + B) if A + B > 0.0 else p
        loglik_parts[t] = total


@njit(parallel=True, **_OPTIONS)
def p_pass(packed, n_samples, QT, P, P_new, loglik_parts, bounds, with_loglik, holdout, keep_fold, lut_g, lut_r):
    """The P half of :func:`em_pass` alone (Q fixed: no N × K sums), and ℓ at the input when asked."""
    K = QT.shape[0]
    width = packed.shape[1] * 4
    for t in prange(bounds.shape[0] - 1):
        g = np.empty(width)
        r = np.empty(width)
        h = np.empty(width)
        total = 0.0
        for j in range(bounds[t], bounds[t + 1]):
            _decode_row(packed[j], n_samples, g, r, lut_g, lut_r, j, holdout, keep_fold)
            _expected_freqs(P, j, QT, h, n_samples)
            if with_loglik:
                total += _row_loglik(g, r, h, n_samples)
            for i in range(n_samples):
                g[i] = g[i] / h[i]
                r[i] = r[i] / (1.0 - h[i])
            for k in range(K):
                p = P[j, k]
                sum_a = 0.0
                sum_b = 0.0
                q_k = QT[k]
                for i in range(n_samples):
                    sum_a += g[i] * q_k[i]
                    sum_b += r[i] * q_k[i]
                A = p * sum_a
                B = (1.0 - p) * sum_b
                P_new[j, k] = A / (A + B) if A + B > 0.0 else p
        loglik_parts[t] = total


@njit(parallel=True, **_OPTIONS)
def loglik_pass(packed, n_samples, QT, P, loglik_parts, bounds, holdout, keep_fold, lut_g, lut_r):
    """ℓ at (Q, P) over each range of rows."""
    width = packed.shape[1] * 4
    for t in prange(bounds.shape[0] - 1):
        g = np.empty(width)
        r = np.empty(width)
        h = np.empty(width)
        total = 0.0
        for j in range(bounds[t], bounds[t + 1]):
            _decode_row(packed[j], n_samples, g, r, lut_g, lut_r, j, holdout, keep_fold)
            _expected_freqs(P, j, QT, h, n_samples)
            total += _row_loglik(g, r, h, n_samples)
        loglik_parts[t] = total


@njit(parallel=True, **_OPTIONS)
def observed_pass(packed, n_samples, count_parts, bounds, holdout, keep_fold, lut_g, lut_r):
    """count_parts[t, i] = the alleles observed for individual i over range t's rows (2 per observed call)."""
    width = packed.shape[1] * 4
    for t in prange(bounds.shape[0] - 1):
        counts = count_parts[t]
        counts[:] = 0.0
        g = np.empty(width)
        r = np.empty(width)
        for j in range(bounds[t], bounds[t + 1]):
            _decode_row(packed[j], n_samples, g, r, lut_g, lut_r, j, holdout, keep_fold)
            for i in range(n_samples):
                counts[i] += g[i] + r[i]


@njit(parallel=True, **_OPTIONS)
def deviance_pass(packed, n_samples, QT, P, deviance_parts, count_parts, bounds, holdout, lut_g, lut_r):
    """ADMIXTURE's CV deviance of the calls of fold ``holdout[1]``:
    d = g log(g / 2h) + r log(r / (2 − 2h)), 0 log 0 = 0; and the number of those calls, per range of rows."""
    width = packed.shape[1] * 4
    for t in prange(bounds.shape[0] - 1):
        g = np.empty(width)
        r = np.empty(width)
        h = np.empty(width)
        total = 0.0
        calls = 0
        for j in range(bounds[t], bounds[t + 1]):
            _decode_row(packed[j], n_samples, g, r, lut_g, lut_r, j, holdout, True)
            _expected_freqs(P, j, QT, h, n_samples)
            for i in range(n_samples):
                gi, ri = g[i], r[i]
                if gi + ri > 0.5:
                    calls += 1
                    if gi > 0.5:
                        total += gi * np.log(gi / (2.0 * h[i]))
                    if ri > 0.5:
                        total += ri * np.log(ri / (2.0 - 2.0 * h[i]))
        deviance_parts[t] = total
        count_parts[t] = calls


@njit(parallel=True, **_OPTIONS)
def decode_centred(packed, start, stop, n_samples, mean, inv_scale, out):
    """out[j − start, i] = (g_ij − mean_j) · inv_scale_j for rows start … stop − 1, 0 where a call is missing
    (mean-filled): the block of a PCA or SVD pass, decoded straight from the packed bytes."""
    for j in prange(start, stop):
        row = packed[j]
        m_j, s_j = mean[j], inv_scale[j]
        # code -> value of the call: 00 → 0 copies, 01 missing → the mean, 10 → 1, 11 → 2
        v0 = (0.0 - m_j) * s_j
        v2 = (1.0 - m_j) * s_j
        v3 = (2.0 - m_j) * s_j
        target = out[j - start]
        for b in range(row.shape[0]):
            byte = row[b]
            for s in range(4):
                i = 4 * b + s
                if i < n_samples:
                    code = (byte >> (2 * s)) & 3
                    target[i] = v0 if code == 0 else (0.0 if code == 1 else (v2 if code == 2 else v3))
