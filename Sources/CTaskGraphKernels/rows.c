#include "taskgraph_kernels.h"

#include <string.h>

/* A double is finite unless its exponent bits are all ones (infinity or NaN). */
#define TG_EXPONENT 0x7ff0000000000000ULL

/* One pass per row: the copy and the finiteness test read each element once, and the test
   is an OR of comparisons that the compiler vectorises beside the copy, so a row costs
   about what memcpy of it costs. Only a row whose test fails is searched for the element. */
int64_t tg_copy_rows_f64(const void *src, size_t cols, size_t rows, int64_t label, size_t first,
                         size_t width, double *numeric, double *labels) {
  const unsigned char *base = (const unsigned char *)src;
  for (size_t r = 0; r < rows; r++) {
    const unsigned char *row = base + r * cols * 8;
    const unsigned char *in = row + first * 8;
    uint64_t bad = 0;
    if (numeric) {
      uint64_t *out = (uint64_t *)(numeric + r * width);
      for (size_t j = 0; j < width; j++) {
        uint64_t v;
        memcpy(&v, in + 8 * j, 8);
        out[j] = v;
        bad |= (v & TG_EXPONENT) == TG_EXPONENT;
      }
    } else {
      for (size_t j = 0; j < width; j++) {
        uint64_t v;
        memcpy(&v, in + 8 * j, 8);
        bad |= (v & TG_EXPONENT) == TG_EXPONENT;
      }
    }
    if (label >= 0) {
      uint64_t v;
      memcpy(&v, row + (size_t)label * 8, 8);
      memcpy(labels + r, &v, 8);
      if ((v & TG_EXPONENT) == TG_EXPONENT) return (int64_t)(r * cols + (size_t)label);
    }
    if (bad) {
      for (size_t j = 0; j < width; j++) {
        uint64_t v;
        memcpy(&v, in + 8 * j, 8);
        if ((v & TG_EXPONENT) == TG_EXPONENT) return (int64_t)(r * cols + first + j);
      }
    }
  }
  return -1;
}
