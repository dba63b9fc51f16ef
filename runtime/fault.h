/*
 * fault.h - diagnose host accesses to device memory.
 *
 * Concepts
 * --------
 * On a real Ascend system a device pointer names HBM on the card; the host
 * CPU cannot dereference it, and an application that tries gets a crash
 * with no hint of what went wrong.  The emulator keeps that contract: the
 * runtime reserves a device virtual-address window (PROT_NONE, so every
 * host load or store into it faults) and hands out device pointers from
 * it.  This module turns the resulting SIGSEGV into a one-glance
 * diagnosis -- read or write, how many bytes, which device address, which
 * allocation on which device, and the faulting instruction -- and then
 * lets the process die by SIGSEGV exactly as it would have without us, so
 * debuggers, core dumps and parents that check WTERMSIG see the usual
 * thing.  Faults outside the window are not ours: they are passed to
 * whatever handler was installed before (AddressSanitizer's, a JVM's, the
 * default action) as if we were not there.
 *
 * Signal safety: the handler calls only async-signal-safe functions
 * (write, sigaction, pthread_sigmask, raise) plus capstone's
 * cs_disasm_iter on a handle and cs_insn prepared by rt_fault_install, which
 * neither allocate nor lock.  The RtFaultLookup callback runs inside the
 * handler and must itself be async-signal-safe (no malloc, no mutexes: read
 * a lock-free snapshot).
 *
 * Thread safety: rt_fault_install and rt_fault_uninstall serialise on an
 * internal mutex and may be called from any thread, but not from a signal
 * handler.  Faults may happen on any thread; if two threads fault in the
 * window at once, one gets the full decoded report and the other a report
 * without instruction details (there is one decoder), and the process
 * dies either way.
 *
 * Flags: the handler is installed with SA_SIGINFO | SA_ONSTACK and without
 * SA_NODEFER.  SA_ONSTACK because a thread that set up an alternate stack
 * (ASan does, to report stack overflows) must keep being able to handle a
 * SEGV caused by stack exhaustion; a thread without one simply runs the
 * handler on its own stack.  No SA_NODEFER so that a fault inside the
 * handler itself makes the kernel kill the process by SIGSEGV instead of
 * recursing.  When chaining, the previous handler's own sa_mask,
 * SA_NODEFER and SA_RESETHAND are emulated so it runs under the conditions
 * it asked for.
 *
 * Sanitizers: under AddressSanitizer our handler sits in front of ASan's
 * (installed before main) and passes it every fault outside the window,
 * so ASan's own SEGV reports are unchanged.  ASAN_OPTIONS=
 * allow_user_segv_handler=0 makes ASan silently refuse our sigaction, and
 * then ASan reports window faults itself.  ASan on x86-64 also owns
 * [0x02008fff7000, 0x10007fff7fff] as shadow memory, which overlaps the
 * first ~2 GiB of a window starting at 16 TiB: a reservation of the window
 * must start at or above 0x10007fff8000 under ASan.
 */
#ifndef NPU_EMU_RUNTIME_FAULT_H
#define NPU_EMU_RUNTIME_FAULT_H

#include <stdbool.h>
#include <stdint.h>

/* One device allocation, as the runtime's allocator knows it. */
typedef struct {
    int32_t device;
    uint64_t base;
    uint64_t size;
} RtFaultAlloc;

/* Find the allocation containing addr; true and *out filled if there is
 * one.  Called from the signal handler: must be async-signal-safe. */
typedef bool (*RtFaultLookup)(uint64_t addr, RtFaultAlloc *out);

/* Report host faults in [window_lo, window_hi) and chain all others to
 * the handler that was installed before; calling it again only updates the
 * window and lookup (lookup may be NULL: every fault reads "no
 * allocation"). */
void rt_fault_install(uint64_t window_lo, uint64_t window_hi,
                      RtFaultLookup lookup);

/* Stop reporting; restores the previous handlers if ours is still the one
 * installed, otherwise stays registered but passes every fault through so
 * a handler that chains to ours keeps working. */
void rt_fault_uninstall(void);

#endif /* NPU_EMU_RUNTIME_FAULT_H */
