"""Numba kernels over packed 2-bit PLINK calls: the EM pass, ℓ, observed counts and the CV deviance on the CPU.

Each kernel reads SNP-major rows of a ``.bed`` (4 calls per byte, PLINK codes 00 = A1/A1, 01 = missing,
10 = A1/A2, 11 = A2/A2), decodes one row at a time into per-thread buffers of ``n_samples`` floats through a
256-entry table, and works along the row with contiguous loops the compiler vectorises.  The Newton passes of Q
and P take a block of up to 32 SNPs at a time (:func:`block_rows`) and form their expected frequencies, gradients
and curvatures as matrix products (np.dot, i.e. BLAS), which read Q once per block instead of once per SNP.
Nothing of size N × M is ever formed: the memory beyond the packed calls is a few rows (or one block) per thread
plus the N × K (and N × K(K + 1)/2) accumulators of the Q step's sums per thread.

Rows are split into ``len(bounds) − 1`` fixed ranges, one per thread; each writes its own partial result and the
caller adds them in range order, so a result depends on the number of ranges (the thread count) only, never on
scheduling: same inputs and thread count → the same bits.  The kernels are serial numba functions that release
the GIL, run on a pool of Python threads (as many as :func:`genoae.device.kernel_threads`) rather than numba's
``parallel=True``: the same speed, while compiling them on a first run takes under half the time (34–37 s
against 84 s for a first ``genoae admix`` on hapmap3) and no threading layer is started.

Cross-validation needs held-out calls without an N × M mask: :func:`fold_of` maps (seed, SNP, individual) to a
fold by a SplitMix64 hash, so any pass can tell a held-out call from a training one as it decodes it.  Kernels take
``holdout = (n_folds, fold, seed)``; ``n_folds = 0`` means every observed call is used, ``fold ≥ 0`` with
``keep_fold = False`` drops that fold's calls (training), ``keep_fold = True`` keeps only them (scoring).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
from numba import njit

from genoae.device import kernel_threads

# ADMIXTURE's bounds on P and h = Q Pᵀ (genoae.likelihood takes them from here)
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


# ------------------------------------------------------------------------------------------------- the threads
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_blas_limited = False
_pool_lock = threading.Lock()
_in_worker = threading.local()


def _forget_pool_in_child() -> None:
    """A forked child inherits the pool object but not its threads: it starts its own."""
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)


def block_rows(n_samples: int) -> int:
    """SNPs a blocked kernel decodes together: 32, fewer from N = 2,048 on so that each of its (rows, N) buffers
    stays at 512 KB (the P pass holds six per thread), and never fewer than 4 (from N = 16,384 on the buffers grow
    as 32 bytes × N, like the Q step's N-long sums)."""
    return max(4, min(32, (1 << 16) // max(n_samples, 1)))


def _one_blas_thread() -> None:
    """Set the BLAS that numba's np.dot calls (SciPy's own, in the blocked kernels) to one thread, once: the
    kernels' threads call it at once, and under them a threaded BLAS, whose idle threads also spin, ran the P
    pass of a 2,000 × 20,000 set in 0.33–0.43 s against 0.14 s.  Only a BLAS loaded from SciPy's folders is
    touched (NumPy's and torch's keep their threads); elsewhere (e.g. a shared MKL) nothing is changed."""
    global _blas_limited
    if _blas_limited:
        return
    import scipy
    import scipy.linalg.cython_blas  # noqa: F401 -- loads the BLAS numba's np.dot calls, to find it below
    from threadpoolctl import ThreadpoolController

    scipy_folder = os.path.dirname(scipy.__file__)  # .../scipy and the wheel's .../scipy.libs
    controller = ThreadpoolController()
    own = [info["filepath"] for info in controller.info()
           if info["user_api"] == "blas" and info["filepath"].startswith(scipy_folder)]
    if own:
        controller.select(filepath=own).limit(limits=1)
    _blas_limited = True


def _mark_worker():
    _in_worker.active = True


def _pool_of(threads: int) -> ThreadPoolExecutor:
    """The pool of ``threads`` workers (made anew only when the thread count changes)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != threads:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(threads, thread_name_prefix="genoae-kernel", initializer=_mark_worker)
            _pool_size = threads
        return _pool


def _each(kernel, n_tasks: int, *args) -> None:
    """``kernel(*args, task)`` for task = 0 … n_tasks − 1, on the pool (serially inside a pool thread, or with
    one thread or one task).  Every task has ended when this returns; an exception in any is then raised here."""
    _one_blas_thread()
    threads = kernel_threads()
    if n_tasks <= 1 or threads <= 1 or getattr(_in_worker, "active", False):
        for task in range(n_tasks):
            kernel(*args, task)
        return
    pool = _pool_of(threads)
    tasks = [pool.submit(kernel, *args, task) for task in range(n_tasks)]
    wait(tasks)  # no task still writes into the caller's arrays once an error is raised
    for task in tasks:
        task.result()


def _each_share(kernel, n_rows: int, *args) -> None:
    """``kernel(*args, n_tasks, task)`` over n_tasks = min(rows, threads) contiguous shares of ``n_rows``
    independent rows (the split does not change any row's result)."""
    n_tasks = max(1, min(n_rows, kernel_threads()))
    _each(kernel, n_tasks, *args, n_tasks)


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


_EXPONENT_MASK = np.int64(0x7FF0000000000000)
_MANTISSA_BITS = np.int64(0x000FFFFFFFFFFFFF)
_ONE_BITS = np.int64(0x3FF0000000000000)
_LN2 = np.log(2.0)


@njit(inline="always", cache=True)
def _factor(g, r, h):
    """h^g (1 − h)^r for g, r ∈ {0, 1, 2} without branches, and exactly: with s ∈ {0, 1}, s·x + (1 − s) is x or 1
    with no rounding (1 − h itself is exact for h ≥ ½ and accurate below)."""
    lo = 1.0 - h
    s1 = min(g, 1.0)
    s2 = max(g - 1.0, 0.0)
    t1 = min(r, 1.0)
    t2 = max(r - 1.0, 0.0)
    return ((s1 * h + (1.0 - s1)) * (s2 * h + (1.0 - s2))) * ((t1 * lo + (1.0 - t1)) * (t2 * lo + (1.0 - t2)))


@njit(inline="always", cache=True)
def _row_loglik(g, r, h, n_samples):
    """Σ_i g log h + r log(1 − h) for one row, as log Π h^g (1 − h)^r with a single log: the factors of each
    group of calls are multiplied (branch-free, vectorised), and the running product is kept in [1, 2) by moving
    its binary exponent into an integer sum, so it never underflows (each factor ≥ 1e-10, a group ≥ 1e-160)."""
    product = 1.0
    exponent = 0
    full = n_samples - n_samples % _LOG_GROUP
    for start in range(0, full, _LOG_GROUP):
        group = 1.0
        for offset in range(_LOG_GROUP):
            i = start + offset
            group *= _factor(g[i], r[i], h[i])
        product *= group
        bits = np.int64(np.float64(product).view(np.int64))
        exponent += ((bits & _EXPONENT_MASK) >> 52) - 1023
        product = np.int64((bits & _MANTISSA_BITS) | _ONE_BITS).view(np.float64)
    for i in range(full, n_samples):
        product *= _factor(g[i], r[i], h[i])
    return np.log(product) + exponent * _LN2


@njit(inline="always", cache=True)
def _renormalise(products, exponents, n_samples):
    """Move the binary exponent of each running product into its integer sum, leaving the product in [1, 2)."""
    for i in range(n_samples):
        bits = np.float64(products[i]).view(np.int64)
        exponents[i] += ((bits & _EXPONENT_MASK) >> 52) - 1023
        products[i] = np.int64((bits & _MANTISSA_BITS) | _ONE_BITS).view(np.float64)


@njit(inline="always", cache=True)
def _count_row(products, exponents, count, n_samples):
    """One more row multiplied into the running products; every ``_LOG_GROUP`` rows they are renormalised (so
    they never underflow).  Returns the new count."""
    count += 1
    if count == _LOG_GROUP:
        _renormalise(products, exponents, n_samples)
        return 0
    return count


@njit(inline="always", cache=True)
def _product_logs(products, exponents, out, n_samples):
    """out[i] = log of running product i (its mantissa's log plus its exponent sum × ln 2)."""
    for i in range(n_samples):
        out[i] = np.log(products[i]) + exponents[i] * _LN2


@njit(**_OPTIONS)
def _individual_loglik_pass_range(packed, n_samples, QT, P, loglik_parts, bounds, holdout, keep_fold, lut_g, lut_r,
                                  block, t):
    """Range ``t`` of :func:`individual_loglik_pass`, ``block`` SNPs at a time (each candidate's expected
    frequencies for the block by one matrix product)."""
    width = packed.shape[1] * 4
    n_candidates = QT.shape[0]
    g = np.empty((block, width))
    r = np.empty((block, width))
    h_buffer = np.empty((n_candidates, block, n_samples))
    products = np.ones((n_candidates, width))
    exponents = np.zeros((n_candidates, width), np.int64)
    count = 0
    for first in range(bounds[t], bounds[t + 1], block):
        rows = min(block, bounds[t + 1] - first)
        for a in range(rows):
            _decode_row(packed[first + a], n_samples, g[a], r[a], lut_g, lut_r, first + a, holdout, keep_fold)
        for c in range(n_candidates):
            np.dot(P[first:first + rows], QT[c], h_buffer[c, :rows])
        for a in range(rows):
            g_a, r_a = g[a], r[a]
            for c in range(n_candidates):
                h_a = h_buffer[c, a]
                running = products[c]
                for i in range(n_samples):
                    running[i] *= _factor(g_a[i], r_a[i], min(max(h_a[i], FREQ_MIN), FREQ_MAX))
            count += 1
            if count == _LOG_GROUP:
                for c in range(n_candidates):
                    _renormalise(products[c], exponents[c], n_samples)
                count = 0
    for c in range(n_candidates):
        _product_logs(products[c], exponents[c], loglik_parts[t, c], n_samples)


def individual_loglik_pass(packed, n_samples, QT, P, loglik_parts, bounds, holdout, keep_fold, lut_g, lut_r):
    """loglik_parts[t, c, i] = individual i's ℓ over range t's SNPs at candidate c's Q (products of likelihood
    factors, one log each).  QT (C, K, N): several candidate Q per individual scored in one pass over the calls
    (a line search costs one decode)."""
    _each(_individual_loglik_pass_range, bounds.shape[0] - 1, packed, n_samples, QT, P, loglik_parts, bounds, holdout,
          keep_fold, lut_g, lut_r, block_rows(n_samples * QT.shape[0]))


@njit(**_OPTIONS)
def _em_pass_range(packed, n_samples, QT, P, P_new, q_parts, loglik_parts, bounds, update_q, update_p, with_loglik,
                   holdout, keep_fold, lut_g, lut_r, t):
    """Range ``t`` of :func:`em_pass`."""
    K = QT.shape[0]
    width = packed.shape[1] * 4
    q_sum = q_parts[t]
    if update_q:
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
            q_k = QT[k]
            if update_q:
                q_row = q_sum[k]
                for i in range(n_samples):
                    sum_a += g[i] * q_k[i]
                    sum_b += r[i] * q_k[i]
                    q_row[i] += p * (g[i] - r[i]) + r[i]
            else:  # P alone: no N-long sums to add to
                for i in range(n_samples):
                    sum_a += g[i] * q_k[i]
                    sum_b += r[i] * q_k[i]
            if update_p:
                A = p * sum_a
                B = (1.0 - p) * sum_b
                P_new[j, k] = A / (A + B) if A + B > 0.0 else p
    loglik_parts[t] = total


def em_pass(packed, n_samples, QT, P, P_new, q_parts, loglik_parts, bounds, update_q, update_p, with_loglik, holdout,
            keep_fold, lut_g, lut_r):
    """One pass of ADMIXTURE's EM over rows ``bounds[0] … bounds[-1]`` of ``packed``.

    With a = g / h and b = r / (1 − h):
      q_parts[t, k, i] = Σ_j [a_ij P_jk + b_ij (1 − P_jk)] over range t's rows (the Q update's numerator;
      untouched unless ``update_q``);
      P_new[j, k] = A / (A + B), A = P_jk Σ_i a_ij Q_ik, B = (1 − P_jk) Σ_i b_ij Q_ik (P kept where A + B = 0);
      loglik_parts[t] = ℓ at the input (Q, P) over range t's rows (when ``with_loglik``).

    Shapes: packed (M, ceil(N/4)) uint8; QT (K, N); P, P_new (M, K) indexed by global row; q_parts (T, K, N);
    loglik_parts (T,); bounds (T + 1,) int64.
    """
    _each(_em_pass_range, bounds.shape[0] - 1, packed, n_samples, QT, P, P_new, q_parts, loglik_parts, bounds,
          update_q, update_p, with_loglik, holdout, keep_fold, lut_g, lut_r)


@njit(**_OPTIONS)
def _loglik_pass_range(packed, n_samples, QT, P, loglik_parts, bounds, holdout, keep_fold, lut_g, lut_r, t):
    """Range ``t`` of :func:`loglik_pass`."""
    width = packed.shape[1] * 4
    g = np.empty(width)
    r = np.empty(width)
    h = np.empty(width)
    total = 0.0
    for j in range(bounds[t], bounds[t + 1]):
        _decode_row(packed[j], n_samples, g, r, lut_g, lut_r, j, holdout, keep_fold)
        _expected_freqs(P, j, QT, h, n_samples)
        total += _row_loglik(g, r, h, n_samples)
    loglik_parts[t] = total


def loglik_pass(packed, n_samples, QT, P, loglik_parts, bounds, holdout, keep_fold, lut_g, lut_r):
    """ℓ at (Q, P) over each range of rows (row by row: a block's matrix product measured slower here, 0.044
    against 0.039 s at 2,000 × 20,000, K = 6, since one log per row dominates)."""
    _each(_loglik_pass_range, bounds.shape[0] - 1, packed, n_samples, QT, P, loglik_parts, bounds, holdout, keep_fold,
          lut_g, lut_r)


@njit(**_OPTIONS)
def _observed_pass_range(packed, n_samples, count_parts, bounds, holdout, keep_fold, lut_g, lut_r, t):
    """Range ``t`` of :func:`observed_pass`."""
    width = packed.shape[1] * 4
    counts = count_parts[t]
    counts[:] = 0.0
    g = np.empty(width)
    r = np.empty(width)
    for j in range(bounds[t], bounds[t + 1]):
        _decode_row(packed[j], n_samples, g, r, lut_g, lut_r, j, holdout, keep_fold)
        for i in range(n_samples):
            counts[i] += g[i] + r[i]


def take_sample_codes(packed, sample_index, chosen):
    """chosen[j] = the 2-bit codes of the individuals ``sample_index`` (in that order) at SNP j, packed as a
    ``.bed`` row (padding calls 0b00): the codes are moved as they are, never decoded."""
    _each_share(_take_sample_codes_rows, packed.shape[0], packed, sample_index, chosen)


@njit(**_OPTIONS)
def _take_sample_codes_rows(packed, sample_index, chosen, n_tasks, task):
    """Share ``task`` of :func:`take_sample_codes`'s SNPs."""
    n_rows = packed.shape[0]
    n_chosen = sample_index.shape[0]
    for j in range(n_rows * task // n_tasks, n_rows * (task + 1) // n_tasks):
        source = packed[j]
        target = chosen[j]
        for b in range(target.shape[0]):
            byte = 0
            for k in range(min(4, n_chosen - 4 * b)):
                i = sample_index[4 * b + k]
                byte |= ((source[i >> 2] >> ((i & 3) << 1)) & 3) << (k << 1)
            target[b] = byte


def observed_pass(packed, n_samples, count_parts, bounds, holdout, keep_fold, lut_g, lut_r):
    """count_parts[t, i] = the alleles observed for individual i over range t's rows (2 per observed call)."""
    _each(_observed_pass_range, bounds.shape[0] - 1, packed, n_samples, count_parts, bounds, holdout, keep_fold,
          lut_g, lut_r)


@njit(**_OPTIONS)
def _deviance_pass_range(packed, n_samples, QT, P, deviance_parts, count_parts, bounds, holdout, lut_g, lut_r, t):
    """Range ``t`` of :func:`deviance_pass`."""
    width = packed.shape[1] * 4
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


def deviance_pass(packed, n_samples, QT, P, deviance_parts, count_parts, bounds, holdout, lut_g, lut_r):
    """ADMIXTURE's CV deviance of the calls of fold ``holdout[1]``:
    d = g log(g / 2h) + r log(r / (2 − 2h)), 0 log 0 = 0; and the number of those calls, per range of rows."""
    _each(_deviance_pass_range, bounds.shape[0] - 1, packed, n_samples, QT, P, deviance_parts, count_parts, bounds,
          holdout, lut_g, lut_r)


@njit(inline="always", cache=True)
def _decode_centred_row(row, n_samples, m_j, s_j, target):
    """target[i] = (g_i − m_j) · s_j for one packed row, 0 where a call is missing (mean-filled)."""
    # PLINK code -> value: 00 → 0 copies, 01 missing → 0 (the mean), 10 → 1 copy, 11 → 2 copies
    values = np.array([(0.0 - m_j) * s_j, 0.0, (1.0 - m_j) * s_j, (2.0 - m_j) * s_j])
    full = n_samples // 4
    for b in range(full):
        byte = row[b]
        target[4 * b] = values[byte & 3]
        target[4 * b + 1] = values[(byte >> 2) & 3]
        target[4 * b + 2] = values[(byte >> 4) & 3]
        target[4 * b + 3] = values[(byte >> 6) & 3]
    for i in range(4 * full, n_samples):
        target[i] = values[(row[i // 4] >> (2 * (i % 4))) & 3]


@njit(**_OPTIONS)
def _decode_centred_rows(packed, start, stop, n_samples, mean, inv_scale, out, n_tasks, task):
    """Share ``task`` of ``n_tasks`` of :func:`decode_centred`."""
    rows = stop - start
    for j in range(start + task * rows // n_tasks, start + (task + 1) * rows // n_tasks):
        _decode_centred_row(packed[j], n_samples, mean[j], inv_scale[j], out[j - start])


def decode_centred(packed, start, stop, n_samples, mean, inv_scale, out):
    """out[j − start, i] = (g_ij − mean_j) · inv_scale_j for rows start … stop − 1, 0 where a call is missing
    (mean-filled): the block of a PCA or SVD pass, decoded straight from the packed bytes."""
    _each_share(_decode_centred_rows, stop - start, packed, start, stop, n_samples, mean, inv_scale, out)


@njit(**_OPTIONS)
def _centred_product_pass_range(packed, n_samples, mean, inv_scale, W, parts, bounds, block, t):
    """Range ``t`` of :func:`centred_product_pass`, ``block`` decoded rows at a time: each block adds its product
    (BLAS) to the (K, N) sums once, where a row at a time read and wrote them once per SNP."""
    K = W.shape[0]
    X = np.zeros((block, n_samples))
    W_block = np.empty((K, block))
    product = np.empty((K, n_samples))
    total = parts[t]
    total[:, :] = 0.0
    for first in range(bounds[t], bounds[t + 1], block):
        rows = min(block, bounds[t + 1] - first)
        for a in range(rows):
            j = first + a
            _decode_centred_row(packed[j], n_samples, mean[j], inv_scale[j], X[a])
            for k in range(K):
                W_block[k, a] = W[k, j]
        for a in range(rows, block):  # a short last block: the rows left from the one before weigh nothing
            for k in range(K):
                W_block[k, a] = 0.0
        np.dot(W_block, X, product)
        for k in range(K):
            total_k, product_k = total[k], product[k]
            for i in range(n_samples):
                total_k[i] += product_k[i]


def centred_product_pass(packed, n_samples, mean, inv_scale, W, parts, bounds):
    """parts[t, k, i] = Σ over range t's rows j of W[k, j] · (g_ij − mean_j) · inv_scale_j, missing calls 0: a
    linear layer over the centred calls (the encoder's, the SVD's forward product), a block of decoded rows per
    thread at a time (:func:`_product_block`), nothing of size N × M."""
    _each(_centred_product_pass_range, bounds.shape[0] - 1, packed, n_samples, mean, inv_scale, W, parts, bounds,
          _product_block(n_samples))


@njit(**_OPTIONS)
def _centred_rows_product_rows(packed, n_samples, mean, inv_scale, L, out, block, n_tasks, task):
    """Share ``task`` of ``n_tasks`` of :func:`centred_rows_product`, ``block`` decoded rows at a time, each block
    one product (BLAS) that reads L once."""
    M = packed.shape[0]
    w = L.shape[1]
    X = np.zeros((block, n_samples))
    product = np.empty((block, w))
    stop = (task + 1) * M // n_tasks
    for first in range(task * M // n_tasks, stop, block):
        rows = min(block, stop - first)
        for a in range(rows):
            _decode_centred_row(packed[first + a], n_samples, mean[first + a], inv_scale[first + a], X[a])
        np.dot(X, L, product)
        for a in range(rows):
            for c in range(w):
                out[first + a, c] = product[a, c]


def centred_rows_product(packed, n_samples, mean, inv_scale, L, out):
    """out[j, c] = Σ_i (g_ij − mean_j) · inv_scale_j · L[i, c], missing calls 0: every SNP's centred row times
    the columns of L (n_samples, w), a block of decoded rows per thread at a time, nothing of size N × M (the
    transposed product of a PCA pass)."""
    _each_share(_centred_rows_product_rows, packed.shape[0], packed, n_samples, mean, inv_scale, L, out,
                _product_block(n_samples))


def _product_block(n_samples: int) -> int:
    """Rows the SVD's product kernels decode together: a (rows, N) float64 buffer of about 2 MB, 4 to 64 rows."""
    return max(4, min(64, (1 << 18) // max(n_samples, 1)))


# ---------------------------------------------------------------------------------------------------------------
# Block relaxation with Newton steps (ADMIXTURE's SQP, Alexander et al. 2009): Q rows with P fixed, then P rows with
# Q fixed, each row a Newton step of its own concave ℓ under its constraints (Q on the simplex, P in a box).
# The gradient and curvature of a row need w1 = g/h − r/(1 − h) and w2 = g/h² + r/(1 − h)² per call.
# ---------------------------------------------------------------------------------------------------------------
@njit(inline="always", cache=True)
def _call_weights(g, r, h):
    """One call's share of a Newton pass at expected frequency h: r / (1 − h) (the EM sum's term) and the Newton
    weights w1 = g/h − r/(1 − h), w2 = g/h² + r/(1 − h)², with one division pair."""
    inverse_h = 1.0 / h
    inverse_lo = 1.0 / (1.0 - h)
    over_h = g * inverse_h
    over_lo = r * inverse_lo
    return over_lo, over_h - over_lo, over_h * inverse_h + over_lo * inverse_lo


@njit(**_OPTIONS)
def _q_newton_pass_range(packed, n_samples, QT, P, grad_parts, hess_parts, b_parts, loglik_parts, bounds, holdout,
                         keep_fold, lut_g, lut_r, block, t):
    """Range ``t`` of :func:`q_newton_pass`, ``block`` SNPs at a time: their expected frequencies and their shares
    of the sums are matrix products (BLAS), each adding to the N-long sums once per block."""
    K = QT.shape[0]
    KK = K * (K + 1) // 2
    width = packed.shape[1] * 4
    grad = grad_parts[t]
    hess = hess_parts[t]
    b_sum = b_parts[t]
    grad[:, :] = 0.0
    hess[:, :] = 0.0
    b_sum[:] = 0.0
    g = np.empty(width)
    r = np.empty(width)
    w1 = np.empty((block, n_samples))
    w2 = np.empty((block, n_samples))
    P_block = np.empty((K, block))      # P of the block's SNPs, transposed
    PP_block = np.empty((KK, block))    # P_jk P_jl (l ≤ k) of each
    grad_block = np.empty((K, n_samples))
    hess_block = np.empty((KK, n_samples))
    h_buffer = np.empty((block, n_samples))
    products = np.ones(width)
    exponents = np.zeros(width, np.int64)
    count = 0
    for first in range(bounds[t], bounds[t + 1], block):
        rows = min(block, bounds[t + 1] - first)
        h = h_buffer[:rows]
        np.dot(P[first:first + rows], QT, h)
        for a in range(rows):
            j = first + a
            _decode_row(packed[j], n_samples, g, r, lut_g, lut_r, j, holdout, keep_fold)
            h_a, w1_a, w2_a = h[a], w1[a], w2[a]
            for i in range(n_samples):  # one loop for ℓ's factor, the EM sum and the Newton weights
                h_i = min(max(h_a[i], FREQ_MIN), FREQ_MAX)
                g_i, r_i = g[i], r[i]
                products[i] *= _factor(g_i, r_i, h_i)
                over_lo, w1_i, w2_i = _call_weights(g_i, r_i, h_i)
                b_sum[i] += over_lo
                w1_a[i] = w1_i
                w2_a[i] = w2_i
            count = _count_row(products, exponents, count, n_samples)
            for k in range(K):
                P_block[k, a] = P[j, k]
                for l in range(k + 1):
                    PP_block[k * (k + 1) // 2 + l, a] = P[j, k] * P[j, l]
        if rows < block:  # the last, short block: the missing SNPs weigh nothing
            for a in range(rows, block):
                for i in range(n_samples):
                    w1[a, i] = 0.0
                    w2[a, i] = 0.0
                for k in range(K):
                    P_block[k, a] = 0.0
                for c in range(KK):
                    PP_block[c, a] = 0.0
        np.dot(P_block, w1, grad_block)
        np.dot(PP_block, w2, hess_block)
        for k in range(K):
            grad_k, block_k = grad[k], grad_block[k]
            for i in range(n_samples):
                grad_k[i] += block_k[i]
        for c in range(KK):
            hess_c, block_c = hess[c], hess_block[c]
            for i in range(n_samples):
                hess_c[i] += block_c[i]
    _product_logs(products, exponents, loglik_parts[t], n_samples)


def q_newton_pass(packed, n_samples, QT, P, grad_parts, hess_parts, b_parts, loglik_parts, bounds, holdout,
                  keep_fold, lut_g, lut_r):
    """Sums for the Q rows' Newton and EM steps over each range t of SNPs:
    grad_parts[t, k, i] = Σ_j w1_ij P_jk, hess_parts[t, k (k + 1) / 2 + l, i] = Σ_j w2_ij P_jk P_jl (l ≤ k),
    b_parts[t, i] = Σ_j r_ij / (1 − h_ij) (the EM numerator is grad + b), loglik_parts[t, i] = ℓ_i at the input."""
    _each(_q_newton_pass_range, bounds.shape[0] - 1, packed, n_samples, QT, P, grad_parts, hess_parts, b_parts,
          loglik_parts, bounds, holdout, keep_fold, lut_g, lut_r, block_rows(n_samples))


@njit(inline="always", cache=True)
def _solve_free(H, rhs, free, K, out, equality, A, index):
    """Solve H_ff p_f + λ 1_f = rhs_f (with Σ p_f = 0 when ``equality``; λ = 0 otherwise) on the free coordinates
    by Gaussian elimination with partial pivoting; out[k] = 0 off the free set.  Returns λ, or NaN when the system
    is singular."""
    n = 0
    for k in range(K):
        if free[k]:
            n += 1
    size = n + 1 if equality else n
    for a in range(size):
        for b in range(size + 1):
            A[a, b] = 0.0
    a = 0
    for k in range(K):
        if free[k]:
            index[a] = k
            a += 1
    for a in range(n):
        for b in range(n):
            A[a, b] = H[index[a], index[b]]
        A[a, size] = rhs[index[a]]
        if equality:
            A[a, n] = 1.0
            A[n, a] = 1.0
    for col in range(size):
        pivot = col
        for row in range(col + 1, size):
            if abs(A[row, col]) > abs(A[pivot, col]):
                pivot = row
        if abs(A[pivot, col]) < 1e-300:
            return np.nan
        if pivot != col:
            for c in range(size + 1):
                A[col, c], A[pivot, c] = A[pivot, c], A[col, c]
        for row in range(size):
            if row != col:
                factor = A[row, col] / A[col, col]
                if factor != 0.0:
                    for c in range(col, size + 1):
                        A[row, c] -= factor * A[col, c]
    for k in range(K):
        out[k] = 0.0
    for a in range(n):
        out[index[a]] = A[a, size] / A[a, a]
    return A[n, size] / A[n, n] if equality else 0.0


@njit(inline="always", cache=True)
def _workspace(K):
    """Scratch arrays of :func:`_newton_row`, allocated once per thread rather than once per row."""
    return (np.zeros(K), np.empty(K), np.empty(K), np.zeros(K, np.bool_), np.zeros(K, np.bool_),
            np.empty(K, np.bool_), np.zeros((K + 1, K + 2)), np.empty(K, np.int64))


@njit(inline="always", cache=True)
def _newton_row(x, H, G, K, lower, upper, simplex, out, work):
    """out = x + d, d maximising the quadratic model Gᵀd − ½ dᵀHd (G the gradient, H the negative Hessian of a
    concave row objective) subject to lower ≤ x + d ≤ upper (and Σ d = 0 when ``simplex``): a primal active-set
    QP (Nocedal & Wright, alg. 16.3).  A bound that blocks the step joins the working set; at a stationary point
    of the working set, the bound whose multiplier says ℓ would still rise away from it is released.  Falls back to
    x when a system is singular.  ``work``: :func:`_workspace` (K)."""
    d, p, rhs, at_lower, at_upper, free, A, index = work
    for k in range(K):
        d[k] = 0.0
        at_lower[k] = x[k] <= lower
        at_upper[k] = x[k] >= upper
    for _ in range(4 * K + 4):
        n_free = 0
        for k in range(K):
            free[k] = not (at_lower[k] or at_upper[k])
            n_free += free[k]
        for k in range(K):  # gradient of the model at d
            value = G[k]
            for l in range(K):
                value -= H[k, l] * d[l]
            rhs[k] = value
        lam = 0.0
        if n_free > (1 if simplex else 0):
            lam = _solve_free(H, rhs, free, K, p, simplex, A, index)
            if lam != lam:
                for k in range(K):
                    out[k] = x[k]
                return
        else:
            for k in range(K):
                p[k] = 0.0
            if simplex and n_free == 1:
                for k in range(K):
                    if free[k]:
                        lam = rhs[k]
        size = 0.0
        for k in range(K):
            size = max(size, abs(p[k]))
        if size <= 1e-14:
            # stationary on the working set: release the bound with the most wrong-signed multiplier
            worst, release = 1e-12, -1
            for k in range(K):
                multiplier = rhs[k] - lam  # d(model)/d(d_k) on the constraint surface
                if at_lower[k] and multiplier > worst:
                    worst, release = multiplier, k
                elif at_upper[k] and -multiplier > worst:
                    worst, release = -multiplier, k
            if release < 0:
                break
            at_lower[release] = False
            at_upper[release] = False
            continue
        step, blocking, blocking_lower = 1.0, -1, True
        for k in range(K):
            if free[k]:
                if p[k] < 0.0:
                    room = (lower - x[k] - d[k]) / p[k]
                    if room < step:
                        step, blocking, blocking_lower = room, k, True
                elif p[k] > 0.0:
                    room = (upper - x[k] - d[k]) / p[k]
                    if room < step:
                        step, blocking, blocking_lower = room, k, False
        step = max(step, 0.0)
        for k in range(K):
            d[k] += step * p[k]
        if blocking >= 0:
            if blocking_lower:
                at_lower[blocking] = True
                d[blocking] = lower - x[blocking]
            else:
                at_upper[blocking] = True
                d[blocking] = upper - x[blocking]
    for k in range(K):
        out[k] = min(max(x[k] + d[k], lower), upper)


@njit(inline="always", cache=True)
def _row_sums(grad, hess, i, G, H, K):
    """G, H ← row i's gradient (grad (K, N)) and curvature (hess (K (K + 1) / 2, N), entry (k, l ≤ k) in row
    k (k + 1) / 2 + l), H filled symmetric."""
    for k in range(K):
        G[k] = grad[k, i]
        for l in range(k + 1):
            H[k, l] = hess[k * (k + 1) // 2 + l, i]
            H[l, k] = hess[k * (k + 1) // 2 + l, i]


@njit(**_OPTIONS)
def _q_newton_solve_rows(Q, grad, hess, Q_new, fixed_rows, q_min, n_tasks, task):
    """Share ``task`` of ``n_tasks`` of :func:`q_newton_solve`."""
    N, K = Q.shape
    H = np.empty((K, K))
    G = np.empty(K)
    work = _workspace(K)
    for i in range(task * N // n_tasks, (task + 1) * N // n_tasks):
        if fixed_rows[i]:
            for k in range(K):
                Q_new[i, k] = Q[i, k]
            continue
        _row_sums(grad, hess, i, G, H, K)
        _newton_row(Q[i], H, G, K, q_min, 1.0 - q_min, True, Q_new[i], work)


def q_newton_solve(Q, grad, hess, Q_new, fixed_rows, q_min):
    """Q_new[i] = the simplex-constrained Newton step of row i from the summed gradient (K, N) and curvature
    (K (K + 1) / 2, N: row k (k + 1) / 2 + l holds entry (k, l ≤ k)); rows in ``fixed_rows`` are copied."""
    _each_share(_q_newton_solve_rows, Q.shape[0], Q, grad, hess, Q_new, fixed_rows, q_min)


@njit(inline="always", cache=True)
def omega(t):
    """ω(t) = −t − log(1 − t), t < 1 (a number or an array): the most a self-concordant function can bend away
    from its tangent over a step of local norm t (thm 4.1.8), and how far above a row's ℓ its maximum can be at
    Newton decrement t (thm 4.1.13; Nesterov 2004)."""
    return -t - np.log1p(-t)


@njit(inline="always", cache=True)
def _certified_ascent(x, candidate, G, H, K):
    """True when the step x → candidate is sure to raise the row's ℓ (:func:`_ascent_bound`)."""
    return _ascent_bound(x, candidate, G, H, K)[0]


@njit(inline="always", cache=True)
def _ascent_bound(x, candidate, G, H, K):
    """(sure, t): whether the step x → candidate is sure to raise the row's ℓ, by self-concordance alone, and the
    step's local norm t = sqrt(dᵀ H d).  −ℓ of a row (Σ g log h + r log(1 − h), h affine in the row, g, r ∈ {0, 1,
    2}) is a sum of self-concordant terms, so for d = candidate − x with t < 1 (H the negative Hessian, G the
    gradient at x) ℓ(x + d) ≥ ℓ(x) + Gᵀd − ω(t) (Nesterov 2004, thm 4.1.8); Gᵀd ≥ ω(t) certifies.  Near the
    maximum a Newton step has Gᵀd ≈ t² and ω(t) ≈ t²/2, so nearly every row is certified."""
    slope = 0.0
    t2 = 0.0
    for k in range(K):
        dk = candidate[k] - x[k]
        slope += G[k] * dk
        for l in range(K):
            t2 += dk * H[k, l] * (candidate[l] - x[l])
    t = np.sqrt(max(t2, 0.0))
    if not t2 < 1.0:
        return False, t
    return slope >= omega(t), t


@njit(**_OPTIONS)
def _certify_q_steps_rows(Q, Q_step, grad, hess, sure, decrement, n_tasks, task):
    """Share ``task`` of ``n_tasks`` of :func:`certify_q_steps`."""
    N, K = Q.shape
    H = np.empty((K, K))
    G = np.empty(K)
    for i in range(task * N // n_tasks, (task + 1) * N // n_tasks):
        _row_sums(grad, hess, i, G, H, K)
        sure[i], decrement[i] = _ascent_bound(Q[i], Q_step[i], G, H, K)


def certify_q_steps(Q, Q_step, grad, hess, sure, decrement):
    """sure[i], decrement[i] = :func:`_ascent_bound` of row i's step Q[i] → Q_step[i], from the summed
    gradient (K, N) and curvature (K (K + 1) / 2, N) of the Q pass."""
    _each_share(_certify_q_steps_rows, Q.shape[0], Q, Q_step, grad, hess, sure, decrement)


@njit(**_OPTIONS)
def _p_newton_pass_range(packed, n_samples, QT, Q, QQ, P, P_new, loglik_parts, individual_parts, bounds, holdout,
                         keep_fold, lut_g, lut_r, block, t):
    """Range ``t`` of :func:`p_newton_pass`, ``block`` SNPs at a time: their expected frequencies, gradients and
    curvatures are matrix products (BLAS), each reading Q once for the whole block."""
    K = QT.shape[0]
    width = packed.shape[1] * 4
    g = np.empty((block, width))
    r = np.empty((block, width))
    w1 = np.empty((block, n_samples))
    w2 = np.empty((block, n_samples))
    products = np.ones(width)
    exponents = np.zeros(width, np.int64)
    count = 0
    H = np.empty((K, K))
    G = np.empty(K)
    candidates = np.empty((block, K))
    h_buffer = np.empty((block, n_samples))
    h_candidate = np.empty(width)
    stepped = np.zeros(block, np.bool_)
    certified = np.zeros(block, np.bool_)
    work = _workspace(K)
    for first in range(bounds[t], bounds[t + 1], block):
        rows = min(block, bounds[t + 1] - first)
        for a in range(rows):
            _decode_row(packed[first + a], n_samples, g[a], r[a], lut_g, lut_r, first + a, holdout, keep_fold)
        h = h_buffer[:rows]
        np.dot(P[first:first + rows], QT, h)
        for a in range(rows):
            h_a, g_a, r_a, w1_a, w2_a = h[a], g[a], r[a], w1[a], w2[a]
            for i in range(n_samples):  # one loop for ℓ's factors and the Newton weights
                h_i = min(max(h_a[i], FREQ_MIN), FREQ_MAX)
                h_a[i] = h_i
                g_i, r_i = g_a[i], r_a[i]
                products[i] *= _factor(g_i, r_i, h_i)
                _, w1_i, w2_i = _call_weights(g_i, r_i, h_i)
                w1_a[i] = w1_i
                w2_a[i] = w2_i
            count = _count_row(products, exponents, count, n_samples)
        gradients = np.dot(w1[:rows], Q)     # (rows, K)
        curvatures = np.dot(w2[:rows], QQ)  # (rows, K (K + 1) / 2)
        for a in range(rows):
            j = first + a
            observed = False
            for k in range(K):
                G[k] = gradients[a, k]
                for l in range(k + 1):
                    H[k, l] = curvatures[a, k * (k + 1) // 2 + l]
                    H[l, k] = H[k, l]
                observed |= H[k, k] > 0.0
            stepped[a] = observed
            if observed:
                _newton_row(P[j], H, G, K, FREQ_MIN, FREQ_MAX, False, candidates[a], work)
                certified[a] = _certified_ascent(P[j], candidates[a], G, H, K)
            else:
                for k in range(K):
                    candidates[a, k] = P[j, k]
        # a row's candidate is kept where it is certified or its ℓ there is not lower, else the row's EM update
        for a in range(rows):
            j = first + a
            if not stepped[a]:
                for k in range(K):
                    P_new[j, k] = P[j, k]
                continue
            if certified[a]:
                for k in range(K):
                    P_new[j, k] = candidates[a, k]
                continue
            # the SNP's ℓ before and at the step, only for a step the bound could not certify (few rows)
            _expected_freqs(candidates, a, QT, h_candidate, n_samples)
            if _row_loglik(g[a], r[a], h_candidate, n_samples) >= _row_loglik(g[a], r[a], h[a], n_samples):
                for k in range(K):
                    P_new[j, k] = candidates[a, k]
                continue
            # the EM update of the row: A / (A + B), A = P Σ a q, B = (1 − P) Σ b q
            h_a, g_a, r_a = h[a], g[a], r[a]
            for k in range(K):
                p = P[j, k]
                q_k = QT[k]
                sum_a = 0.0
                sum_b = 0.0
                for i in range(n_samples):
                    sum_a += g_a[i] / h_a[i] * q_k[i]
                    sum_b += r_a[i] / (1.0 - h_a[i]) * q_k[i]
                A = p * sum_a
                B = (1.0 - p) * sum_b
                P_new[j, k] = A / (A + B) if A + B > 0.0 else p
    _product_logs(products, exponents, individual_parts[t], n_samples)
    loglik_parts[t] = individual_parts[t].sum()


def p_newton_pass(packed, n_samples, Q, P, P_new, loglik_parts, individual_parts, bounds, holdout, keep_fold,
                  lut_g, lut_r):
    """P_new[j] = the box-constrained Newton step of SNP j's row of P (Q (N, K) fixed, float64), kept only where it
    raises that SNP's ℓ (a Newton step can overshoot where ℓ bends sharply near h = 0 or 1): where
    :func:`_certified_ascent` proves it from the row's gradient and curvature, else where ℓ computed at the step is
    not lower; elsewhere the row's EM update, which never lowers it.  loglik_parts[t]: ℓ at the input over range
    t's SNPs; individual_parts[t, i]: individual i's share of it (so that the Q step just taken can be checked
    row by row without another pass)."""
    K = Q.shape[1]
    # QQ[i, k (k + 1) / 2 + l] = Q_ik Q_il (l ≤ k): the products every SNP's curvature needs, formed once
    QQ = np.ascontiguousarray(np.stack([Q[:, k] * Q[:, l] for k in range(K) for l in range(k + 1)], axis=1))
    _each(_p_newton_pass_range, bounds.shape[0] - 1, packed, n_samples, np.ascontiguousarray(Q.T),
          np.ascontiguousarray(Q), QQ, P, P_new, loglik_parts, individual_parts, bounds, holdout, keep_fold, lut_g,
          lut_r, block_rows(n_samples))


@njit(**_OPTIONS)
def _constrained_least_squares_rows(X, A, B, lower, upper, simplex, out, n_tasks, task):
    """Share ``task`` of ``n_tasks`` of :func:`constrained_least_squares`."""
    R, K = X.shape
    G = np.empty(K)
    work = _workspace(K)
    for row in range(task * R // n_tasks, (task + 1) * R // n_tasks):
        for k in range(K):
            value = B[row, k]
            for l in range(K):
                value -= A[k, l] * X[row, l]
            G[k] = value
        _newton_row(X[row], A, G, K, lower, upper, simplex, out[row], work)


def constrained_least_squares(X, A, B, lower, upper, simplex, out):
    """out[r] = argmin_x ½ xᵀ A x − B[r]ᵀ x subject to lower ≤ x ≤ upper (and Σ x = 1 when ``simplex``), each row
    by the active-set QP of :func:`_newton_row` started from X[r] (the ALS start's bounded least squares)."""
    _each_share(_constrained_least_squares_rows, X.shape[0], X, A, B, lower, upper, simplex, out)
