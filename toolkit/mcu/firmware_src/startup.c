/* Start-up for the MPS2 boards QEMU emulates (mps2-an386, -an500, -an505): a 16-entry vector table, .data
 * copied from flash, then newlib's semihosting start-up (`_start` of rdimon's crt0: .bss, stdio, main).
 * SysTick counts its own wraps so the runner can read a 64-bit tick count (`edgekit_ticks`). */
#include <stdint.h>

extern uint32_t __stack_top, __data_load, __data_start, __data_end;
extern void _start(void);
extern void _exit(int);

static volatile uint32_t systick_wraps;

void Reset_Handler(void) {
  /* The FPU is off at reset; the hard-float build uses it (CPACR: full access to CP10 and CP11). */
  *(volatile uint32_t*)0xE000ED88u |= 0xFu << 20;
  __asm__ volatile("dsb\n isb" ::: "memory");
  uint32_t* src = &__data_load;
  for (uint32_t* dst = &__data_start; dst < &__data_end;) *dst++ = *src++;
  _start();
  for (;;) {
  }
}

/* A fault ends the run with exit code 134 (QEMU's semihosting exit) instead of spinning until the timeout. */
void Fault_Handler(void) { _exit(134); }

void SysTick_Handler(void) { systick_wraps++; }

#define SYST_CSR (*(volatile uint32_t*)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t*)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t*)0xE000E018u)
#define SYSTICK_RELOAD 0x00FFFFFFu

void edgekit_ticks_start(void) {
  SYST_RVR = SYSTICK_RELOAD;
  SYST_CVR = 0;
  SYST_CSR = 0x7u; /* enable, interrupt on wrap, processor clock */
}

/* Ticks of the processor clock since edgekit_ticks_start (the counter counts down and wraps at 2^24). */
uint64_t edgekit_ticks(void) {
  uint32_t wraps, value;
  do {
    wraps = systick_wraps;
    value = SYST_CVR;
  } while (wraps != systick_wraps);
  return (uint64_t)wraps * (SYSTICK_RELOAD + 1u) + (SYSTICK_RELOAD - value);
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))&__stack_top, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, SysTick_Handler,
};
