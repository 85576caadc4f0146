/* Tiny test harness shared by the host unit tests of firmware/lib: CHECK() counts, prints the
 * failures, and the program ends with "N passed, M failed" (exit status 1 on any failure). */
#ifndef FW_TEST_H_
#define FW_TEST_H_

#include <stdio.h>

static int fw_passes = 0, fw_failures = 0;

#define CHECK(cond)                                          \
  do {                                                       \
    if (cond) {                                              \
      ++fw_passes;                                           \
    } else {                                                 \
      ++fw_failures;                                         \
      printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                        \
  } while (0)

#define CHECK_EQ(a, b)                                                                         \
  do {                                                                                         \
    const long long fw_a = (long long)(a), fw_b = (long long)(b);                              \
    if (fw_a == fw_b) {                                                                        \
      ++fw_passes;                                                                             \
    } else {                                                                                   \
      ++fw_failures;                                                                           \
      printf("FAIL %s:%d: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, #b, fw_a, fw_b); \
    }                                                                                          \
  } while (0)

static int fw_report(void) {
  printf("%d passed, %d failed\n", fw_passes, fw_failures);
  return fw_failures ? 1 : 0;
}

/* xorshift32: deterministic pseudo-random numbers for the tests */
static unsigned int fw_rng_state = 2463534242u;
static unsigned int fw_rand(void) {
  unsigned int x = fw_rng_state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  fw_rng_state = x;
  return x;
}

#endif /* FW_TEST_H_ */
