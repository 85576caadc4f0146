#include "semihost.h"

#include <string.h>

static int sh_call(int op, void *arg) {
  register int r0 __asm__("r0") = op;
  register void *r1 __asm__("r1") = arg;
  __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void sh_write0(const char *s) { sh_call(0x04, (void *)s); }

int sh_cmdline(char *buf, size_t size) {
  uint32_t block[2] = {(uint32_t)buf, (uint32_t)size};
  return sh_call(0x15, block);
}

long sh_read_file(const char *path, void *buf, size_t size) {
  uint32_t open_args[3] = {(uint32_t)path, 1 /* "rb" */, (uint32_t)strlen(path)};
  int fd = sh_call(0x01, open_args);
  if (fd < 0) return -1;
  uint32_t flen_args[1] = {(uint32_t)fd};
  long len = sh_call(0x0C, flen_args);
  long result = -1;
  if (len >= 0 && (size_t)len <= size) {
    uint32_t read_args[3] = {(uint32_t)fd, (uint32_t)buf, (uint32_t)len};
    if (sh_call(0x06, read_args) == 0) result = len; /* returns the bytes NOT read */
  }
  uint32_t close_args[1] = {(uint32_t)fd};
  sh_call(0x02, close_args);
  return result;
}

void sh_exit(int code) {
  /* SYS_EXIT_EXTENDED: ADP_Stopped_ApplicationExit with the exit status. */
  uint32_t block[2] = {0x20026, (uint32_t)code};
  for (;;) sh_call(0x20, block);
}
