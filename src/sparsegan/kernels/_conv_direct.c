/* A sparse Conv2d's forward (for sampling, and for training's forward and input gradient), image by
 * image in PyTorch's own (N, C, H, W) layout, without im2col: for weight W (O x I x kh x kw, in CSR
 * as an O x I kh kw matrix), stride s, padding p,
 *
 *     Y[n, o, oh, ow] = act(bias[o] + sum over active (o; i, kh, kw)  W * X[n, i, oh s - p + kh, ow s - p + kw])
 *
 * For one output row oh, an active weight multiplies a run of input pixels along a row: with stride 1
 * a contiguous one, X[n, i, oh - p + kh, kw - p : kw - p + Wo]. So the product vectorises over the
 * output's width, whatever the batch: at batch 1-16 the batch-innermost kernels of _conv.c and the
 * CSR products have runs too short for AVX2 (a run of B floats per active weight and pixel).
 *
 * Each image's input is first copied into a scratch buffer that makes every such run contiguous and
 * in bounds: zero padding around each channel plane, and for stride s each plane split into s x s
 * phase planes (rows r s + a, columns c s + b), so that a stride-s convolution reads phase
 * (kh mod s, kw mod s) at row oh + kh / s, columns ow + kw / s: a stride-1 read. Rows are padded to a
 * multiple of 8 columns, so the last vector of an output row is read whole and stored masked.
 *
 * A tile of R output rows x NV 8-float vectors (R NV <= 12) stays in registers across all the active
 * weights of its output channel: per active weight one broadcast, then R NV loads and FMAs. The tile
 * shapes are compile-time constants (one specialised loop per shape, see TILE), or the compiler
 * would keep the accumulators in memory.
 *
 * Images go one after the other through a scratch image (its planes stay in cache from their copy to
 * their last read: a whole batch's planes, copied first, came back from memory at batch 64). With at
 * least two images per OpenMP thread (PyTorch's, see _simd_csr.c) the images are shared out, each
 * thread with a scratch image of its own and no barrier between images; with fewer (sampling at batch
 * 1) each image's input channels and then its output channels are. Each output value is computed the
 * same way either way, so the results do not depend on the thread count.
 * Part of the sparsegan.kernels._simd_csr extension (see pyproject.toml), called through ctypes
 * (sparsegan.kernels.library) by sparsegan.inference.conv (sampling) and sparsegan.sparse_compute.pattern
 * (training: the forward, the input gradient and, below, the weight gradient). */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "epilogue.h"

typedef struct {
    int64_t batch, channels, in_h, in_w, out_h, out_w;
    int32_t k_h, k_w, stride_h, stride_w, pad_h, pad_w;
} sg_direct_geometry;

/* The scratch buffer's layout: per image and input channel, stride_h x stride_w phase planes of
 * `plane_rows` rows of `row_len` floats. */
typedef struct {
    int64_t plane_rows, row_len, vectors, channel, image;
} direct_layout;

static direct_layout layout_of(const sg_direct_geometry *g) {
    direct_layout l;
    l.vectors = (g->out_w + 7) / 8;
    l.plane_rows = g->out_h + (g->k_h - 1) / g->stride_h;
    l.row_len = l.vectors * 8 + (g->k_w - 1) / g->stride_w;
    l.channel = (int64_t)g->stride_h * g->stride_w * l.plane_rows * l.row_len;
    l.image = g->channels * l.channel;
    return l;
}

/* Whether the images are shared out to the threads (each with a scratch image) rather than each
 * image's channels: at least two images per thread, so that the shares are about even. */
static int by_images(const sg_direct_geometry *g, int threads) { return threads > 1 && g->batch >= 2 * threads; }

/* Floats of scratch buffer that sg_conv_direct and sg_conv_direct_wgrad need for this geometry and
 * thread count: one image's planes, per thread where the images are shared out. */
int64_t sg_conv_direct_scratch(const sg_direct_geometry *g, int threads) {
    return layout_of(g).image * (by_images(g, threads) ? threads : 1);
}

/* One input channel plane (H x W) into its phase planes (zeros outside the input). */
static void fill_planes(const float *x, float *p, const sg_direct_geometry *g, const direct_layout *l) {
    for (int32_t a = 0; a < g->stride_h; a++)
        for (int32_t b = 0; b < g->stride_w; b++) {
            float *plane = p + ((int64_t)a * g->stride_w + b) * l->plane_rows * l->row_len;
            for (int64_t r = 0; r < l->plane_rows; r++) {
                float *row = plane + r * l->row_len;
                const int64_t ih = r * g->stride_h + a - g->pad_h;
                if (ih < 0 || ih >= g->in_h) {
                    memset(row, 0, (size_t)l->row_len * sizeof(float));
                    continue;
                }
                const float *src = x + ih * g->in_w;
                if (g->stride_w == 1) {  /* columns c <-> iw = c - pad: zeros, a copy, zeros */
                    const int64_t c0 = g->pad_w - b, c1 = c0 + g->in_w;
                    const int64_t lo = c0 < 0 ? 0 : (c0 > l->row_len ? l->row_len : c0);
                    const int64_t hi = c1 > l->row_len ? l->row_len : c1;
                    memset(row, 0, (size_t)lo * sizeof(float));
                    if (hi > lo) memcpy(row + lo, src + (lo - c0), (size_t)(hi - lo) * sizeof(float));
                    if (hi < l->row_len) memset(row + (hi > lo ? hi : lo), 0,
                                                (size_t)(l->row_len - (hi > lo ? hi : lo)) * sizeof(float));
                    continue;
                }
                for (int64_t c = 0; c < l->row_len; c++) {
                    const int64_t iw = c * g->stride_w + b - g->pad_w;
                    row[c] = iw >= 0 && iw < g->in_w ? src[iw] : 0.0f;
                }
            }
        }
}

/* Input channel c of image n of X into its planes of the scratch image p. */
static void fill_channel(const float *X, int64_t n, int64_t c, float *p, const sg_direct_geometry *g,
                         const direct_layout *l) {
    fill_planes(X + (n * g->channels + c) * g->in_h * g->in_w, p + c * l->channel, g, l);
}

/* All input channels of image n into the scratch image p (one thread). */
static void fill_image(const float *X, int64_t n, float *p, const sg_direct_geometry *g, const direct_layout *l) {
    for (int64_t c = 0; c < g->channels; c++) fill_channel(X, n, c, p, g, l);
}

/* Each active entry's first input float in an image's scratch planes: its channel's planes, the
 * phase plane of its kernel offsets, the row and column of that plane an output pixel (0, 0) reads. */
static void entry_offsets(const int32_t *ch, const int32_t *khs, const int32_t *kws, int64_t nnz,
                          const sg_direct_geometry *g, const direct_layout *l, int64_t *offs) {
    for (int64_t e = 0; e < nnz; e++) {
        const int64_t phase = (int64_t)(khs[e] % g->stride_h) * g->stride_w + kws[e] % g->stride_w;
        offs[e] = (int64_t)ch[e] * l->channel + (phase * l->plane_rows + khs[e] / g->stride_h) * l->row_len +
                  kws[e] / g->stride_w;
    }
}

/* The lanes of an output row's last vector that lie inside the row (1 .. 8 of them). */
static __m256i tail_mask(const sg_direct_geometry *g, const direct_layout *l) {
    const int64_t last = g->out_w - (l->vectors - 1) * 8;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)last), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Output rows oh0 .. oh0 + R - 1, vectors v0 .. v0 + NV - 1 of one output channel: the accumulators
 * in registers across the channel's active weights (entries e0 <= e < e1; offs: each one's first
 * input float in the image's scratch), then bias, activation and the store (the row's last vector
 * masked to the output's width). */
static inline __attribute__((always_inline)) void tile(const int64_t *offs, const float *data, int32_t e0,
                                                         int32_t e1, const float *p, float *y, int64_t row_len,
                                                         int64_t out_w, int64_t vectors, int64_t oh0, int64_t v0,
                                                         __m256 bias, int act, float slope, __m256i tail,
                                                         const int R, const int NV) {
    __m256 acc[8][4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();
    const float *base = p + oh0 * row_len + v0 * 8;
    for (int32_t e = e0; e < e1; e++) {
        const __m256 w = _mm256_set1_ps(data[e]);
        const float *src = base + offs[e];
        for (int r = 0; r < R; r++)
            for (int v = 0; v < NV; v++)
                acc[r][v] = _mm256_fmadd_ps(w, _mm256_loadu_ps(src + r * row_len + v * 8), acc[r][v]);
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) {
            float *out = y + (oh0 + r) * out_w + (v0 + v) * 8;
            const __m256 o = act8(acc[r][v], bias, act, slope);
            if (v0 + v == vectors - 1) _mm256_maskstore_ps(out, tail, o);
            else _mm256_storeu_ps(out, o);
        }
}

/* The largest tile height for NV vectors: R NV <= 12 accumulators of the 16 registers (and R <= 8). */
static int max_rows(int64_t nv) { return nv == 1 ? 8 : (nv == 2 ? 6 : (nv == 3 ? 4 : 3)); }

#define TILE(R, NV) tile(offs, data, e0, e1, p, y, l.row_len, g->out_w, l.vectors, oh0, v0, b, act, slope, tail, R, NV)
#define TILE_ROWS(NV)                                                                                                \
    switch (R) {                                                                                                     \
    case 1: TILE(1, NV); break;                                                                                      \
    case 2: TILE(2, NV); break;                                                                                      \
    case 3: TILE(3, NV); break;                                                                                      \
    case 4: TILE(4, NV); break;                                                                                      \
    case 5: TILE(5, NV); break;                                                                                      \
    case 6: TILE(6, NV); break;                                                                                      \
    case 7: TILE(7, NV); break;                                                                                      \
    default: TILE(8, NV); break;                                                                                     \
    }

/* The operands of one forward call, for output_channel. */
typedef struct {
    const int32_t *indptr;
    const float *data, *bias;
    const int64_t *offs;
    int act;
    float slope;
    int64_t rows;
    float *Y;
    __m256i tail;
} forward_args;

/* Output channel o of image n, from the image's scratch planes p. */
static void output_channel(const forward_args *a, const sg_direct_geometry *g, const direct_layout *lp,
                           const float *p, int64_t n, int64_t o) {
    const direct_layout l = *lp;
    const int64_t *offs = a->offs;
    const float *data = a->data;
    const int act = a->act;
    const float slope = a->slope;
    const __m256i tail = a->tail;
    float *y = a->Y + (n * a->rows + o) * g->out_h * g->out_w;
    const int32_t e0 = a->indptr[o], e1 = a->indptr[o + 1];
    const __m256 b = _mm256_set1_ps(a->bias ? a->bias[o] : 0.0f);
    for (int64_t v0 = 0; v0 < l.vectors; v0 += 4) {
        const int64_t nv = l.vectors - v0 < 4 ? l.vectors - v0 : 4;
        const int64_t rmax = max_rows(nv);
        const int R = (int)(g->out_h < rmax ? g->out_h : rmax);
        /* the last block of rows starts at out_h - R: it may redo rows of the one before (the same
         * sums, stored again), so every block is R rows high */
        for (int64_t start = 0; start < g->out_h; start += R) {
            const int64_t oh0 = start + R > g->out_h ? g->out_h - R : start;
            if (nv == 1) { TILE_ROWS(1) }
            else if (nv == 2) { TILE_ROWS(2) }
            else if (nv == 3) { TILE_ROWS(3) }
            else { TILE_ROWS(4) }
        }
    }
}

/* Y (batch, rows, out_h, out_w) = the convolution of X (batch, channels, in_h, in_w) with the CSR
 * weight (indptr over rows; per entry its input channel ch, kernel offsets khs, kws and value), bias
 * (NULL: none) and activation act (slope: LeakyReLU's); scratch: sg_conv_direct_scratch(g, threads) floats. */
void sg_conv_direct(const int32_t *indptr, const int32_t *ch, const int32_t *khs, const int32_t *kws,
                    const float *data, const float *bias, int act, float slope, int64_t rows, const float *X,
                    float *scratch, float *Y, const sg_direct_geometry *g, int threads) {
    const direct_layout l = layout_of(g);
    const int64_t nnz = indptr[rows];
    int64_t *offs = malloc((size_t)(nnz > 0 ? nnz : 1) * sizeof(int64_t));
    if (!offs) return;  /* never at these sizes; the caller's output stays unwritten */
    entry_offsets(ch, khs, kws, nnz, g, &l, offs);
    const forward_args a = {indptr, data, bias, offs, act, slope, rows, Y, tail_mask(g, &l)};
    if (by_images(g, threads)) {
#pragma omp parallel num_threads(threads)
        {
            float *p = scratch + omp_get_thread_num() * l.image;
#pragma omp for schedule(static)
            for (int64_t n = 0; n < g->batch; n++) {
                fill_image(X, n, p, g, &l);
                for (int64_t o = 0; o < rows; o++) output_channel(&a, g, &l, p, n, o);
            }
        }
    } else {
#pragma omp parallel num_threads(threads) if (threads > 1)
        for (int64_t n = 0; n < g->batch; n++) {
#pragma omp for schedule(static)
            for (int64_t c = 0; c < g->channels; c++) fill_channel(X, n, c, scratch, g, &l);
            /* (the loops' barriers: every plane filled before the products, every product done
             * before the next image's planes overwrite them) */
#pragma omp for schedule(static)
            for (int64_t o = 0; o < rows; o++) output_channel(&a, g, &l, scratch, n, o);
        }
    }
    free(offs);
}

/* ---- Training: the weight gradient on the active entries ----
 *
 * For an active weight (o; i, kh, kw) of the convolution above,
 *
 *     dL/dW = sum over images n, output pixels (oh, ow)  G[n, o, oh, ow] * X[n, i, oh s - p + kh, ow s - p + kw]
 *
 * with G = dL/dY: the same runs of input pixels as the forward reads (the same scratch planes and
 * entry offsets), now multiplied by G's rows and summed. Per output channel a tile of G (R rows x NV
 * vectors, the row's last vector loaded masked so that columns past the output's width add 0) stays in
 * registers while each of the channel's active weights reads its runs of X: one load and one FMA per
 * vector, into four partial sums (independent FMA chains). The sums stay 8-wide per entry across the
 * tiles and the images of a block of WGRAD_BLOCK images, are added across lanes at the block's end,
 * and the blocks' sums are added in block order at the end: so the images can be shared out to the
 * threads by blocks, with the same result as one thread's. Rows are split into blocks without overlap
 * here (a redone row would be counted twice). Where the images are not shared out, the output
 * channels are: each entry belongs to one channel, so no two threads write the same sum. */

static inline __attribute__((always_inline)) void wgrad_tile(const int64_t *offs, int32_t e0, int32_t e1,
                                                               const float *p, const float *gp, __m256 *sums,
                                                               int64_t row_len, int64_t out_w, int64_t vectors,
                                                               int64_t oh0, int64_t v0, __m256i tail, const int R,
                                                               const int NV) {
    __m256 gr[4][4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) {
            const float *src = gp + (oh0 + r) * out_w + (v0 + v) * 8;
            gr[r][v] = v0 + v == vectors - 1 ? _mm256_maskload_ps(src, tail) : _mm256_loadu_ps(src);
        }
    const float *base = p + oh0 * row_len + v0 * 8;
    for (int32_t e = e0; e < e1; e++) {
        const float *src = base + offs[e];
        __m256 s[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int r = 0; r < R; r++)
            for (int v = 0; v < NV; v++)
                s[(r * NV + v) & 3] = _mm256_fmadd_ps(gr[r][v], _mm256_loadu_ps(src + r * row_len + v * 8),
                                                       s[(r * NV + v) & 3]);
        sums[e] = _mm256_add_ps(sums[e], _mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3])));
    }
}

/* At most 8 G vectors in registers (with the 4 partial sums and a load: 13 of the 16). */
static int wgrad_rows(int64_t nv) { return nv == 1 ? 4 : (nv == 2 ? 4 : 2); }

#define WTILE(R, NV) wgrad_tile(offs, e0, e1, p, gp, sums, l.row_len, g->out_w, l.vectors, oh0, v0, tail, R, NV)
#define WTILE_ROWS(NV)                                                                                               \
    switch (R) {                                                                                                     \
    case 1: WTILE(1, NV); break;                                                                                     \
    case 2: WTILE(2, NV); break;                                                                                     \
    case 3: WTILE(3, NV); break;                                                                                     \
    default: WTILE(4, NV); break;                                                                                    \
    }

#define WGRAD_BLOCK 8

/* Image n's share of the sums of output channel o's entries, from the image's scratch planes p. */
static void wgrad_channel(const int32_t *indptr, const int64_t *offs, const sg_direct_geometry *g,
                          const direct_layout *lp, const float *p, const float *G, int64_t rows, int64_t n,
                          int64_t o, __m256 *sums, __m256i tail) {
    const direct_layout l = *lp;
    const float *gp = G + (n * rows + o) * g->out_h * g->out_w;
    const int32_t e0 = indptr[o], e1 = indptr[o + 1];
    if (e0 == e1) return;
    for (int64_t v0 = 0; v0 < l.vectors; v0 += 4) {
        const int64_t nv = l.vectors - v0 < 4 ? l.vectors - v0 : 4;
        const int64_t rmax = wgrad_rows(nv);
        for (int64_t oh0 = 0; oh0 < g->out_h; oh0 += rmax) {
            const int R = (int)(g->out_h - oh0 < rmax ? g->out_h - oh0 : rmax);
            if (nv == 1) { WTILE_ROWS(1) }
            else if (nv == 2) { WTILE_ROWS(2) }
            else if (nv == 3) { WTILE_ROWS(3) }
            else { WTILE_ROWS(4) }
        }
    }
}

/* The sum of v's 8 lanes. */
static float lanes_sum(__m256 v) {
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
}

/* out[e] (each active entry of the CSR weight, its order) = the weight gradient above, from X (batch,
 * channels, in_h, in_w), the layer's input, and G (batch, rows, out_h, out_w), its output's gradient;
 * scratch: sg_conv_direct_scratch(g, threads) floats. */
void sg_conv_direct_wgrad(const int32_t *indptr, const int32_t *ch, const int32_t *khs, const int32_t *kws,
                          int64_t rows, const float *X, const float *G, float *scratch, float *out,
                          const sg_direct_geometry *g, int threads) {
    const direct_layout l = layout_of(g);
    const int64_t nnz = indptr[rows], n_e = nnz > 0 ? nnz : 1;
    const int64_t blocks = (g->batch + WGRAD_BLOCK - 1) / WGRAD_BLOCK;
    const int images = by_images(g, threads) && blocks >= threads;
    int64_t *offs = malloc((size_t)n_e * sizeof(int64_t));
    __m256 *sums = aligned_alloc(32, (size_t)(images ? threads : 1) * n_e * sizeof(__m256));
    float *part = malloc((size_t)(blocks > 0 ? blocks : 1) * n_e * sizeof(float));  /* per block, per entry */
    if (!offs || !sums || !part) {  /* never at these sizes; the caller's output stays unwritten */
        free(offs);
        free(sums);
        free(part);
        return;
    }
    entry_offsets(ch, khs, kws, nnz, g, &l, offs);
    const __m256i tail = tail_mask(g, &l);
    if (images) {  /* blocks of images to the threads, each with scratch planes and sums of its own */
#pragma omp parallel num_threads(threads)
        {
            float *p = scratch + omp_get_thread_num() * l.image;
            __m256 *s = sums + omp_get_thread_num() * n_e;
#pragma omp for schedule(static)
            for (int64_t b = 0; b < blocks; b++) {
                const int64_t n1 = (b + 1) * WGRAD_BLOCK < g->batch ? (b + 1) * WGRAD_BLOCK : g->batch;
                for (int64_t e = 0; e < nnz; e++) s[e] = _mm256_setzero_ps();
                for (int64_t n = b * WGRAD_BLOCK; n < n1; n++) {
                    fill_image(X, n, p, g, &l);
                    for (int64_t o = 0; o < rows; o++) wgrad_channel(indptr, offs, g, &l, p, G, rows, n, o, s, tail);
                }
                for (int64_t e = 0; e < nnz; e++) part[b * nnz + e] = lanes_sum(s[e]);
            }
        }
    } else {  /* image by image, its channels to the threads; an entry's sums start and end with a block */
#pragma omp parallel num_threads(threads) if (threads > 1)
        for (int64_t n = 0; n < g->batch; n++) {
#pragma omp for schedule(static)
            for (int64_t c = 0; c < g->channels; c++) fill_channel(X, n, c, scratch, g, &l);
#pragma omp for schedule(static)
            for (int64_t o = 0; o < rows; o++) {
                const int64_t b = n / WGRAD_BLOCK;
                if (n % WGRAD_BLOCK == 0)
                    for (int32_t e = indptr[o]; e < indptr[o + 1]; e++) sums[e] = _mm256_setzero_ps();
                wgrad_channel(indptr, offs, g, &l, scratch, G, rows, n, o, sums, tail);
                if (n % WGRAD_BLOCK == WGRAD_BLOCK - 1 || n == g->batch - 1)
                    for (int32_t e = indptr[o]; e < indptr[o + 1]; e++) part[b * nnz + e] = lanes_sum(sums[e]);
            }
        }
    }
    for (int64_t e = 0; e < nnz; e++) {
        float total = blocks > 0 ? part[e] : 0.0f;  /* no image: 0 */
        for (int64_t b = 1; b < blocks; b++) total += part[b * nnz + e];
        out[e] = total;
    }
    free(offs);
    free(sums);
    free(part);
}
