/* Bare-metal start-up for QEMU mps2-an386 (Cortex-M4F): vector table, .data/.bss set-up,
 * FPU enable, static constructors, main(), semihosting exit with main's return value. */
#include <stdint.h>

#include "semihost.h"

extern uint32_t _stack_top, _data_load, _data_start, _data_end, _bss_start, _bss_end;
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);
int main(void);

void Reset_Handler(void);
static void Fault_Handler(void) {
  sh_write0("m4sim: hard fault\n");
  sh_exit(3);
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_stack_top), Reset_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler,
    0, Fault_Handler, Fault_Handler};

void Reset_Handler(void) {
  uint32_t *src = &_data_load;
  for (uint32_t *dst = &_data_start; dst < &_data_end;) *dst++ = *src++;
  for (uint32_t *dst = &_bss_start; dst < &_bss_end;) *dst++ = 0;
  /* CPACR: full access to CP10/CP11 (the FPU), as the mbed start-up does. */
  *(volatile uint32_t *)0xE000ED88 |= (0xFu << 20);
  __asm volatile("dsb\n isb");
  for (void (**f)(void) = __init_array_start; f < __init_array_end; ++f) (*f)();
  sh_exit(main());
}

/* newlib / libstdc++ hooks the TFLM code may reference; none is called during a profile. */
void *__dso_handle = 0;
void _exit(int code) { sh_exit(code); }
void abort(void) { sh_write0("m4sim: abort\n"); sh_exit(4); }
