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
