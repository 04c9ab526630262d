#include "taskgraph_kernels.h"

#include <math.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define TG_X86 1
#else
#define TG_X86 0
#endif

static inline void row_loss(int loss, double z, double y, double *l, double *r) {
  if (loss == TG_LOSS_SQUARED) {
    double e = z - y;
    *l = 0.5 * e * e;
    *r = e;
  } else {
    double a = fabs(z);
    double e = exp(-a);
    *l = (z > 0 ? z : 0) - y * z + log1p(e);
    double s = z >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    *r = s - y;
  }
}

/* ---------- portable versions ---------- */

static void fused_f64_generic(const double *x, size_t m, size_t d, const double *y,
                              const double *w, double b, int loss, double *g,
                              double *loss_sum, double *r_sum) {
  double ls = 0, rs = 0;
  for (size_t i = 0; i < m; i++) {
    const double *xi = x + i * d;
    double z = b;
    for (size_t j = 0; j < d; j++) z += xi[j] * w[j];
    double l, r;
    row_loss(loss, z, y[i], &l, &r);
    ls += l;
    rs += r;
    for (size_t j = 0; j < d; j++) g[j] += r * xi[j];
  }
  *loss_sum += ls;
  *r_sum += rs;
}

static void fused_f32_generic(const float *x, size_t m, size_t d, const double *y,
                              const float *w, double b, int loss, size_t block, float *gb,
                              double *g, double *loss_sum, double *r_sum) {
  double ls = 0, rs = 0;
  for (size_t start = 0; start < m; start += block) {
    size_t end = start + block < m ? start + block : m;
    for (size_t j = 0; j < d; j++) gb[j] = 0;
    for (size_t i = start; i < end; i++) {
      const float *xi = x + i * d;
      float z = 0;
      for (size_t j = 0; j < d; j++) z += xi[j] * w[j];
      double l, r;
      row_loss(loss, (double)z + b, y[i], &l, &r);
      ls += l;
      rs += r;
      float rf = (float)r;
      for (size_t j = 0; j < d; j++) gb[j] += rf * xi[j];
    }
    for (size_t j = 0; j < d; j++) g[j] += gb[j];
  }
  *loss_sum += ls;
  *r_sum += rs;
}

/* ---------- AVX2 + FMA versions ---------- */

#if TG_X86
__attribute__((target("avx2,fma"))) static inline double hsum_pd(__m256d v) {
  __m128d lo = _mm256_castpd256_pd128(v);
  __m128d hi = _mm256_extractf128_pd(v, 1);
  lo = _mm_add_pd(lo, hi);
  __m128d sh = _mm_unpackhi_pd(lo, lo);
  return _mm_cvtsd_f64(_mm_add_sd(lo, sh));
}

__attribute__((target("avx2,fma"))) static inline float hsum_ps(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  __m128 sh = _mm_movehdup_ps(lo);
  lo = _mm_add_ps(lo, sh);
  sh = _mm_movehl_ps(sh, lo);
  return _mm_cvtss_f32(_mm_add_ss(lo, sh));
}

__attribute__((target("avx2,fma"))) static void fused_f64_avx2(
    const double *x, size_t m, size_t d, const double *y, const double *w, double b, int loss,
    double *g, double *loss_sum, double *r_sum) {
  double ls = 0, rs = 0;
  size_t d4 = d & ~(size_t)3;
  size_t i = 0;
  for (; i + 4 <= m; i += 4) {
    const double *x0 = x + i * d, *x1 = x0 + d, *x2 = x1 + d, *x3 = x2 + d;
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t j = 0; j < d4; j += 4) {
      __m256d wv = _mm256_loadu_pd(w + j);
      a0 = _mm256_fmadd_pd(_mm256_loadu_pd(x0 + j), wv, a0);
      a1 = _mm256_fmadd_pd(_mm256_loadu_pd(x1 + j), wv, a1);
      a2 = _mm256_fmadd_pd(_mm256_loadu_pd(x2 + j), wv, a2);
      a3 = _mm256_fmadd_pd(_mm256_loadu_pd(x3 + j), wv, a3);
    }
    double z0 = hsum_pd(a0), z1 = hsum_pd(a1), z2 = hsum_pd(a2), z3 = hsum_pd(a3);
    for (size_t j = d4; j < d; j++) {
      z0 += x0[j] * w[j];
      z1 += x1[j] * w[j];
      z2 += x2[j] * w[j];
      z3 += x3[j] * w[j];
    }
    double l0, l1, l2, l3, r0, r1, r2, r3;
    row_loss(loss, z0 + b, y[i], &l0, &r0);
    row_loss(loss, z1 + b, y[i + 1], &l1, &r1);
    row_loss(loss, z2 + b, y[i + 2], &l2, &r2);
    row_loss(loss, z3 + b, y[i + 3], &l3, &r3);
    ls += l0;
    ls += l1;
    ls += l2;
    ls += l3;
    rs += r0;
    rs += r1;
    rs += r2;
    rs += r3;
    __m256d v0 = _mm256_set1_pd(r0), v1 = _mm256_set1_pd(r1);
    __m256d v2 = _mm256_set1_pd(r2), v3 = _mm256_set1_pd(r3);
    for (size_t j = 0; j < d4; j += 4) {
      __m256d gv = _mm256_loadu_pd(g + j);
      gv = _mm256_fmadd_pd(_mm256_loadu_pd(x0 + j), v0, gv);
      gv = _mm256_fmadd_pd(_mm256_loadu_pd(x1 + j), v1, gv);
      gv = _mm256_fmadd_pd(_mm256_loadu_pd(x2 + j), v2, gv);
      gv = _mm256_fmadd_pd(_mm256_loadu_pd(x3 + j), v3, gv);
      _mm256_storeu_pd(g + j, gv);
    }
    for (size_t j = d4; j < d; j++) g[j] += r0 * x0[j] + r1 * x1[j] + r2 * x2[j] + r3 * x3[j];
  }
  double lt = 0, rt = 0;
  if (i < m) fused_f64_generic(x + i * d, m - i, d, y + i, w, b, loss, g, &lt, &rt);
  *loss_sum += ls + lt;
  *r_sum += rs + rt;
}

__attribute__((target("avx2,fma"))) static void fused_f32_avx2(
    const float *x, size_t m, size_t d, const double *y, const float *w, double b, int loss,
    size_t block, float *gb, double *g, double *loss_sum, double *r_sum) {
  double ls = 0, rs = 0;
  size_t d8 = d & ~(size_t)7;
  for (size_t start = 0; start < m; start += block) {
    size_t end = start + block < m ? start + block : m;
    for (size_t j = 0; j < d; j++) gb[j] = 0;
    size_t i = start;
    for (; i + 4 <= end; i += 4) {
      const float *x0 = x + i * d, *x1 = x0 + d, *x2 = x1 + d, *x3 = x2 + d;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (size_t j = 0; j < d8; j += 8) {
        __m256 wv = _mm256_loadu_ps(w + j);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + j), wv, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x1 + j), wv, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x2 + j), wv, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x3 + j), wv, a3);
      }
      float z0 = hsum_ps(a0), z1 = hsum_ps(a1), z2 = hsum_ps(a2), z3 = hsum_ps(a3);
      for (size_t j = d8; j < d; j++) {
        z0 += x0[j] * w[j];
        z1 += x1[j] * w[j];
        z2 += x2[j] * w[j];
        z3 += x3[j] * w[j];
      }
      double l0, l1, l2, l3, r0, r1, r2, r3;
      row_loss(loss, (double)z0 + b, y[i], &l0, &r0);
      row_loss(loss, (double)z1 + b, y[i + 1], &l1, &r1);
      row_loss(loss, (double)z2 + b, y[i + 2], &l2, &r2);
      row_loss(loss, (double)z3 + b, y[i + 3], &l3, &r3);
      ls += l0;
      ls += l1;
      ls += l2;
      ls += l3;
      rs += r0;
      rs += r1;
      rs += r2;
      rs += r3;
      __m256 v0 = _mm256_set1_ps((float)r0), v1 = _mm256_set1_ps((float)r1);
      __m256 v2 = _mm256_set1_ps((float)r2), v3 = _mm256_set1_ps((float)r3);
      for (size_t j = 0; j < d8; j += 8) {
        __m256 gv = _mm256_loadu_ps(gb + j);
        gv = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + j), v0, gv);
        gv = _mm256_fmadd_ps(_mm256_loadu_ps(x1 + j), v1, gv);
        gv = _mm256_fmadd_ps(_mm256_loadu_ps(x2 + j), v2, gv);
        gv = _mm256_fmadd_ps(_mm256_loadu_ps(x3 + j), v3, gv);
        _mm256_storeu_ps(gb + j, gv);
      }
      for (size_t j = d8; j < d; j++)
        gb[j] += (float)r0 * x0[j] + (float)r1 * x1[j] + (float)r2 * x2[j] + (float)r3 * x3[j];
    }
    for (; i < end; i++) {
      const float *xi = x + i * d;
      float z = 0;
      for (size_t j = 0; j < d; j++) z += xi[j] * w[j];
      double l, r;
      row_loss(loss, (double)z + b, y[i], &l, &r);
      ls += l;
      rs += r;
      for (size_t j = 0; j < d; j++) gb[j] += (float)r * xi[j];
    }
    for (size_t j = 0; j < d; j++) g[j] += gb[j];
  }
  *loss_sum += ls;
  *r_sum += rs;
}
#endif

int tg_kernels_use_avx2(void) {
#if TG_X86
  static int cached = -1;
  if (cached < 0) {
    __builtin_cpu_init();
    cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  return cached;
#else
  return 0;
#endif
}

void tg_fused_f64(const double *x, size_t m, size_t d, const double *y, const double *w,
                  double b, int loss, double *g, double *loss_sum, double *r_sum) {
#if TG_X86
  if (tg_kernels_use_avx2()) {
    fused_f64_avx2(x, m, d, y, w, b, loss, g, loss_sum, r_sum);
    return;
  }
#endif
  fused_f64_generic(x, m, d, y, w, b, loss, g, loss_sum, r_sum);
}

void tg_fused_f32(const float *x, size_t m, size_t d, const double *y, const float *w,
                  double b, int loss, size_t block, float *scratch, double *g,
                  double *loss_sum, double *r_sum) {
#if TG_X86
  if (tg_kernels_use_avx2()) {
    fused_f32_avx2(x, m, d, y, w, b, loss, block, scratch, g, loss_sum, r_sum);
    return;
  }
#endif
  fused_f32_generic(x, m, d, y, w, b, loss, block, scratch, g, loss_sum, r_sum);
}

/* ---------- STREAM-style read ---------- */

static double stream_sum_generic(const double *p, size_t n) {
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a0 += p[i];
    a1 += p[i + 1];
    a2 += p[i + 2];
    a3 += p[i + 3];
  }
  for (; i < n; i++) a0 += p[i];
  return a0 + a1 + a2 + a3;
}

#if TG_X86
__attribute__((target("avx2,fma"))) static double stream_sum_avx2(const double *p, size_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_add_pd(a0, _mm256_loadu_pd(p + i));
    a1 = _mm256_add_pd(a1, _mm256_loadu_pd(p + i + 4));
    a2 = _mm256_add_pd(a2, _mm256_loadu_pd(p + i + 8));
    a3 = _mm256_add_pd(a3, _mm256_loadu_pd(p + i + 12));
  }
  double s = hsum_pd(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
  for (; i < n; i++) s += p[i];
  return s;
}
#endif

double tg_stream_sum(const void *bytes, size_t count) {
  const double *p = (const double *)bytes;
  size_t n = count / sizeof(double);
#if TG_X86
  if (tg_kernels_use_avx2()) return stream_sum_avx2(p, n);
#endif
  return stream_sum_generic(p, n);
}
