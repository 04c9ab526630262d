#include "taskgraph_kernels.h"

#include <math.h>
#include <string.h>

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

/* Rows are taken TG_ROWS at a time: their dot products run as independent FMA chains,
   and each row, still in L1, is read a second time for the gradient update. X is read
   from memory once. The rows TG_PREFETCH bytes ahead are prefetched, so the memory
   system keeps streaming while the core computes. */
#define TG_ROWS 8
#define TG_PREFETCH 16384

__attribute__((target("avx2,fma"))) static void fused_f64_avx2(
    const double *x, size_t m, size_t d, const double *y, const double *w, double b, int loss,
    double *g, double *loss_sum, double *r_sum) {
  double ls = 0, rs = 0;
  size_t d4 = d & ~(size_t)3;
  size_t i = 0;
  for (; i + TG_ROWS <= m; i += TG_ROWS) {
    const double *xr = x + i * d;
    const char *pf = (const char *)xr + TG_PREFETCH;
    __m256d a[TG_ROWS];
    for (int k = 0; k < TG_ROWS; k++) a[k] = _mm256_setzero_pd();
    for (size_t j = 0; j < d4; j += 4) {
      /* 8 rows × 4 doubles = 256 bytes of the group per step: prefetch as many. */
      for (int k = 0; k < TG_ROWS / 2; k++)
        _mm_prefetch(pf + 8 * TG_ROWS * j + 64 * k, _MM_HINT_T0);
      __m256d wv = _mm256_loadu_pd(w + j);
      for (int k = 0; k < TG_ROWS; k++)
        a[k] = _mm256_fmadd_pd(_mm256_loadu_pd(xr + k * d + j), wv, a[k]);
    }
    double r[TG_ROWS];
    for (int k = 0; k < TG_ROWS; k++) {
      const double *xk = xr + k * d;
      double z = hsum_pd(a[k]);
      for (size_t j = d4; j < d; j++) z += xk[j] * w[j];
      double l;
      row_loss(loss, z + b, y[i + k], &l, &r[k]);
      ls += l;
      rs += r[k];
    }
    __m256d v[TG_ROWS];
    for (int k = 0; k < TG_ROWS; k++) v[k] = _mm256_set1_pd(r[k]);
    for (size_t j = 0; j < d4; j += 4) {
      __m256d gv = _mm256_loadu_pd(g + j);
      for (int k = 0; k < TG_ROWS; k++)
        gv = _mm256_fmadd_pd(_mm256_loadu_pd(xr + k * d + j), v[k], gv);
      _mm256_storeu_pd(g + j, gv);
    }
    for (size_t j = d4; j < d; j++)
      for (int k = 0; k < TG_ROWS; k++) g[j] += r[k] * xr[k * d + j];
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
    for (; i + TG_ROWS <= end; i += TG_ROWS) {
      const float *xr = x + i * d;
      const char *pf = (const char *)xr + TG_PREFETCH;
      __m256 a[TG_ROWS];
      for (int k = 0; k < TG_ROWS; k++) a[k] = _mm256_setzero_ps();
      for (size_t j = 0; j < d8; j += 8) {
        /* 8 rows × 8 floats = 256 bytes of the group per step. */
        for (int k = 0; k < TG_ROWS / 2; k++)
          _mm_prefetch(pf + 4 * TG_ROWS * j + 64 * k, _MM_HINT_T0);
        __m256 wv = _mm256_loadu_ps(w + j);
        for (int k = 0; k < TG_ROWS; k++)
          a[k] = _mm256_fmadd_ps(_mm256_loadu_ps(xr + k * d + j), wv, a[k]);
      }
      float rf[TG_ROWS];
      for (int k = 0; k < TG_ROWS; k++) {
        const float *xk = xr + k * d;
        float z = hsum_ps(a[k]);
        for (size_t j = d8; j < d; j++) z += xk[j] * w[j];
        double l, r;
        row_loss(loss, (double)z + b, y[i + k], &l, &r);
        ls += l;
        rs += r;
        rf[k] = (float)r;
      }
      __m256 v[TG_ROWS];
      for (int k = 0; k < TG_ROWS; k++) v[k] = _mm256_set1_ps(rf[k]);
      for (size_t j = 0; j < d8; j += 8) {
        __m256 gv = _mm256_loadu_ps(gb + j);
        for (int k = 0; k < TG_ROWS; k++)
          gv = _mm256_fmadd_ps(_mm256_loadu_ps(xr + k * d + j), v[k], gv);
        _mm256_storeu_ps(gb + j, gv);
      }
      for (size_t j = d8; j < d; j++)
        for (int k = 0; k < TG_ROWS; k++) gb[j] += rf[k] * xr[k * d + j];
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

/* AVX-512: rows four at a time, software-pipelined. One pass over the columns computes
   the dot products of group n (streaming from memory) and adds group n-1's gradient update
   (rows still in L1, their residuals known), so the core has independent work while the
   loads of group n wait on memory. Tail columns (d mod 8) go through masked loads. The
   rows 6 KiB ahead are prefetched into L1. These choices, and Zen 4 scheduling
   (`tune=znver4`: the order of instructions, not which ones may be used), measured the
   fastest against the STREAM floor on the development machine. Group n-1's rows are
   added to g in order, so the summation order is the plain row order. Before the first
   group there is no previous one: its update is skipped by a zero residual, adding
   0·x = 0 (for finite x). */
#define TG_ROWS512 4
#define TG_PREFETCH512 6144
#define TG_AVX512 __attribute__((target("avx512f,avx2,fma,tune=znver4")))

TG_AVX512 static void fused_f64_avx512(const double *x, size_t m, size_t d, const double *y,
                                        const double *w, double b, int loss, double *g,
                                        double *loss_sum, double *r_sum) {
  double ls = 0, rs = 0;
  size_t d8 = d & ~(size_t)7;
  __mmask8 tail = (__mmask8)((1u << (d - d8)) - 1);
  size_t groups = m / TG_ROWS512;
  __m512d v[TG_ROWS512];
  for (int k = 0; k < TG_ROWS512; k++) v[k] = _mm512_setzero_pd();
  const double *prev = x;
  for (size_t n = 0; n < groups; n++) {
    const double *xr = x + n * TG_ROWS512 * d;
    const char *pf = (const char *)xr + TG_PREFETCH512;
    __m512d a[TG_ROWS512];
    for (int k = 0; k < TG_ROWS512; k++) a[k] = _mm512_setzero_pd();
    size_t j = 0;
    for (; j < d8; j += 8) {
      /* 4 rows × 8 doubles = 256 bytes of the group per step: prefetch as many. */
      for (int k = 0; k < TG_ROWS512; k++)
        _mm_prefetch(pf + 8 * TG_ROWS512 * j + 64 * k, _MM_HINT_T0);
      __m512d wv = _mm512_loadu_pd(w + j);
      __m512d gv = _mm512_loadu_pd(g + j);
      for (int k = 0; k < TG_ROWS512; k++) {
        a[k] = _mm512_fmadd_pd(_mm512_loadu_pd(xr + k * d + j), wv, a[k]);
        gv = _mm512_fmadd_pd(_mm512_loadu_pd(prev + k * d + j), v[k], gv);
      }
      _mm512_storeu_pd(g + j, gv);
    }
    if (tail) {
      __m512d wv = _mm512_maskz_loadu_pd(tail, w + j);
      __m512d gv = _mm512_maskz_loadu_pd(tail, g + j);
      for (int k = 0; k < TG_ROWS512; k++) {
        a[k] = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(tail, xr + k * d + j), wv, a[k]);
        gv = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(tail, prev + k * d + j), v[k], gv);
      }
      _mm512_mask_storeu_pd(g + j, tail, gv);
    }
    for (int k = 0; k < TG_ROWS512; k++) {
      double l, r;
      row_loss(loss, _mm512_reduce_add_pd(a[k]) + b, y[n * TG_ROWS512 + k], &l, &r);
      ls += l;
      rs += r;
      v[k] = _mm512_set1_pd(r);
    }
    prev = xr;
  }
  if (groups) {
    /* The last group's update. */
    size_t j = 0;
    for (; j < d8; j += 8) {
      __m512d gv = _mm512_loadu_pd(g + j);
      for (int k = 0; k < TG_ROWS512; k++)
        gv = _mm512_fmadd_pd(_mm512_loadu_pd(prev + k * d + j), v[k], gv);
      _mm512_storeu_pd(g + j, gv);
    }
    if (tail) {
      __m512d gv = _mm512_maskz_loadu_pd(tail, g + j);
      for (int k = 0; k < TG_ROWS512; k++)
        gv = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(tail, prev + k * d + j), v[k], gv);
      _mm512_mask_storeu_pd(g + j, tail, gv);
    }
  }
  size_t i = groups * TG_ROWS512;
  double lt = 0, rt = 0;
  if (i < m) fused_f64_generic(x + i * d, m - i, d, y + i, w, b, loss, g, &lt, &rt);
  *loss_sum += ls + lt;
  *r_sum += rs + rt;
}
#endif

/* ---------- gradient by blocks of columns ---------- */

static int usable_isa(int requested);

/* Columns per slice of the column pass: 2048 doubles (16 KiB) of g stay in L1 while four
   rows stream past. */
#define TG_SLICE 65536

/* The double at index j of w, which may have any alignment. */
static inline double load_unaligned(const unsigned char *w, size_t j) {
  double v;
  memcpy(&v, w + 8 * j, sizeof v);
  return v;
}

static void margins_f64_generic(const double *x, size_t m, size_t d, const void *wp,
                                double *z) {
  const unsigned char *w = wp;
  size_t i = 0;
  for (; i + 4 <= m; i += 4) {
    const double *x0 = x + i * d, *x1 = x0 + d, *x2 = x1 + d, *x3 = x2 + d;
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t j = 0; j < d; j++) {
      double wj = load_unaligned(w, j);
      a0 += x0[j] * wj;
      a1 += x1[j] * wj;
      a2 += x2[j] * wj;
      a3 += x3[j] * wj;
    }
    z[i] = a0;
    z[i + 1] = a1;
    z[i + 2] = a2;
    z[i + 3] = a3;
  }
  for (; i < m; i++) {
    const double *xi = x + i * d;
    double a = 0;
    for (size_t j = 0; j < d; j++) a += xi[j] * load_unaligned(w, j);
    z[i] = a;
  }
}

static void column_gradient_f64_generic(const double *x, size_t m, size_t n, size_t ld,
                                        const double *r, double *g) {
  for (size_t c = 0; c < n; c += TG_SLICE) {
    size_t e = c + TG_SLICE < n ? c + TG_SLICE : n;
    for (size_t j = c; j < e; j++) g[j] = 0;
    size_t i = 0;
    for (; i + 4 <= m; i += 4) {
      const double *x0 = x + i * ld, *x1 = x0 + ld, *x2 = x1 + ld, *x3 = x2 + ld;
      double r0 = r[i], r1 = r[i + 1], r2 = r[i + 2], r3 = r[i + 3];
      for (size_t j = c; j < e; j++) g[j] += r0 * x0[j] + r1 * x1[j] + r2 * x2[j] + r3 * x3[j];
    }
    for (; i < m; i++) {
      const double *xi = x + i * ld;
      double ri = r[i];
      for (size_t j = c; j < e; j++) g[j] += ri * xi[j];
    }
  }
}

#if TG_X86
TG_AVX512 static void margins_f64_avx512(const double *x, size_t m, size_t d, const void *wp,
                                         double *z) {
  /* w is read only by unaligned loads (which take a void pointer), so any alignment does. */
  const unsigned char *w = wp;
  size_t d8 = d & ~(size_t)7;
  __mmask8 tail = (__mmask8)((1u << (d - d8)) - 1);
  size_t i = 0;
  for (; i + 4 <= m; i += 4) {
    const double *x0 = x + i * d, *x1 = x0 + d, *x2 = x1 + d, *x3 = x2 + d;
    __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    size_t j = 0;
    for (; j < d8; j += 8) {
      __m512d wv = _mm512_loadu_pd(w + 8 * j);
      a0 = _mm512_fmadd_pd(_mm512_loadu_pd(x0 + j), wv, a0);
      a1 = _mm512_fmadd_pd(_mm512_loadu_pd(x1 + j), wv, a1);
      a2 = _mm512_fmadd_pd(_mm512_loadu_pd(x2 + j), wv, a2);
      a3 = _mm512_fmadd_pd(_mm512_loadu_pd(x3 + j), wv, a3);
    }
    if (tail) {
      __m512d wv = _mm512_maskz_loadu_pd(tail, w + 8 * j);
      a0 = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(tail, x0 + j), wv, a0);
      a1 = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(tail, x1 + j), wv, a1);
      a2 = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(tail, x2 + j), wv, a2);
      a3 = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(tail, x3 + j), wv, a3);
    }
    z[i] = _mm512_reduce_add_pd(a0);
    z[i + 1] = _mm512_reduce_add_pd(a1);
    z[i + 2] = _mm512_reduce_add_pd(a2);
    z[i + 3] = _mm512_reduce_add_pd(a3);
  }
  for (; i < m; i++) {
    const double *xi = x + i * d;
    __m512d a0 = _mm512_setzero_pd(), a1 = a0;
    size_t j = 0;
    for (; j + 16 <= d8; j += 16) {
      a0 = _mm512_fmadd_pd(_mm512_loadu_pd(xi + j), _mm512_loadu_pd(w + 8 * j), a0);
      a1 = _mm512_fmadd_pd(_mm512_loadu_pd(xi + j + 8), _mm512_loadu_pd(w + 8 * (j + 8)), a1);
    }
    for (; j < d8; j += 8)
      a0 = _mm512_fmadd_pd(_mm512_loadu_pd(xi + j), _mm512_loadu_pd(w + 8 * j), a0);
    if (tail)
      a1 = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(tail, xi + j),
                           _mm512_maskz_loadu_pd(tail, w + 8 * j), a1);
    z[i] = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
  }
}

TG_AVX512 static void column_gradient_f64_avx512(const double *x, size_t m, size_t n,
                                                 size_t ld, const double *r, double *g) {
  for (size_t c = 0; c < n; c += TG_SLICE) {
    size_t e = c + TG_SLICE < n ? c + TG_SLICE : n;
    size_t e8 = c + ((e - c) & ~(size_t)7);
    __mmask8 tail = (__mmask8)((1u << (e - e8)) - 1);
    for (size_t j = c; j < e; j++) g[j] = 0;
    size_t i = 0;
    for (; i + 4 <= m; i += 4) {
      const double *x0 = x + i * ld, *x1 = x0 + ld, *x2 = x1 + ld, *x3 = x2 + ld;
      __m512d r0 = _mm512_set1_pd(r[i]), r1 = _mm512_set1_pd(r[i + 1]);
      __m512d r2 = _mm512_set1_pd(r[i + 2]), r3 = _mm512_set1_pd(r[i + 3]);
      size_t j = c;
      for (; j < e8; j += 8) {
        __m512d gv = _mm512_loadu_pd(g + j);
        gv = _mm512_fmadd_pd(_mm512_loadu_pd(x0 + j), r0, gv);
        gv = _mm512_fmadd_pd(_mm512_loadu_pd(x1 + j), r1, gv);
        gv = _mm512_fmadd_pd(_mm512_loadu_pd(x2 + j), r2, gv);
        gv = _mm512_fmadd_pd(_mm512_loadu_pd(x3 + j), r3, gv);
        _mm512_storeu_pd(g + j, gv);
      }
      if (tail) {
        __m512d gv = _mm512_maskz_loadu_pd(tail, g + j);
        gv = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(tail, x0 + j), r0, gv);
        gv = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(tail, x1 + j), r1, gv);
        gv = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(tail, x2 + j), r2, gv);
        gv = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(tail, x3 + j), r3, gv);
        _mm512_mask_storeu_pd(g + j, tail, gv);
      }
    }
    for (; i < m; i++) {
      const double *xi = x + i * ld;
      __m512d ri = _mm512_set1_pd(r[i]);
      size_t j = c;
      for (; j < e8; j += 8)
        _mm512_storeu_pd(g + j, _mm512_fmadd_pd(_mm512_loadu_pd(xi + j), ri, _mm512_loadu_pd(g + j)));
      if (tail)
        _mm512_mask_storeu_pd(g + j, tail,
                              _mm512_fmadd_pd(_mm512_maskz_loadu_pd(tail, xi + j), ri,
                                              _mm512_maskz_loadu_pd(tail, g + j)));
    }
  }
}
#endif

void tg_margins_f64(int isa, const double *x, size_t m, size_t d, const void *w, double *z) {
#if TG_X86
  if (usable_isa(isa) == TG_ISA_AVX512) {
    margins_f64_avx512(x, m, d, w, z);
    return;
  }
#endif
  (void)isa;
  margins_f64_generic(x, m, d, w, z);
}

void tg_column_gradient_f64(int isa, const double *x, size_t m, size_t n, size_t ld,
                            const double *r, double *g) {
#if TG_X86
  if (usable_isa(isa) == TG_ISA_AVX512) {
    column_gradient_f64_avx512(x, m, n, ld, r, g);
    return;
  }
#endif
  (void)isa;
  column_gradient_f64_generic(x, m, n, ld, r, g);
}

int tg_kernels_best_isa(void) {
#if TG_X86
  static int cached = -1;
  if (cached < 0) {
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    cached = avx2 && __builtin_cpu_supports("avx512f") ? TG_ISA_AVX512
             : avx2                                    ? TG_ISA_AVX2
                                                       : TG_ISA_PORTABLE;
  }
  return cached;
#else
  return TG_ISA_PORTABLE;
#endif
}

static int usable_isa(int requested) {
  int best = tg_kernels_best_isa();
  return requested < 0 || requested > best ? best : requested;
}

void tg_fused_f64(int isa, const double *x, size_t m, size_t d, const double *y,
                  const double *w, double b, int loss, double *g, double *loss_sum,
                  double *r_sum) {
#if TG_X86
  switch (usable_isa(isa)) {
    case TG_ISA_AVX512:
      fused_f64_avx512(x, m, d, y, w, b, loss, g, loss_sum, r_sum);
      return;
    case TG_ISA_AVX2:
      fused_f64_avx2(x, m, d, y, w, b, loss, g, loss_sum, r_sum);
      return;
  }
#endif
  (void)isa;
  fused_f64_generic(x, m, d, y, w, b, loss, g, loss_sum, r_sum);
}

void tg_fused_f32(int isa, const float *x, size_t m, size_t d, const double *y,
                  const float *w, double b, int loss, size_t block, float *scratch,
                  double *g, double *loss_sum, double *r_sum) {
#if TG_X86
  if (usable_isa(isa) >= TG_ISA_AVX2) {
    fused_f32_avx2(x, m, d, y, w, b, loss, block, scratch, g, loss_sum, r_sum);
    return;
  }
#endif
  (void)isa;
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
  if (tg_kernels_best_isa() >= TG_ISA_AVX2) return stream_sum_avx2(p, n);
#endif
  return stream_sum_generic(p, n);
}
