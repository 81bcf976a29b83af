/* Sparse convolutions for training, without im2col: activations in (channels, height, width, batch)
 * order ("CHWB"), so that one weight times one pixel is a multiply-add over a contiguous run of the
 * batch. For a Conv2d with weight W (O x I x k x k, in CSR as an O x I k k matrix), stride s,
 * padding p, dilation d, input X (I, H, W, B) and output Y (O, Ho, Wo, B):
 *
 *     forward       Y[o, oh, ow, :]  = sum over active (o; i, kh, kw)  W * X[i, oh s - p + kh d, ow s - p + kw d, :]
 *     input grad    dX[i, ih, iw, :] = sum over active (i; o, kh, kw)  W * dY[o, (ih + p - kh d) / s, ..., :]
 *                                      (where the division is exact and the pixel inside)
 *     weight grad   dW[o, i, kh, kw] = sum over output pixels           dY[o, oh, ow, :] . X[i, ih, iw, :]
 *
 * The first needs the CSR of W (rows o), the second that of its transpose (rows i), the third W's
 * own entries. A transposed convolution is the same three with the roles turned: its forward is a
 * convolution's input gradient, its input gradient a convolution's forward (sparsegan.sparse_compute).
 * Each active entry's (channel, kh, kw) comes decoded in three int32 arrays (ch, khs, kws).
 *
 * im2col (torch's unfold / fold) copies every input pixel k x k times and then multiplies all of
 * them, active weight or not, through the sparse product: at 95 % sparsity the copies cost several
 * times the products. Here nothing is copied but the layout change of the activations.
 *
 * Pixels are shared out to OpenMP threads (PyTorch's, see _simd_csr.c): each thread writes its own
 * output pixels, or (weight gradient) its own rows' entries. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

/* y[0:n] += w x[0:n] */
static inline void axpy(float *restrict y, const float *restrict x, float w, int64_t n) {
    const __m256 wv = _mm256_set1_ps(w);
    int64_t c = 0;
    for (; c + 32 <= n; c += 32) {
        _mm256_storeu_ps(y + c, _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + c), _mm256_loadu_ps(y + c)));
        _mm256_storeu_ps(y + c + 8, _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + c + 8), _mm256_loadu_ps(y + c + 8)));
        _mm256_storeu_ps(y + c + 16, _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + c + 16), _mm256_loadu_ps(y + c + 16)));
        _mm256_storeu_ps(y + c + 24, _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + c + 24), _mm256_loadu_ps(y + c + 24)));
    }
    for (; c + 8 <= n; c += 8)
        _mm256_storeu_ps(y + c, _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + c), _mm256_loadu_ps(y + c)));
    for (; c < n; c++) y[c] += w * x[c];
}

/* x[0:n] . y[0:n] */
static inline float dot(const float *restrict x, const float *restrict y, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t c = 0;
    for (; c + 32 <= n; c += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + c), _mm256_loadu_ps(y + c), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + c + 8), _mm256_loadu_ps(y + c + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + c + 16), _mm256_loadu_ps(y + c + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + c + 24), _mm256_loadu_ps(y + c + 24), a3);
    }
    for (; c + 8 <= n; c += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + c), _mm256_loadu_ps(y + c), a0);
    __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float t = _mm_cvtss_f32(h);
    for (; c < n; c++) t += x[c] * y[c];
    return t;
}

typedef struct {
    int64_t batch, in_h, in_w, out_h, out_w; /* the convolution's input (big) and output (small) sizes */
    int32_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
} sg_geometry;

/* Y[r, oh, ow, :] = bias[r] + sum over the active entries of row r: W * X[ch, ih, iw, :], the
 * output pixels out0 <= pixel < out1 (of out_h x out_w), every row (a convolution's forward). */
void sg_conv_gather(const int32_t *indptr, const int32_t *ch, const int32_t *khs, const int32_t *kws,
                    const float *data, const float *bias, int64_t rows, const float *X, float *Y,
                    const sg_geometry *g, int threads) {
    const int64_t B = g->batch, npix = g->out_h * g->out_w;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t pix = 0; pix < npix; pix++) {
        const int64_t oh = pix / g->out_w, ow = pix % g->out_w;
        for (int64_t r = 0; r < rows; r++) {
            float *y = Y + ((r * g->out_h + oh) * g->out_w + ow) * B;
            const float b = bias ? bias[r] : 0.0f;
            for (int64_t c = 0; c < B; c++) y[c] = b;
            for (int32_t e = indptr[r]; e < indptr[r + 1]; e++) {
                const int64_t ih = oh * g->stride_h - g->pad_h + (int64_t)khs[e] * g->dil_h;
                const int64_t iw = ow * g->stride_w - g->pad_w + (int64_t)kws[e] * g->dil_w;
                if (ih < 0 || ih >= g->in_h || iw < 0 || iw >= g->in_w) continue;
                axpy(y, X + (((int64_t)ch[e] * g->in_h + ih) * g->in_w + iw) * B, data[e], B);
            }
        }
    }
}

/* dX[r, ih, iw, :] = sum over the active entries (r; ch, kh, kw) of W^T's row r: W * dY[ch, oh, ow, :]
 * with oh = (ih + pad - kh dil) / stride where exact and inside (a convolution's input gradient;
 * a transposed convolution's forward). The division is exact for one residue of kh dil (mod stride) per
 * pixel row, and of kw dil per pixel column: each row's entries come grouped by those residues ("phases",
 * stride_h x stride_w of them, phase_ptr over rows x phases), and a pixel visits its phase's only, not
 * the (stride^2 - 1) / stride^2 of the entries that cannot reach it. */
void sg_conv_scatter(const int32_t *phase_ptr, const int32_t *ch, const int32_t *khs, const int32_t *kws,
                     const float *data, const float *bias, int64_t rows, const float *dY, float *dX,
                     const sg_geometry *g, int threads) {
    const int64_t B = g->batch, npix = g->in_h * g->in_w;
    const int64_t S = (int64_t)g->stride_h * g->stride_w;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t pix = 0; pix < npix; pix++) {
        const int64_t ih = pix / g->in_w, iw = pix % g->in_w;
        const int64_t phase = ((ih + g->pad_h) % g->stride_h) * g->stride_w + (iw + g->pad_w) % g->stride_w;
        for (int64_t r = 0; r < rows; r++) {
            float *x = dX + ((r * g->in_h + ih) * g->in_w + iw) * B;
            const float b = bias ? bias[r] : 0.0f;
            for (int64_t c = 0; c < B; c++) x[c] = b;
            for (int32_t e = phase_ptr[r * S + phase]; e < phase_ptr[r * S + phase + 1]; e++) {
                const int64_t th = ih + g->pad_h - (int64_t)khs[e] * g->dil_h;
                const int64_t tw = iw + g->pad_w - (int64_t)kws[e] * g->dil_w;
                if (th < 0 || tw < 0) continue;
                const int64_t oh = th / g->stride_h, ow = tw / g->stride_w;
                if (oh >= g->out_h || ow >= g->out_w) continue;
                axpy(x, dY + (((int64_t)ch[e] * g->out_h + oh) * g->out_w + ow) * B, data[e], B);
            }
        }
    }
}

/* out[e] = sum over output pixels: dY[r, oh, ow, :] . X[ch, ih, iw, :] for the active entries e of
 * rows cuts[0] <= r < cuts[blocks] (a convolution's weight gradient, W's CSR order). */
void sg_conv_weight_grad(const int32_t *indptr, const int32_t *ch, const int32_t *khs, const int32_t *kws,
                         const float *dY, const float *X, float *out, const sg_geometry *g, const int64_t *cuts,
                         int blocks, int threads) {
    const int64_t B = g->batch;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
    for (int bl = 0; bl < blocks; bl++) {
        for (int64_t r = cuts[bl]; r < cuts[bl + 1]; r++) {
            for (int32_t e = indptr[r]; e < indptr[r + 1]; e++) {
                float t = 0.0f;
                for (int64_t oh = 0; oh < g->out_h; oh++) {
                    const int64_t ih = oh * g->stride_h - g->pad_h + (int64_t)khs[e] * g->dil_h;
                    if (ih < 0 || ih >= g->in_h) continue;
                    for (int64_t ow = 0; ow < g->out_w; ow++) {
                        const int64_t iw = ow * g->stride_w - g->pad_w + (int64_t)kws[e] * g->dil_w;
                        if (iw < 0 || iw >= g->in_w) continue;
                        t += dot(dY + ((r * g->out_h + oh) * g->out_w + ow) * B,
                                 X + (((int64_t)ch[e] * g->in_h + ih) * g->in_w + iw) * B, B);
                    }
                }
                out[e] = t;
            }
        }
    }
}
