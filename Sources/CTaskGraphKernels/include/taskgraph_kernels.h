#ifndef TASKGRAPH_KERNELS_H
#define TASKGRAPH_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Loss selector shared with Swift's RowLoss: 0 squared, 1 logistic.
enum { TG_LOSS_SQUARED = 0, TG_LOSS_LOGISTIC = 1 };

/// Instruction sets of the kernels, in increasing order. A kernel given a set the processor
/// lacks (or -1) uses the best one it has.
enum { TG_ISA_PORTABLE = 0, TG_ISA_AVX2 = 1, TG_ISA_AVX512 = 2 };

/// Fused loss/gradient pass over `m` contiguous rows of a row-major matrix with `d`
/// columns: for each row z = x·w + b, (loss, r) = f(z, y), g += r·x. Rows are processed
/// a few at a time so each row is read from memory once and reused from L1 for the
/// update. Adds Σ loss into *loss_sum and Σ r into *r_sum; accumulates into g (length d).
/// `isa` picks the instruction set (see TG_ISA_*); the summation order, and so the last
/// bits of the result, depend on it.
void tg_fused_f64(int isa, const double *x, size_t m, size_t d, const double *y, const double *w,
                  double b, int loss, double *g, double *loss_sum, double *r_sum);

/// The single-precision variant: x and w in float, margins and the per-row loss in double,
/// gradient contributions summed in float within one block of `block` rows and added into
/// the double accumulator g after each block.
void tg_fused_f32(int isa, const float *x, size_t m, size_t d, const double *y, const float *w,
                  double b, int loss, size_t block, float *scratch, double *g,
                  double *loss_sum, double *r_sum);

/// The two passes of a gradient computed by blocks of columns. `tg_margins_f64`: z[i] =
/// x_i · w for `m` rows of `d` columns (row stride `d`), four rows at a time so each load of
/// w serves four rows. `tg_column_gradient_f64`: g[j] = Σ_i r[i] x[i][j] for the `n`
/// columns starting at x (row stride `ld`), overwriting g; columns are taken in slices that
/// stay in cache while the rows stream past, so x is read once. The summation order
/// depends on `isa` (see TG_ISA_*). `w` may have any alignment (it may be a received
/// message's bytes): it is read with unaligned loads.
void tg_margins_f64(int isa, const double *x, size_t m, size_t d, const void *w, double *z);
void tg_column_gradient_f64(int isa, const double *x, size_t m, size_t n, size_t ld,
                            const double *r, double *g);

/// Reads `count` bytes (a multiple of 8) as doubles with independent vector accumulators
/// and returns their sum: a STREAM-style read whose time is the memory-bandwidth floor.
double tg_stream_sum(const void *bytes, size_t count);

/// Continues the CRC-32C (Castagnoli) `crc` of earlier bytes over `count` more bytes (start
/// with 0). With `hardware` nonzero, uses the SSE4.2 crc32 instruction when the processor
/// has it (about 10 GB/s here, against 2.3 GB/s for the portable tables); the value is
/// the same either way.
uint32_t tg_crc32c(uint32_t crc, const void *bytes, size_t count, int hardware);

/// Sets the calling thread's nice value (Linux: threads are scheduled on their own; raising
/// the value needs no privilege). Returns 0, or -1 where unsupported or refused.
int tg_set_thread_nice(int nice);

/// The calling thread's nice value (0 where threads have none of their own).
int tg_thread_nice(void);

/// Creates (or truncates) `path` for writing with O_DIRECT, mode 0644: writes go from the
/// caller's buffer to the device without passing through the page cache, so they must be
/// aligned (buffer, size and offset multiples of the block size; 4096 serves). Returns the
/// descriptor, or -1 with errno set (EINVAL where the filesystem, e.g. tmpfs, refuses it).
int tg_create_direct(const char *path);

/// Copies `rows` rows of a row-major array of little-endian doubles, `cols` per row, at `src`
/// (any alignment): element `label` of each row to `labels[r]` (when `label` ≥ 0) and the
/// `width` elements from `first` on to `numeric[r * width …]`. Every element copied is
/// checked to be finite as it passes; with `numeric` NULL the features are only checked.
/// Returns the index in `src` of the first element that is not finite (the rows before its
/// row are copied whole), or -1.
int64_t tg_copy_rows_f64(const void *src, size_t cols, size_t rows, int64_t label, size_t first,
                         size_t width, double *numeric, double *labels);

/// The best instruction set of this processor that the kernels use (a TG_ISA_* value).
int tg_kernels_best_isa(void);

#ifdef __cplusplus
}
#endif

#endif
