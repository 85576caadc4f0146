/* Instruction counter for QEMU with -icount shift=0 (1 instruction = 1 ns of virtual time).
 *
 * The CMSDK APB timer 0 of mps2-an386 (0x40000000) counts down at the 25 MHz PCLK of QEMU's
 * virtual clock, so one tick = 40 ns = 40 instructions; m4sim_instructions() converts. The
 * runner verifies the factor at start-up with a loop of known length (CALIBRATION line). */
#ifndef M4SIM_TIMER_H_
#define M4SIM_TIMER_H_
#include <stdint.h>

#define M4SIM_TIMER0_BASE 0x40000000u
#define M4SIM_NS_PER_TICK 40u /* 25 MHz */

static inline void m4sim_timer_start(void) {
  volatile uint32_t *t = (volatile uint32_t *)M4SIM_TIMER0_BASE;
  t[0] = 0;           /* CTRL: stop */
  t[2] = 0xFFFFFFFFu; /* RELOAD */
  t[1] = 0xFFFFFFFFu; /* VALUE */
  t[0] = 1;           /* CTRL: enable, no interrupt */
}

/* Ticks since m4sim_timer_start (the timer counts down). */
static inline uint32_t m4sim_ticks(void) {
  return 0xFFFFFFFFu - ((volatile uint32_t *)M4SIM_TIMER0_BASE)[1];
}

/* Instructions (= ns of virtual time under -icount shift=0) for a tick difference. */
static inline uint64_t m4sim_instructions(uint32_t ticks) {
  return (uint64_t)ticks * M4SIM_NS_PER_TICK;
}
#endif
