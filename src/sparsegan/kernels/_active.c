/* The per-step work of sparse training that touches active weights only, in one pass each:
 * gathers and scatters through a weight's active indices, the optimizer steps (Adam / AdamW, SGD
 * with momentum) and the EMA of the active entries. torch's index_select / index_copy_ cost about
 * 100 us per call at these sizes, more than the arithmetic; a loop over the indices costs a few.
 *
 * The arithmetic is torch's per-tensor (single-tensor) implementation, operation by operation, so
 * that results agree with torch's to float rounding (its vectorised kernels may fuse a multiply
 * and an add where this file does not: a few units in the last place).
 *
 * Index arrays are int64 (torch's), ascending; loops split across OpenMP threads (PyTorch's, as in
 * _simd_csr.c) when they are long enough to pay for it. Part of the sparsegan.kernels._simd_csr
 * extension (see pyproject.toml), called through ctypes (sparsegan.kernels.library). */
/* torch's kernels round each multiply and add on its own: so does this file (GCC would otherwise
 * fuse them under -mfma) */
#pragma GCC optimize("fp-contract=off")
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define SG_PARALLEL_MIN 32768

/* out[i] = src[index[i]]: one thread (waking PyTorch's costs more than a gather of this size) */
void sg_gather(const float *src, const int64_t *index, int64_t n, float *out, int threads) {
    (void)threads;
    for (int64_t i = 0; i < n; i++) out[i] = src[index[i]];
}

/* out = 0 (numel entries), then out[index[i]] = values[i]: a weight-shaped gradient of active entries */
void sg_scatter_zero(const float *values, const int64_t *index, int64_t n, float *out, int64_t numel) {
    memset(out, 0, (size_t)numel * sizeof(float));
    for (int64_t i = 0; i < n; i++) out[index[i]] = values[i];
}

/* torch's lerp: a + w (b - a) for |w| < 0.5, else b - (b - a) (1 - w) */
static inline float lerp1(float a, float b, float w) {
    return fabsf(w) < 0.5f ? a + w * (b - a) : b - (b - a) * (1.0f - w);
}

/* ema[index[i]] = lerp(ema[index[i]], src[index[i]], w) */
void sg_lerp_active(float *ema, const float *src, const int64_t *index, int64_t n, float w, int threads) {
#pragma omp parallel for if (n >= SG_PARALLEL_MIN) num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const int64_t j = index[i];
        ema[j] = lerp1(ema[j], src[j], w);
    }
}

/* One Adam / AdamW step of the active entries (torch.optim.adam._single_tensor_adam, amsgrad off);
 * step_size = lr / (1 - beta1^t) and bc2_sqrt = sqrt(1 - beta2^t) come computed in double, as
 * torch computes them in Python. */
void sg_adam_active(float *p, const float *g, float *m, float *v, const int64_t *index, int64_t n, float lr,
                    float beta1, float beta2, float eps, float wd, int decoupled, int maximize, double step_size,
                    double bc2_sqrt, int threads) {
    const float decay = (float)(1.0 - (double)lr * (double)wd), w1 = 1.0f - beta1, w2 = 1.0f - beta2;
    const float neg_step = (float)(-step_size), bc2 = (float)bc2_sqrt;
#pragma omp parallel for if (n >= SG_PARALLEL_MIN) num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const int64_t j = index[i];
        float grad = maximize ? -g[j] : g[j], param = p[j];
        if (wd != 0.0f) {
            if (decoupled) param *= decay;
            else grad = grad + wd * param;
        }
        const float ma = lerp1(m[j], grad, w1);
        const float va = v[j] * beta2 + w2 * grad * grad;
        const float denom = sqrtf(va) / bc2 + eps;
        m[j] = ma, v[j] = va;
        p[j] = param + neg_step * (ma / denom);
    }
}

/* One SGD step of the active entries (torch.optim.sgd._single_tensor_sgd); buf: the momentum buffer
 * (NULL without momentum), first: it is new (torch starts it at the gradient). */
void sg_sgd_active(float *p, const float *g, float *buf, const int64_t *index, int64_t n, float lr, float momentum,
                   float dampening, float wd, int nesterov, int maximize, int first, int threads) {
#pragma omp parallel for if (n >= SG_PARALLEL_MIN) num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const int64_t j = index[i];
        float grad = maximize ? -g[j] : g[j];
        if (wd != 0.0f) grad = grad + wd * p[j];
        if (buf != NULL) {
            const float b = first ? grad : buf[j] * momentum + (1.0f - dampening) * grad;
            buf[j] = b;
            grad = nesterov ? grad + momentum * b : b;
        }
        p[j] = p[j] + (-lr) * grad;
    }
}

/* dst (cols x rows) = src (rows x cols)^T, both row-major: the layout changes around the sparse
 * products (a batch-major activation to features-major and back). torch's strided copy moves
 * about 1.5 GB/s at these sizes; 8 x 8 blocks through AVX registers move several times that. */
static inline void transpose8(const float *s, int64_t ls, float *d, int64_t ld) {
    __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + ls), r2 = _mm256_loadu_ps(s + 2 * ls);
    __m256 r3 = _mm256_loadu_ps(s + 3 * ls), r4 = _mm256_loadu_ps(s + 4 * ls), r5 = _mm256_loadu_ps(s + 5 * ls);
    __m256 r6 = _mm256_loadu_ps(s + 6 * ls), r7 = _mm256_loadu_ps(s + 7 * ls);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3);
    __m256 t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(d + ld, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(d + 2 * ld, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(d + 3 * ld, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(d + 4 * ld, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(d + 5 * ld, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(d + 6 * ld, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(d + 7 * ld, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* Blocks of 8 x 8, in the order that walks the longer side in the inner loop: its 8 rows (of src when
 * src is wide, of dst when src is tall) are then each read or written front to back. The other order
 * sends consecutive blocks to lines a power of two apart (16 KiB for a 4096 x 64 src, a
 * convolution's activations), all in one L1 set, evicted before they are complete. */
void sg_transpose(const float *src, int64_t rows, int64_t cols, float *dst) {
    const int64_t R = rows / 8 * 8, C = cols / 8 * 8;
    if (rows <= cols) {
        for (int64_t i = 0; i < R; i += 8) {
            for (int64_t j = 0; j < C; j += 8) transpose8(src + i * cols + j, cols, dst + j * rows + i, rows);
            for (int64_t j = C; j < cols; j++)
                for (int64_t k = i; k < i + 8; k++) dst[j * rows + k] = src[k * cols + j];
        }
        for (int64_t i = R; i < rows; i++)
            for (int64_t j = 0; j < cols; j++) dst[j * rows + i] = src[i * cols + j];
        return;
    }
    for (int64_t j = 0; j < C; j += 8) {
        for (int64_t i = 0; i < R; i += 8) transpose8(src + i * cols + j, cols, dst + j * rows + i, rows);
        for (int64_t i = R; i < rows; i++)
            for (int64_t k = j; k < j + 8; k++) dst[k * rows + i] = src[i * cols + k];
    }
    for (int64_t j = C; j < cols; j++)
        for (int64_t i = 0; i < rows; i++) dst[j * rows + i] = src[i * cols + j];
}
