#ifndef TASKGRAPH_COPENBLAS_SHIM_H
#define TASKGRAPH_COPENBLAS_SHIM_H
#include <cblas.h>
#include <lapacke.h>
#endif
