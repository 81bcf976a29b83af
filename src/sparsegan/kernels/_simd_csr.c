/* CSR x dense product with the output row held in AVX2 registers, and the row epilogue fused:
 *
 *     Y[i, :] = act(sum_p data[p] * X[indices[p], :] + bias[i])      for rows r0 <= i < r1
 *
 * X is row-major (K x cols), Y row-major (M x cols), float32. Columns go in tiles of 64: eight
 * 8-float accumulators stay in registers across all the active weights of a row, so each active
 * weight costs eight loads of X and eight FMAs, and the output row is stored once. (The numba
 * kernel in csr_kernel.py re-reads and re-writes the output row every four weights; LLVM does not
 * keep such accumulators in registers from numba code.) Narrower tails run 8 or 1 columns at a time.
 *
 * Loaded with ctypes (sparsegan.kernels.library) by the inference runtime and by sparse training;
 * built as an optional extension (x86-64 only, -mavx2 -mfma), and only called after sg_cpu_ok()
 * says the CPU has AVX2 and FMA.
 * act: 0 none, 1 ReLU, 2 LeakyReLU(slope), 3 tanh (the rational approximation of csr_kernel.py).
 *
 * One column (batch 1, a matrix-vector product): eight active weights at a time, their inputs
 * fetched with one AVX2 gather, so the row is a vector loop instead of a scalar one.
 *
 * Threads (sg_csr_mm_parallel): the rows split into blocks of equal non-zero count, run on OpenMP
 * threads (PyTorch's own; see there). A Python thread pool cost 30-80 us per dispatch against
 * 50-200 us products, so with two threads the sparse layers hardly got faster.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <immintrin.h>
#include <stdint.h>

int sg_cpu_ok(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#include "epilogue.h"

/* Columns cb <= c < ce of the rows r0 <= i < r1 (X and Y rows are `cols` long); `acc` (a constant in
 * each caller, so the compiler specialises) adds the product into Y without an epilogue instead of
 * storing act(product + bias). */
static inline __attribute__((always_inline)) void csr_block(const int32_t *indptr, const int32_t *indices,
                                                            const float *data, const float *bias, int act,
                                                            float slope, const float *X, float *Y, int64_t cols,
                                                            int64_t cb, int64_t ce, int64_t r0, int64_t r1,
                                                            const int acc) {
    for (int64_t i = r0; i < r1; i++) {
        const int32_t p0 = indptr[i], p1 = indptr[i + 1];
        float *y = Y + i * cols;
        const __m256 b = _mm256_set1_ps(acc ? 0.0f : bias[i]);
        int64_t c0 = cb;
        for (; c0 + 64 <= ce; c0 += 64) {
            __m256 a0, a1, a2, a3, a4, a5, a6, a7;
            if (acc) {
                a0 = _mm256_loadu_ps(y + c0), a1 = _mm256_loadu_ps(y + c0 + 8), a2 = _mm256_loadu_ps(y + c0 + 16);
                a3 = _mm256_loadu_ps(y + c0 + 24), a4 = _mm256_loadu_ps(y + c0 + 32), a5 = _mm256_loadu_ps(y + c0 + 40);
                a6 = _mm256_loadu_ps(y + c0 + 48), a7 = _mm256_loadu_ps(y + c0 + 56);
            } else {
                a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            }
            for (int32_t p = p0; p < p1; p++) {
                const float *x = X + (int64_t)indices[p] * cols + c0;
                const __m256 w = _mm256_broadcast_ss(data + p);
                a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x), a0);
                a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + 8), a1);
                a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + 16), a2);
                a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + 24), a3);
                a4 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + 32), a4);
                a5 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + 40), a5);
                a6 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + 48), a6);
                a7 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + 56), a7);
            }
            _mm256_storeu_ps(y + c0, acc ? a0 : act8(a0, b, act, slope));
            _mm256_storeu_ps(y + c0 + 8, acc ? a1 : act8(a1, b, act, slope));
            _mm256_storeu_ps(y + c0 + 16, acc ? a2 : act8(a2, b, act, slope));
            _mm256_storeu_ps(y + c0 + 24, acc ? a3 : act8(a3, b, act, slope));
            _mm256_storeu_ps(y + c0 + 32, acc ? a4 : act8(a4, b, act, slope));
            _mm256_storeu_ps(y + c0 + 40, acc ? a5 : act8(a5, b, act, slope));
            _mm256_storeu_ps(y + c0 + 48, acc ? a6 : act8(a6, b, act, slope));
            _mm256_storeu_ps(y + c0 + 56, acc ? a7 : act8(a7, b, act, slope));
        }
        for (; c0 + 8 <= ce; c0 += 8) {
            __m256 a = acc ? _mm256_loadu_ps(y + c0) : _mm256_setzero_ps();
            for (int32_t p = p0; p < p1; p++)
                a = _mm256_fmadd_ps(_mm256_broadcast_ss(data + p), _mm256_loadu_ps(X + (int64_t)indices[p] * cols + c0), a);
            _mm256_storeu_ps(y + c0, acc ? a : act8(a, b, act, slope));
        }
        if (cols == 1) {
            __m256 a8 = _mm256_setzero_ps(), b8 = a8; /* two chains: the gathers overlap */
            int32_t p = p0;
            for (; p + 16 <= p1; p += 16) {
                const __m256i i0 = _mm256_loadu_si256((const __m256i *)(indices + p));
                const __m256i i1 = _mm256_loadu_si256((const __m256i *)(indices + p + 8));
                a8 = _mm256_fmadd_ps(_mm256_loadu_ps(data + p), _mm256_i32gather_ps(X, i0, 4), a8);
                b8 = _mm256_fmadd_ps(_mm256_loadu_ps(data + p + 8), _mm256_i32gather_ps(X, i1, 4), b8);
            }
            for (; p + 8 <= p1; p += 8) {
                const __m256i idx = _mm256_loadu_si256((const __m256i *)(indices + p));
                a8 = _mm256_fmadd_ps(_mm256_loadu_ps(data + p), _mm256_i32gather_ps(X, idx, 4), a8);
            }
            a8 = _mm256_add_ps(a8, b8);
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(a8), _mm256_extractf128_ps(a8, 1));
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            h = _mm_add_ss(h, _mm_movehdup_ps(h));
            float a = _mm_cvtss_f32(h);
            for (; p < p1; p++) a += data[p] * X[indices[p]];
            y[0] = acc ? y[0] + a : act1(a, bias[i], act, slope);
            continue;
        }
        for (; c0 < ce; c0++) {
            float a = acc ? y[c0] : 0.0f;
            for (int32_t p = p0; p < p1; p++) a += data[p] * X[(int64_t)indices[p] * cols + c0];
            y[c0] = acc ? a : act1(a, bias[i], act, slope);
        }
    }
}


/* Wide products (a transposed convolution's phases: thousands of columns) go in blocks of
 * SG_COLUMN_BLOCK columns, every row of the block before the next: the rows of X a block reads
 * (K x 2 KiB) stay in L2 for all the rows of A instead of streaming X from memory once per row. */
#ifndef SG_COLUMN_BLOCK
#define SG_COLUMN_BLOCK 512
#endif

static inline __attribute__((always_inline)) void csr_rows(const int32_t *indptr, const int32_t *indices,
                                                           const float *data, const float *bias, int act, float slope,
                                                           const float *X, float *Y, int64_t cols, int64_t r0,
                                                           int64_t r1, const int acc) {
    for (int64_t cb = 0; cb < cols; cb += SG_COLUMN_BLOCK) {
        const int64_t ce = cb + SG_COLUMN_BLOCK < cols ? cb + SG_COLUMN_BLOCK : cols;
        csr_block(indptr, indices, data, bias, act, slope, X, Y, cols, cb, ce, r0, r1, acc);
    }
}

void sg_csr_mm(const int32_t *indptr, const int32_t *indices, const float *data, const float *bias,
               int act, float slope, const float *X, float *Y, int64_t cols, int64_t r0, int64_t r1) {
    csr_rows(indptr, indices, data, bias, act, slope, X, Y, cols, r0, r1, 0);
}

/* Y[r0:r1] += A[r0:r1] @ X, no epilogue: the sum over the taps of a transposed convolution's output
 * phase (sparsegan.inference.runtime), each tap's product read from a shifted X. */
void sg_csr_mm_acc(const int32_t *indptr, const int32_t *indices, const float *data, const float *X, float *Y,
                   int64_t cols, int64_t r0, int64_t r1) {
    csr_rows(indptr, indices, data, NULL, 0, 0.0f, X, Y, cols, r0, r1, 1);
}

/* Y[cuts[0]:cuts[blocks]] as sg_csr_mm, the row blocks (of about equal work) shared out to
 * `threads` OpenMP threads as they come free. Built with -fopenmp, this file needs libgomp.so.1;
 * PyTorch's CPU wheels ship their libgomp under that name and load it first, so the loader hands
 * this file the same OpenMP runtime and these products run on PyTorch's own intra-op threads. (A
 * thread pool of this file's own was tried: its threads competed for the cores with PyTorch's,
 * which spin for a while after every parallel op, and two threads were no faster than one.) */
void sg_csr_mm_parallel(const int32_t *indptr, const int32_t *indices, const float *data, const float *bias,
                        int act, float slope, const float *X, float *Y, int64_t cols, const int64_t *cuts,
                        int blocks, int threads) {
#ifdef _OPENMP
    if (threads > 1 && blocks > 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (int b = 0; b < blocks; b++)
            sg_csr_mm(indptr, indices, data, bias, act, slope, X, Y, cols, cuts[b], cuts[b + 1]);
        return;
    }
#endif
    (void)threads;
    sg_csr_mm(indptr, indices, data, bias, act, slope, X, Y, cols, cuts[0], cuts[blocks]);
}

/* A chain of layers Y_l = act_l(A_l @ Y_{l-1} + bias_l) (an MLP's sparse Linear layers, BN folded,
 * activations fused) in one call: at batch 1 a layer's product takes 5-30 us and the Python around
 * each call 10 us or more, so the chain pays the Python once. Intermediate results ping-pong
 * between two halves of `scratch` (2 x max rows x cols floats); the last layer writes `out`. With
 * threads > 1 and enough work (work[l] != 0), a layer's row blocks (cuts[l], blocks[l] of them)
 * are shared out to OpenMP threads, one parallel region per layer. */
typedef struct {
    const int32_t *indptr, *indices;
    const float *data, *bias;
    int act;
    float slope;
    int64_t rows;
    const int64_t *cuts;
    int blocks;
    int parallel;
} sg_layer;

void sg_csr_chain(const sg_layer *layers, int n, const float *X, float *out, float *scratch, int64_t max_rows,
                  int64_t cols, int threads) {
    const float *in = X;
    for (int l = 0; l < n; l++) {
        const sg_layer *L = &layers[l];
        float *y = l == n - 1 ? out : scratch + (int64_t)(l % 2) * max_rows * cols;
        if (threads > 1 && L->parallel && L->blocks > 1)
            sg_csr_mm_parallel(L->indptr, L->indices, L->data, L->bias, L->act, L->slope, in, y, cols, L->cuts,
                               L->blocks, threads);
        else
            sg_csr_mm(L->indptr, L->indices, L->data, L->bias, L->act, L->slope, in, y, cols, 0, L->rows);
        in = y;
    }
}

/* Row groups (block masks): R consecutive rows of A that share their column indices, stored as one
 * index list per group and R values per index (zeros where a row lacks that column):
 *
 *     Y[g R + r, :] = act(sum_p gval[p R + r] * X[gidx[p], :] + bias[g R + r])
 *
 * A mask of R x 1 blocks (sparsegan.sparsity.blocks: R output channels sharing an input) gives
 * exactly these groups, with no zeros stored. Each index then costs one load of X's tile for up to
 * 4 rows: 4 rows x 16 columns of accumulators take 2 loads of X and 4 broadcasts per 8 multiply-adds,
 * where the row kernel above takes 8 loads and a broadcast per 8. At one column (batch
 * 1) the R values of an index are one vector: a load and an FMA per R multiply-adds, no gathers.
 * Rows at or past `rows` (the last group's padding) are not stored. Columns cb <= c < ce. */
static inline __attribute__((always_inline)) void group_block(const int32_t *gptr, const int32_t *gidx,
                                                              const float *gval, const float *bias, int act,
                                                              float slope, const float *X, float *Y, int64_t cols,
                                                              int64_t cb, int64_t ce, int64_t rows, int64_t g0,
                                                              int64_t g1, const int R, const int acc) {
    /* Register blocks of B rows (B = R, except 8 -> two blocks of 4) x V vectors of 8 columns: B V = 8
     * accumulators, V loads of X and B broadcasts per B V multiply-adds. (Eight rows x one vector
     * would take 8 broadcasts and a load per 8 multiply-adds: no fewer loads than the row kernel.) */
    const int B = R == 8 ? 4 : R, V = 8 / B;
    for (int64_t g = g0; g < g1; g++) {
        const int32_t p0 = gptr[g], p1 = gptr[g + 1];
        const int64_t r0 = g * R;
        const int nr = rows - r0 < R ? (int)(rows - r0) : R;
        int64_t c0 = cb;
        for (; c0 + 8 * V <= ce; c0 += 8 * V) {
            for (int h = 0; h < R; h += B) {
                if (h >= nr) break;
                __m256 a[8];
                for (int r = 0; r < B; r++)
                    for (int v = 0; v < V; v++)
                        a[r * V + v] = acc && h + r < nr ? _mm256_loadu_ps(Y + (r0 + h + r) * cols + c0 + 8 * v)
                                                         : _mm256_setzero_ps();
                for (int32_t p = p0; p < p1; p++) {
                    const float *x = X + (int64_t)gidx[p] * cols + c0;
                    __m256 xv[8];
                    for (int v = 0; v < V; v++) xv[v] = _mm256_loadu_ps(x + 8 * v);
                    for (int r = 0; r < B; r++) {
                        const __m256 w = _mm256_broadcast_ss(gval + (int64_t)p * R + h + r);
                        for (int v = 0; v < V; v++) a[r * V + v] = _mm256_fmadd_ps(w, xv[v], a[r * V + v]);
                    }
                }
                /* r < B (a constant) with the row check inside: with a bound known only at run time
                 * the compiler keeps `a` in memory and stores every accumulator at every index */
                for (int r = 0; r < B; r++) {
                    if (h + r >= nr) break;
                    const __m256 b = _mm256_set1_ps(acc ? 0.0f : bias[r0 + h + r]);
                    for (int v = 0; v < V; v++) {
                        float *y = Y + (r0 + h + r) * cols + c0 + 8 * v;
                        _mm256_storeu_ps(y, acc ? a[r * V + v] : act8(a[r * V + v], b, act, slope));
                    }
                }
            }
        }
        for (; c0 + 8 <= ce; c0 += 8) {
            __m256 a[8];
            for (int r = 0; r < R; r++)
                a[r] = acc && r < nr ? _mm256_loadu_ps(Y + (r0 + r) * cols + c0) : _mm256_setzero_ps();
            for (int32_t p = p0; p < p1; p++) {
                const __m256 xv = _mm256_loadu_ps(X + (int64_t)gidx[p] * cols + c0);
                for (int r = 0; r < R; r++)
                    a[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(gval + (int64_t)p * R + r), xv, a[r]);
            }
            for (int r = 0; r < R; r++) {
                if (r >= nr) break;
                _mm256_storeu_ps(Y + (r0 + r) * cols + c0,
                                 acc ? a[r] : act8(a[r], _mm256_set1_ps(bias[r0 + r]), act, slope));
            }
        }
        for (; c0 < ce; c0++) { /* one column at a time: an index's R values are one vector */
            float out[8];
            if (R == 8) {
                __m256 a = _mm256_setzero_ps();
                for (int32_t p = p0; p < p1; p++)
                    a = _mm256_fmadd_ps(_mm256_loadu_ps(gval + (int64_t)p * 8),
                                        _mm256_set1_ps(X[(int64_t)gidx[p] * cols + c0]), a);
                _mm256_storeu_ps(out, a);
            } else if (R == 4) {
                __m128 a = _mm_setzero_ps();
                for (int32_t p = p0; p < p1; p++)
                    a = _mm_fmadd_ps(_mm_loadu_ps(gval + (int64_t)p * 4), _mm_set1_ps(X[(int64_t)gidx[p] * cols + c0]), a);
                _mm_storeu_ps(out, a);
            } else {
                for (int r = 0; r < R; r++) out[r] = 0.0f;
                for (int32_t p = p0; p < p1; p++) {
                    const float xv = X[(int64_t)gidx[p] * cols + c0];
                    for (int r = 0; r < R; r++) out[r] += gval[(int64_t)p * R + r] * xv;
                }
            }
            /* r < R (a constant) with the row check inside, as above: the compiler then sees that
             * only the R entries of `out` written above are read (nr <= R) */
            for (int r = 0; r < R; r++) {
                if (r >= nr) break;
                float *y = Y + (r0 + r) * cols + c0;
                *y = acc ? *y + out[r] : act1(out[r], bias[r0 + r], act, slope);
            }
        }
    }
}

/* Groups g0 <= g < g1 over all columns, in column blocks as csr_rows; the group size is a constant
 * in each branch, so the compiler specialises group_block for it (R is 2, 4 or 8). */
static void group_rows(const int32_t *gptr, const int32_t *gidx, const float *gval, const float *bias, int act,
                       float slope, const float *X, float *Y, int64_t cols, int64_t rows, int64_t g0, int64_t g1,
                       int R, const int acc) {
    for (int64_t cb = 0; cb < cols; cb += SG_COLUMN_BLOCK) {
        const int64_t ce = cb + SG_COLUMN_BLOCK < cols ? cb + SG_COLUMN_BLOCK : cols;
        if (R == 8) {
            if (acc) group_block(gptr, gidx, gval, NULL, 0, 0.0f, X, Y, cols, cb, ce, rows, g0, g1, 8, 1);
            else group_block(gptr, gidx, gval, bias, act, slope, X, Y, cols, cb, ce, rows, g0, g1, 8, 0);
        } else if (R == 4) {
            if (acc) group_block(gptr, gidx, gval, NULL, 0, 0.0f, X, Y, cols, cb, ce, rows, g0, g1, 4, 1);
            else group_block(gptr, gidx, gval, bias, act, slope, X, Y, cols, cb, ce, rows, g0, g1, 4, 0);
        } else {
            if (acc) group_block(gptr, gidx, gval, NULL, 0, 0.0f, X, Y, cols, cb, ce, rows, g0, g1, 2, 1);
            else group_block(gptr, gidx, gval, bias, act, slope, X, Y, cols, cb, ce, rows, g0, g1, 2, 0);
        }
    }
}

/* Y = act(A @ X + bias) for A in row groups of R (see above), the groups cuts[b] <= g < cuts[b + 1]
 * of `blocks` blocks shared out to `threads` OpenMP threads as sg_csr_mm_parallel does. */
void sg_group_mm(const int32_t *gptr, const int32_t *gidx, const float *gval, const float *bias, int act,
                 float slope, const float *X, float *Y, int64_t cols, int64_t rows, int R, const int64_t *cuts,
                 int blocks, int threads) {
#ifdef _OPENMP
    if (threads > 1 && blocks > 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (int b = 0; b < blocks; b++)
            group_rows(gptr, gidx, gval, bias, act, slope, X, Y, cols, rows, cuts[b], cuts[b + 1], R, 0);
        return;
    }
#endif
    (void)threads;
    group_rows(gptr, gidx, gval, bias, act, slope, X, Y, cols, rows, cuts[0], cuts[blocks], R, 0);
}

/* Y += A @ X for A in row groups of R, no epilogue: a transposed convolution's output phase, as
 * sg_csr_mm_acc. */
void sg_group_mm_acc(const int32_t *gptr, const int32_t *gidx, const float *gval, const float *X, float *Y,
                     int64_t cols, int64_t rows, int R) {
    group_rows(gptr, gidx, gval, NULL, 0, 0.0f, X, Y, cols, rows, 0, (rows + R - 1) / R, R, 1);
}

/* --- training: the weight gradient of the active weights only (a sampled dense-dense product) ---
 *
 *     out[p] = sum_c G[i, c] * X[indices[p], c]        for the active entries p of rows r0 <= i < r1
 *
 * G (rows x cols) and X (K x cols) row-major, float32: for a Linear layer G is the output gradient
 * and X the input, both transposed to (features x batch), so each active weight's gradient is one
 * dot product of two contiguous rows. Four entries of a row at a time: four independent chains of
 * FMAs (a single dot product would wait on its own FMA latency) and one horizontal reduction for
 * all four. Columns go in blocks of SG_COLUMN_BLOCK (as the products above), so that the rows of X
 * a block reads stay in cache for all the rows of G; out[] accumulates over the blocks. */
static inline float hsum8(__m256 a) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

static void sddmm_rows(const int32_t *indptr, const int32_t *indices, const float *G, const float *X, float *out,
                       int64_t cols, int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++)
        for (int32_t p = indptr[i]; p < indptr[i + 1]; p++) out[p] = 0.0f;
    for (int64_t cb = 0; cb < cols; cb += SG_COLUMN_BLOCK) {
        const int64_t ce = cb + SG_COLUMN_BLOCK < cols ? cb + SG_COLUMN_BLOCK : cols;
        const int64_t ve = cb + ((ce - cb) / 8) * 8; /* end of the whole vectors */
        for (int64_t i = r0; i < r1; i++) {
            const int32_t p0 = indptr[i], p1 = indptr[i + 1];
            const float *g = G + i * cols;
            int32_t p = p0;
            for (; p + 4 <= p1; p += 4) {
                const float *x0 = X + (int64_t)indices[p] * cols, *x1 = X + (int64_t)indices[p + 1] * cols;
                const float *x2 = X + (int64_t)indices[p + 2] * cols, *x3 = X + (int64_t)indices[p + 3] * cols;
                __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
                for (int64_t c = cb; c < ve; c += 8) {
                    const __m256 gv = _mm256_loadu_ps(g + c);
                    a0 = _mm256_fmadd_ps(gv, _mm256_loadu_ps(x0 + c), a0);
                    a1 = _mm256_fmadd_ps(gv, _mm256_loadu_ps(x1 + c), a1);
                    a2 = _mm256_fmadd_ps(gv, _mm256_loadu_ps(x2 + c), a2);
                    a3 = _mm256_fmadd_ps(gv, _mm256_loadu_ps(x3 + c), a3);
                }
                /* [a0 a1 a2 a3] summed across their lanes at once: two hadds, then the halves */
                const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
                __m128 d = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
                float t[4];
                _mm_storeu_ps(t, d);
                for (int64_t c = ve; c < ce; c++) {
                    t[0] += g[c] * x0[c], t[1] += g[c] * x1[c];
                    t[2] += g[c] * x2[c], t[3] += g[c] * x3[c];
                }
                out[p] += t[0], out[p + 1] += t[1], out[p + 2] += t[2], out[p + 3] += t[3];
            }
            for (; p < p1; p++) {
                const float *x = X + (int64_t)indices[p] * cols;
                __m256 a = _mm256_setzero_ps();
                for (int64_t c = cb; c < ve; c += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(g + c), _mm256_loadu_ps(x + c), a);
                float t = hsum8(a);
                for (int64_t c = ve; c < ce; c++) t += g[c] * x[c];
                out[p] += t;
            }
        }
    }
}

/* out[] for the rows cuts[0] <= i < cuts[blocks], the row blocks shared out to `threads` OpenMP
 * threads as sg_csr_mm_parallel does. */
void sg_sddmm_parallel(const int32_t *indptr, const int32_t *indices, const float *G, const float *X, float *out,
                       int64_t cols, const int64_t *cuts, int blocks, int threads) {
#ifdef _OPENMP
    if (threads > 1 && blocks > 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (int b = 0; b < blocks; b++) sddmm_rows(indptr, indices, G, X, out, cols, cuts[b], cuts[b + 1]);
        return;
    }
#endif
    (void)threads;
    sddmm_rows(indptr, indices, G, X, out, cols, cuts[0], cuts[blocks]);
}

/* A Python module only so that setuptools builds and installs this file; the functions above are
 * called through ctypes, which releases the GIL around each call (row blocks run on threads). */
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, .m_name = "_simd_csr", .m_size = -1};
PyMODINIT_FUNC PyInit__simd_csr(void) { return PyModule_Create(&module); }
