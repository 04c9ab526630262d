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

/* The AVX2 kernels keep X streaming from memory without pauses. Each row group's dot
   products (read from memory) run in the same loop as the previous group's gradient update
   (rows still in L1, their residuals known), so reads of new rows go on while the update
   runs instead of stopping for it. Rows of TG_WIDE_ROW doubles or more go one at a time,
   so X is read in plain address order; narrower rows go TG_NARROW_GROUP at a time, which
   shares each load of w and each load and store of g between rows and spreads the per-row
   work (reduction, loss) over more bytes. Wider rows read as interleaved streams ran
   slower even though they need fewer loads per byte: at 100 columns, groups of 2 or 4
   rows measured 1.27 to 1.36x the read floor against 1.01 to 1.07x for single rows, and
   at 500 columns 1.3 to 1.45x against 1.1 to 1.2x.

   Neither the hardware prefetchers nor out-of-order execution keep enough reads in flight
   for one core here: without software prefetch, single rows ran 1.5x the read floor and
   interleaved rows up to 3x. So a cursor walks X TG_PREFETCH_AVX2 bytes ahead of the
   reads, one prefetch per 64-byte line in address order (every other line measured 1.5 to
   2x). The hint is T2, which on AMD Zen fills L2 only: T0 and NTA, which fill L1 too,
   measured 1.6 to 2.9x the floor at the same distance (their fills hold the L1 miss
   buffers the demand loads need). On an AMD EPYC (Zen 4), 4 KiB ahead was too short
   (1.5x), and 8 to 32 KiB all measured within the noise (1.07 to 1.2x, 1 or 2 threads,
   20 to 500 columns), 16 KiB as good as any.

   The figures in these comments are medians over 1,000,000 rows on that machine (2 cores,
   shared), each variant timed alternately with the STREAM read in one process; from run
   to run they move by about 0.05x. */
#define TG_PREFETCH_AVX2 16384
#define TG_WIDE_ROW 48
#define TG_NARROW_GROUP 4

/* Advances the prefetch cursor to `end` (TG_PREFETCH_AVX2 bytes past what has been read),
   one line at a time: steps that read less than a line per row, and tail columns, would
   otherwise leave the cursor behind and lines unfetched. */
__attribute__((target("avx2,fma"))) static inline const char *prefetch_to(const char *p,
                                                                          const char *end) {
  for (; p < end; p += 64) _mm_prefetch(p, _MM_HINT_T2);
  return p;
}

/* The double kernel for groups of R rows (R is 1 or TG_NARROW_GROUP; inlined with R
   constant, so the per-row arrays live in registers). Single rows keep four accumulators
   so the dot product is not one long FMA chain; in groups of four, the rows' chains are
   already independent, and one accumulator per row leaves registers for w, g and the
   residuals. Summation order: each margin is the sum of its accumulators' lanes in a
   fixed order, and g gets the rows in row order, so the result is the same on every run.
   Before the first group there is no previous one: its update is skipped by zero
   residuals (0·x = 0 for finite x). */
__attribute__((target("avx2,fma"), always_inline)) static inline void fused_f64_avx2_rows(
    const double *x, size_t m, size_t d, const double *y, const double *w, double b, int loss,
    double *g, double *loss_sum, double *r_sum, const int R) {
  double ls = 0, rs = 0;
  size_t d4 = d & ~(size_t)3, d8 = d & ~(size_t)7;
  size_t groups = m / R;
  __m256d v[TG_NARROW_GROUP];
  double r[TG_NARROW_GROUP] = {0};
  for (int k = 0; k < R; k++) v[k] = _mm256_setzero_pd();
  const double *prev = x;
  const char *pf = (const char *)x + TG_PREFETCH_AVX2;
  for (size_t n = 0; n < groups; n++) {
    const double *xr = x + n * R * d;
    __m256d a[TG_NARROW_GROUP], c[TG_NARROW_GROUP], e[2];
    for (int k = 0; k < R; k++) a[k] = c[k] = _mm256_setzero_pd();
    e[0] = e[1] = _mm256_setzero_pd();
    size_t j = 0;
    /* A single row goes 128 bytes per step with four accumulators: half as many FMAs per
       chain (a long row's margin, which the next row's update waits for, is ready sooner)
       and half the loop overhead. This measured 1.06 against 1.11x the floor at 100
       columns, 1.11 against 1.17x at 500. */
    for (; R == 1 && j + 16 <= d8; j += 16) {
      _mm_prefetch(pf, _MM_HINT_T2);
      _mm_prefetch(pf + 64, _MM_HINT_T2);
      pf += 128;
      __m256d gv[4];
      for (int q = 0; q < 4; q++) gv[q] = _mm256_loadu_pd(g + j + 4 * q);
      a[0] = _mm256_fmadd_pd(_mm256_loadu_pd(xr + j), _mm256_loadu_pd(w + j), a[0]);
      c[0] = _mm256_fmadd_pd(_mm256_loadu_pd(xr + j + 4), _mm256_loadu_pd(w + j + 4), c[0]);
      e[0] = _mm256_fmadd_pd(_mm256_loadu_pd(xr + j + 8), _mm256_loadu_pd(w + j + 8), e[0]);
      e[1] = _mm256_fmadd_pd(_mm256_loadu_pd(xr + j + 12), _mm256_loadu_pd(w + j + 12), e[1]);
      for (int q = 0; q < 4; q++)
        _mm256_storeu_pd(g + j + 4 * q,
                         _mm256_fmadd_pd(_mm256_loadu_pd(prev + j + 4 * q), v[0], gv[q]));
    }
    for (; j < d8; j += 8) {
      /* R lines of the group are read per step: prefetch as many. */
      for (int k = 0; k < R; k++) _mm_prefetch(pf + 64 * k, _MM_HINT_T2);
      pf += 64 * R;
      __m256d w0 = _mm256_loadu_pd(w + j), w1 = _mm256_loadu_pd(w + j + 4);
      __m256d g0 = _mm256_loadu_pd(g + j), g1 = _mm256_loadu_pd(g + j + 4);
      for (int k = 0; k < R; k++) {
        a[k] = _mm256_fmadd_pd(_mm256_loadu_pd(xr + k * d + j), w0, a[k]);
        g0 = _mm256_fmadd_pd(_mm256_loadu_pd(prev + k * d + j), v[k], g0);
      }
      for (int k = 0; k < R; k++) {
        __m256d xk = _mm256_loadu_pd(xr + k * d + j + 4);
        if (R == 1)
          c[k] = _mm256_fmadd_pd(xk, w1, c[k]);
        else
          a[k] = _mm256_fmadd_pd(xk, w1, a[k]);
        g1 = _mm256_fmadd_pd(_mm256_loadu_pd(prev + k * d + j + 4), v[k], g1);
      }
      _mm256_storeu_pd(g + j, g0);
      _mm256_storeu_pd(g + j + 4, g1);
    }
    if (j < d4) {
      __m256d w0 = _mm256_loadu_pd(w + j);
      __m256d g0 = _mm256_loadu_pd(g + j);
      for (int k = 0; k < R; k++) {
        a[k] = _mm256_fmadd_pd(_mm256_loadu_pd(xr + k * d + j), w0, a[k]);
        g0 = _mm256_fmadd_pd(_mm256_loadu_pd(prev + k * d + j), v[k], g0);
      }
      _mm256_storeu_pd(g + j, g0);
    }
    for (j = d4; j < d; j++)
      for (int k = 0; k < R; k++) g[j] += r[k] * prev[k * d + j];
    /* One row at a time even in groups: reducing the four margins and computing the
       squared losses in vectors ran 30% faster with X in cache but slower from memory
       (1.33 against 1.2x the floor at 20 columns, 1.38 against 1.3x at 36). */
    for (int k = 0; k < R; k++) {
      const double *xk = xr + k * d;
      double z = hsum_pd(R == 1 ? _mm256_add_pd(_mm256_add_pd(a[k], c[k]),
                                                _mm256_add_pd(e[0], e[1]))
                                : a[k]);
      for (j = d4; j < d; j++) z += xk[j] * w[j];
      double l;
      row_loss(loss, z + b, y[n * R + k], &l, &r[k]);
      ls += l;
      rs += r[k];
      v[k] = _mm256_set1_pd(r[k]);
    }
    prev = xr;
    pf = prefetch_to(pf, (const char *)(xr + R * d) + TG_PREFETCH_AVX2);
  }
  if (groups) {
    /* The last group's update. */
    size_t j = 0;
    for (; j < d4; j += 4) {
      __m256d g0 = _mm256_loadu_pd(g + j);
      for (int k = 0; k < R; k++)
        g0 = _mm256_fmadd_pd(_mm256_loadu_pd(prev + k * d + j), v[k], g0);
      _mm256_storeu_pd(g + j, g0);
    }
    for (; j < d; j++)
      for (int k = 0; k < R; k++) g[j] += r[k] * prev[k * d + j];
  }
  size_t i = groups * R;
  double lt = 0, rt = 0;
  if (i < m) fused_f64_generic(x + i * d, m - i, d, y + i, w, b, loss, g, &lt, &rt);
  *loss_sum += ls + lt;
  *r_sum += rs + rt;
}

__attribute__((target("avx2,fma"))) static void fused_f64_avx2(
    const double *x, size_t m, size_t d, const double *y, const double *w, double b, int loss,
    double *g, double *loss_sum, double *r_sum) {
  if (d >= TG_WIDE_ROW)
    fused_f64_avx2_rows(x, m, d, y, w, b, loss, g, loss_sum, r_sum, 1);
  else
    fused_f64_avx2_rows(x, m, d, y, w, b, loss, g, loss_sum, r_sum, TG_NARROW_GROUP);
}

/* The float kernel: the double kernel's scheme (see above) with 8 floats per vector, rows
   of 2 × TG_WIDE_ROW floats or more one at a time, and the pipeline restarted for each
   block of `block` rows, whose gradient is summed in float into gb and then added into
   the double g. */
__attribute__((target("avx2,fma"), always_inline)) static inline void fused_f32_avx2_rows(
    const float *x, size_t m, size_t d, const double *y, const float *w, double b, int loss,
    size_t block, float *gb, double *g, double *loss_sum, double *r_sum, const int R) {
  double ls = 0, rs = 0;
  size_t d8 = d & ~(size_t)7, d16 = d & ~(size_t)15;
  const char *pf = (const char *)x + TG_PREFETCH_AVX2;
  for (size_t start = 0; start < m; start += block) {
    size_t end = start + block < m ? start + block : m;
    for (size_t j = 0; j < d; j++) gb[j] = 0;
    size_t groups = (end - start) / R;
    __m256 v[TG_NARROW_GROUP];
    float r[TG_NARROW_GROUP] = {0};
    for (int k = 0; k < R; k++) v[k] = _mm256_setzero_ps();
    const float *prev = x + start * d;
    for (size_t n = 0; n < groups; n++) {
      size_t i = start + n * R;
      const float *xr = x + i * d;
      __m256 a[TG_NARROW_GROUP], c[TG_NARROW_GROUP], e[2];
      for (int k = 0; k < R; k++) a[k] = c[k] = _mm256_setzero_ps();
      e[0] = e[1] = _mm256_setzero_ps();
      size_t j = 0;
      for (; R == 1 && j + 32 <= d16; j += 32) {
        _mm_prefetch(pf, _MM_HINT_T2);
        _mm_prefetch(pf + 64, _MM_HINT_T2);
        pf += 128;
        __m256 gv[4];
        for (int q = 0; q < 4; q++) gv[q] = _mm256_loadu_ps(gb + j + 8 * q);
        a[0] = _mm256_fmadd_ps(_mm256_loadu_ps(xr + j), _mm256_loadu_ps(w + j), a[0]);
        c[0] = _mm256_fmadd_ps(_mm256_loadu_ps(xr + j + 8), _mm256_loadu_ps(w + j + 8), c[0]);
        e[0] = _mm256_fmadd_ps(_mm256_loadu_ps(xr + j + 16), _mm256_loadu_ps(w + j + 16), e[0]);
        e[1] = _mm256_fmadd_ps(_mm256_loadu_ps(xr + j + 24), _mm256_loadu_ps(w + j + 24), e[1]);
        for (int q = 0; q < 4; q++)
          _mm256_storeu_ps(gb + j + 8 * q,
                           _mm256_fmadd_ps(_mm256_loadu_ps(prev + j + 8 * q), v[0], gv[q]));
      }
      for (; j < d16; j += 16) {
        for (int k = 0; k < R; k++) _mm_prefetch(pf + 64 * k, _MM_HINT_T2);
        pf += 64 * R;
        __m256 w0 = _mm256_loadu_ps(w + j), w1 = _mm256_loadu_ps(w + j + 8);
        __m256 g0 = _mm256_loadu_ps(gb + j), g1 = _mm256_loadu_ps(gb + j + 8);
        for (int k = 0; k < R; k++) {
          a[k] = _mm256_fmadd_ps(_mm256_loadu_ps(xr + k * d + j), w0, a[k]);
          g0 = _mm256_fmadd_ps(_mm256_loadu_ps(prev + k * d + j), v[k], g0);
        }
        for (int k = 0; k < R; k++) {
          __m256 xk = _mm256_loadu_ps(xr + k * d + j + 8);
          if (R == 1)
            c[k] = _mm256_fmadd_ps(xk, w1, c[k]);
          else
            a[k] = _mm256_fmadd_ps(xk, w1, a[k]);
          g1 = _mm256_fmadd_ps(_mm256_loadu_ps(prev + k * d + j + 8), v[k], g1);
        }
        _mm256_storeu_ps(gb + j, g0);
        _mm256_storeu_ps(gb + j + 8, g1);
      }
      if (j < d8) {
        __m256 w0 = _mm256_loadu_ps(w + j);
        __m256 g0 = _mm256_loadu_ps(gb + j);
        for (int k = 0; k < R; k++) {
          a[k] = _mm256_fmadd_ps(_mm256_loadu_ps(xr + k * d + j), w0, a[k]);
          g0 = _mm256_fmadd_ps(_mm256_loadu_ps(prev + k * d + j), v[k], g0);
        }
        _mm256_storeu_ps(gb + j, g0);
        j += 8;
      }
      /* Four more columns in 128-bit halves (upper lanes zero, adding 0 to the margins):
         one step instead of four scalar ones, which left rows of 20 at 1.84 against 1.45x
         the floor. */
      if (j + 4 <= d) {
        __m256 w0 = _mm256_zextps128_ps256(_mm_loadu_ps(w + j));
        __m128 g0 = _mm_loadu_ps(gb + j);
        for (int k = 0; k < R; k++) {
          __m256 xk = _mm256_zextps128_ps256(_mm_loadu_ps(xr + k * d + j));
          a[k] = _mm256_fmadd_ps(xk, w0, a[k]);
          g0 = _mm_fmadd_ps(_mm_loadu_ps(prev + k * d + j), _mm256_castps256_ps128(v[k]), g0);
        }
        _mm_storeu_ps(gb + j, g0);
        j += 4;
      }
      size_t jt = j;
      for (; j < d; j++)
        for (int k = 0; k < R; k++) gb[j] += r[k] * prev[k * d + j];
      for (int k = 0; k < R; k++) {
        const float *xk = xr + k * d;
        float z = hsum_ps(R == 1 ? _mm256_add_ps(_mm256_add_ps(a[k], c[k]),
                                                 _mm256_add_ps(e[0], e[1]))
                                 : a[k]);
        for (j = jt; j < d; j++) z += xk[j] * w[j];
        double l, rd;
        row_loss(loss, (double)z + b, y[i + k], &l, &rd);
        ls += l;
        rs += rd;
        r[k] = (float)rd;
        v[k] = _mm256_set1_ps(r[k]);
      }
      prev = xr;
      pf = prefetch_to(pf, (const char *)(xr + R * d) + TG_PREFETCH_AVX2);
    }
    if (groups) {
      /* The block's last group's update. */
      size_t j = 0;
      for (; j < d8; j += 8) {
        __m256 g0 = _mm256_loadu_ps(gb + j);
        for (int k = 0; k < R; k++)
          g0 = _mm256_fmadd_ps(_mm256_loadu_ps(prev + k * d + j), v[k], g0);
        _mm256_storeu_ps(gb + j, g0);
      }
      for (; j < d; j++)
        for (int k = 0; k < R; k++) gb[j] += r[k] * prev[k * d + j];
    }
    for (size_t i = start + groups * R; i < end; i++) {
      const float *xi = x + i * d;
      float z = 0;
      for (size_t j = 0; j < d; j++) z += xi[j] * w[j];
      double l, rd;
      row_loss(loss, (double)z + b, y[i], &l, &rd);
      ls += l;
      rs += rd;
      for (size_t j = 0; j < d; j++) gb[j] += (float)rd * xi[j];
    }
    for (size_t j = 0; j < d; j++) g[j] += gb[j];
  }
  *loss_sum += ls;
  *r_sum += rs;
}

__attribute__((target("avx2,fma"))) static void fused_f32_avx2(
    const float *x, size_t m, size_t d, const double *y, const float *w, double b, int loss,
    size_t block, float *gb, double *g, double *loss_sum, double *r_sum) {
  if (d >= 2 * TG_WIDE_ROW)
    fused_f32_avx2_rows(x, m, d, y, w, b, loss, block, gb, g, loss_sum, r_sum, 1);
  else
    fused_f32_avx2_rows(x, m, d, y, w, b, loss, block, gb, g, loss_sum, r_sum,
                        TG_NARROW_GROUP);
}

/* AVX-512: rows four at a time, software-pipelined. One pass over the columns computes
   the dot products of group n (streaming from memory) and adds group n-1's gradient update
   (rows still in L1, their residuals known), so the core has independent work while the
   loads of group n wait on memory. Tail columns (d mod 8) go through masked loads. The
   rows 8 KiB ahead are prefetched into L2 (T2: fills into L1 hold the miss buffers the
   demand loads need; 1.49 against 1.89x the floor at 96 columns with T0 on AMD Zen 4).
   `tune=znver4` sets the order of instructions, not which ones may be used. Group n-1's
   rows are added to g in order, so the summation order is the plain row order. Before the
   first group there is no previous one: its update is skipped by a zero residual, adding
   0·x = 0 (for finite x). On that processor the AVX2 kernel above is still faster at every
   width, so `FusedGradient.InstructionSet.preferred` sends doubles there. */
#define TG_ROWS512 4
#define TG_PREFETCH512 8192
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
        _mm_prefetch(pf + 8 * TG_ROWS512 * j + 64 * k, _MM_HINT_T2);
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
