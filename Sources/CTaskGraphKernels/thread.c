#define _GNU_SOURCE
#include "taskgraph_kernels.h"

#if defined(__linux__)
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

int tg_set_thread_nice(int nice) {
#if defined(__linux__)
  /* On Linux a thread is a task of its own, so this changes the calling thread only. */
  return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
#else
  (void)nice;
  return -1;
#endif
}
