#ifndef TASKGRAPH_CZLIB_SHIM_H
#define TASKGRAPH_CZLIB_SHIM_H
#include <zlib.h>
#endif
