#define _GNU_SOURCE
#include "taskgraph_kernels.h"

#include <errno.h>
#include <fcntl.h>

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

int tg_thread_nice(void) {
#if defined(__linux__)
  errno = 0;
  int nice = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
  return errno == 0 ? nice : 0;
#else
  return 0;
#endif
}

int tg_create_direct(const char *path) {
#if defined(O_DIRECT)
  return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0644);
#else
  (void)path;
  errno = EINVAL;
  return -1;
#endif
}
