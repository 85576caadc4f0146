/* ARM semihosting (QEMU -semihosting-config enable=on,target=native). */
#ifndef M4SIM_SEMIHOST_H_
#define M4SIM_SEMIHOST_H_
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
void sh_write0(const char *s);
/* The command line QEMU passes with -semihosting-config arg=...; 0 on success. */
int sh_cmdline(char *buf, size_t size);
/* Reads the whole file into buf (binary); returns its length or -1. */
long sh_read_file(const char *path, void *buf, size_t size);
void sh_exit(int code) __attribute__((noreturn));
#ifdef __cplusplus
}
#endif
#endif
