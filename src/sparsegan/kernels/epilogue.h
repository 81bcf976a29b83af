/* The sparse runtime's row epilogue, act(v + bias), in AVX2 (8 floats) and scalar form: shared by
 * the C kernels that fuse it (_simd_csr.c, _conv_direct.c).
 * act: 0 none, 1 ReLU, 2 LeakyReLU(slope), 3 tanh (the rational approximation of tanh_rational.h,
 * which the numba kernel of sparsegan.inference.csr_kernel reads too). */
#ifndef SG_EPILOGUE_H
#define SG_EPILOGUE_H
#include <immintrin.h>

#include "tanh_rational.h"

static const float TANH_CLAMP = (float)SG_TANH_CLAMP;
static const float TANH_P[7] = SG_TANH_P;
static const float TANH_Q[4] = SG_TANH_Q;

static inline float tanh1(float v) {
    v = v < -TANH_CLAMP ? -TANH_CLAMP : (v > TANH_CLAMP ? TANH_CLAMP : v);
    float v2 = v * v, p = TANH_P[0], q = TANH_Q[0];
    for (int j = 1; j < 7; j++) p = p * v2 + TANH_P[j];
    for (int j = 1; j < 4; j++) q = q * v2 + TANH_Q[j];
    return v * p / q;
}

static inline __m256 tanh8(__m256 v) {
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-TANH_CLAMP)), _mm256_set1_ps(TANH_CLAMP));
    __m256 v2 = _mm256_mul_ps(v, v), p = _mm256_set1_ps(TANH_P[0]), q = _mm256_set1_ps(TANH_Q[0]);
    for (int j = 1; j < 7; j++) p = _mm256_fmadd_ps(p, v2, _mm256_set1_ps(TANH_P[j]));
    for (int j = 1; j < 4; j++) q = _mm256_fmadd_ps(q, v2, _mm256_set1_ps(TANH_Q[j]));
    return _mm256_div_ps(_mm256_mul_ps(v, p), q);
}

static inline __m256 act8(__m256 v, __m256 b, int act, float slope) {
    v = _mm256_add_ps(v, b);
    if (act == 1) return _mm256_max_ps(v, _mm256_setzero_ps());
    if (act == 2) {
        __m256 neg = _mm256_mul_ps(v, _mm256_set1_ps(slope));
        return _mm256_blendv_ps(neg, v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
    }
    if (act == 3) return tanh8(v);
    return v;
}

static inline float act1(float v, float b, int act, float slope) {
    v += b;
    if (act == 1) return v > 0.0f ? v : 0.0f;
    if (act == 2) return v > 0.0f ? v : v * slope;
    if (act == 3) return tanh1(v);
    return v;
}

#endif
