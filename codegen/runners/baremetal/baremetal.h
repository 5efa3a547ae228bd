/* Helpers for firmware run under QEMU (mps2-an386) by codegen/runners/qemu.py. */
#ifndef CODEGEN_BAREMETAL_H
#define CODEGEN_BAREMETAL_H

#ifdef __cplusplus
extern "C" {
#endif

/* Region markers for instruction counting: the insn_count plugin counts the guest instructions executed between
 * a call to insn_region_begin() and the following call to insn_region_end() (callees included) and sums them over
 * all such regions. Outside of instruction-counting runs they cost a call and a return. */
void insn_region_begin(void);
void insn_region_end(void);

/* Exit code the fault handler uses (via semihosting SYS_EXIT_EXTENDED) after printing "*** FAULT ..." */
#define BAREMETAL_FAULT_EXIT_CODE 0xFA

/* Ends the emulation at once with `code` as QEMU's exit status, without flushing stdio (use exit() normally). */
void baremetal_exit(int code) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif
