/*
 * fault.c - SIGSEGV/SIGBUS handler that explains host accesses to device
 * memory and passes every other fault to the previous handler.
 *
 * Everything reachable from rt_fault_handler must be async-signal-safe:
 * no stdio, no malloc, no locks that a faulting thread could already hold.
 */
#define _GNU_SOURCE /* REG_RIP/REG_ERR/REG_TRAPNO, sigorset */
#include "fault.h"

#include <capstone/capstone.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__x86_64__)
#define RT_FAULT_CS_ARCH CS_ARCH_X86
#define RT_FAULT_CS_MODE CS_MODE_64
#define RT_FAULT_MAX_INSN 15u
#elif defined(__aarch64__)
#define RT_FAULT_CS_ARCH CS_ARCH_ARM64
#define RT_FAULT_CS_MODE CS_MODE_ARM
#define RT_FAULT_MAX_INSN 4u
#endif

enum { RT_FAULT_NSIG = 2 };
static const int k_signals[RT_FAULT_NSIG] = { SIGSEGV, SIGBUS };

/* Serialises install/uninstall; never taken by the handler. */
static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;

/* g_prev[i] is written before our handler is registered for k_signals[i]
 * and not touched while it is, so the handler can read it without a lock. */
static struct sigaction g_prev[RT_FAULT_NSIG];
static bool g_registered[RT_FAULT_NSIG];

/* The handler reads these without a lock; g_active is cleared while the
 * others change so it never reports against a half-updated window. */
static atomic_bool g_active;
static _Atomic uint64_t g_lo;
static _Atomic uint64_t g_hi;
static _Atomic(RtFaultLookup) g_lookup;

/* One decoder shared by all threads: capstone handles are not safe for
 * concurrent use, so the flag hands it to one faulting thread at a time. */
static atomic_flag g_decoder_busy = ATOMIC_FLAG_INIT;
#ifdef RT_FAULT_CS_ARCH
static csh g_cs;
static cs_insn *g_insn;
#endif
static uint64_t g_page_size = 4096;

/* ------------------------------------------------------------------ */
/* Async-signal-safe message building.                                 */

typedef struct {
    char buf[768];
    size_t len;
} Msg;

static void msg_str(Msg *m, const char *s)
{
    while (*s != '\0' && m->len < sizeof m->buf)
        m->buf[m->len++] = *s++;
}

static void msg_hex(Msg *m, uint64_t v)
{
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 0xf];
        v >>= 4;
    } while (v != 0);
    msg_str(m, "0x");
    while (n > 0 && m->len < sizeof m->buf)
        m->buf[m->len++] = tmp[--n];
}

static void msg_dec(Msg *m, int64_t sv)
{
    char tmp[20];
    size_t n = 0;
    /* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
    uint64_t v = sv < 0 ? 0u - (uint64_t)sv : (uint64_t)sv;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    if (sv < 0)
        msg_str(m, "-");
    while (n > 0 && m->len < sizeof m->buf)
        m->buf[m->len++] = tmp[--n];
}

/* Emit the message, forcing a final newline even if it was truncated so
 * the next line on stderr does not run into it. */
static void msg_flush(Msg *m)
{
    if (m->len == sizeof m->buf)
        m->buf[m->len - 1] = '\n';
    else
        m->buf[m->len++] = '\n';
    const char *p = m->buf;
    size_t n = m->len;
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
    m->len = 0;
}

static bool str_starts(const char *s, const char *prefix)
{
    while (*prefix != '\0')
        if (*s++ != *prefix++)
            return false;
    return true;
}

/* ------------------------------------------------------------------ */
/* What the faulting instruction did.                                   */

typedef struct {
    uint64_t pc;
    bool have_pc;
    bool exec;          /* the fault was an instruction fetch */
    int kernel_write;   /* -1 unknown, 0 read, 1 write: from the CPU's fault
                         * syndrome, which capstone's tables cannot override */
    bool decoded;
    bool decoder_claimed; /* we hold g_decoder_busy until the report is out */
    bool decoder_busy;
    uint8_t access;     /* CS_AC_READ / CS_AC_WRITE bits, 0 if unknown */
    uint32_t size;      /* bytes per access, 0 if unknown */
    bool rep;           /* string instruction: size is per element */
    const char *mnemonic;
    const char *op_str;
} Decoded;

/* The CPU's own read/write verdict wins over capstone's operand tables
 * (capstone 4 marks e.g. the destination of movups as read); only when
 * capstone says both do we keep "read-write", as the CPU reports just the
 * half that faulted first. */
static uint8_t merge_access(uint8_t cs_access, int kernel_write)
{
    const uint8_t rw = CS_AC_READ | CS_AC_WRITE;
    if (kernel_write < 0 || (cs_access & rw) == rw)
        return cs_access & rw;
    return kernel_write ? CS_AC_WRITE : CS_AC_READ;
}

#if defined(__x86_64__)

static const struct {
    x86_reg r64, r32;
    int greg;
} k_x86_regs[] = {
    { X86_REG_RAX, X86_REG_EAX, REG_RAX },  { X86_REG_RBX, X86_REG_EBX, REG_RBX },
    { X86_REG_RCX, X86_REG_ECX, REG_RCX },  { X86_REG_RDX, X86_REG_EDX, REG_RDX },
    { X86_REG_RSI, X86_REG_ESI, REG_RSI },  { X86_REG_RDI, X86_REG_EDI, REG_RDI },
    { X86_REG_RBP, X86_REG_EBP, REG_RBP },  { X86_REG_RSP, X86_REG_ESP, REG_RSP },
    { X86_REG_R8, X86_REG_R8D, REG_R8 },    { X86_REG_R9, X86_REG_R9D, REG_R9 },
    { X86_REG_R10, X86_REG_R10D, REG_R10 }, { X86_REG_R11, X86_REG_R11D, REG_R11 },
    { X86_REG_R12, X86_REG_R12D, REG_R12 }, { X86_REG_R13, X86_REG_R13D, REG_R13 },
    { X86_REG_R14, X86_REG_R14D, REG_R14 }, { X86_REG_R15, X86_REG_R15D, REG_R15 },
};

static bool x86_reg_value(const ucontext_t *uc, x86_reg r, uint64_t next_pc,
                          uint64_t *out)
{
    if (r == X86_REG_INVALID) {
        *out = 0;
        return true;
    }
    if (r == X86_REG_RIP || r == X86_REG_EIP) {
        *out = r == X86_REG_RIP ? next_pc : (uint32_t)next_pc;
        return true;
    }
    for (size_t i = 0; i < sizeof k_x86_regs / sizeof k_x86_regs[0]; i++) {
        uint64_t v = (uint64_t)uc->uc_mcontext.gregs[k_x86_regs[i].greg];
        if (r == k_x86_regs[i].r64) {
            *out = v;
            return true;
        }
        if (r == k_x86_regs[i].r32) {
            *out = (uint32_t)v;
            return true;
        }
    }
    return false;
}

/* Effective address of a memory operand, to tell apart the two operands
 * of movs/cmps; fs/gs-relative (TLS) operands are never device memory and
 * their base is not in the ucontext, so they are left unknown. */
static bool x86_mem_ea(const ucontext_t *uc, const cs_insn *insn,
                       const cs_x86_op *op, uint64_t *ea)
{
    const x86_op_mem *m = &op->mem;
    uint64_t next_pc = insn->address + insn->size;
    uint64_t base, index;
    if (m->segment == X86_REG_FS || m->segment == X86_REG_GS)
        return false;
    if (!x86_reg_value(uc, (x86_reg)m->base, next_pc, &base) ||
        !x86_reg_value(uc, (x86_reg)m->index, next_pc, &index))
        return false;
    *ea = base + index * (uint64_t)(int64_t)m->scale + (uint64_t)m->disp;
    if (insn->detail->x86.addr_size == 4)
        *ea = (uint32_t)*ea;
    return true;
}

static void x86_kernel_hint(const ucontext_t *uc, Decoded *d)
{
    /* Only a page fault (#PF, vector 14) leaves a syndrome in REG_ERR. */
    if (uc->uc_mcontext.gregs[REG_TRAPNO] != 14)
        return;
    uint64_t err = (uint64_t)uc->uc_mcontext.gregs[REG_ERR];
    d->kernel_write = (err & 0x2) != 0;
    d->exec = (err & 0x10) != 0;
}

static void x86_interpret(const ucontext_t *uc, const cs_insn *insn,
                          uint64_t addr, Decoded *d)
{
    const cs_x86 *x = &insn->detail->x86;
    const cs_x86_op *mem[8];
    size_t n = 0;
    for (uint8_t i = 0; i < x->op_count && n < 8; i++)
        if (x->operands[i].type == X86_OP_MEM)
            mem[n++] = &x->operands[i];

    d->rep = str_starts(insn->mnemonic, "rep");
    if (n == 0) {
        /* Implicit operand (push/pop/call into the window): only the CPU
         * knows the direction. */
        d->access = merge_access(0, d->kernel_write);
        return;
    }

    const cs_x86_op *pick = NULL;
    if (n == 1) {
        pick = mem[0];
    } else {
        /* movs has a read and a write operand: the CPU's verdict says
         * which one faulted. */
        const cs_x86_op *dir[8];
        size_t nd = 0;
        uint8_t want = d->kernel_write == 1 ? CS_AC_WRITE : CS_AC_READ;
        if (d->kernel_write >= 0)
            for (size_t i = 0; i < n; i++)
                if (mem[i]->access & want)
                    dir[nd++] = mem[i];
        if (nd == 1)
            pick = dir[0];
        /* Otherwise (cmps: both reads) the operand whose address is at or
         * just below the fault; fast-string microcode may fault a little
         * ahead of rdi/rsi, hence nearest-below rather than exact. */
        uint64_t best = UINT64_MAX;
        for (size_t i = 0; i < n && pick == NULL; i++) {
            uint64_t ea;
            if (x86_mem_ea(uc, insn, mem[i], &ea) && ea <= addr &&
                addr - ea < best)
                best = addr - ea;
        }
        for (size_t i = 0; i < n && pick == NULL && best != UINT64_MAX; i++) {
            uint64_t ea;
            if (x86_mem_ea(uc, insn, mem[i], &ea) && addr - ea == best)
                pick = mem[i];
        }
        if (pick == NULL)
            pick = nd > 0 ? dir[0] : mem[0];
    }
    d->access = merge_access(pick->access, d->kernel_write);
    d->size = pick->size;
}

#elif defined(__aarch64__)

/* Linux puts a sanitised ESR_EL1 (EC + WnR) in the signal frame. */
static void a64_kernel_hint(const ucontext_t *uc, Decoded *d)
{
    const unsigned char *p = (const unsigned char *)uc->uc_mcontext.__reserved;
    size_t limit = sizeof uc->uc_mcontext.__reserved;
    size_t off = 0;
    while (off + 16 <= limit) {
        uint32_t magic, size;
        memcpy(&magic, p + off, 4);
        memcpy(&size, p + off + 4, 4);
        if (magic == 0 || size < 8)
            return;
        if (magic == 0x45535201u /* ESR_MAGIC */ && size >= 16) {
            uint64_t esr;
            memcpy(&esr, p + off + 8, 8);
            uint64_t ec = (esr >> 26) & 0x3f;
            if (ec == 0x24 || ec == 0x25) /* data abort */
                d->kernel_write = (int)((esr >> 6) & 1);
            else if (ec == 0x20 || ec == 0x21) /* instruction abort */
                d->exec = true;
            return;
        }
        off += size;
    }
}

static uint32_t a64_reg_bytes(arm64_reg r)
{
    if (r >= ARM64_REG_B0 && r <= ARM64_REG_B31) return 1;
    if (r >= ARM64_REG_H0 && r <= ARM64_REG_H31) return 2;
    if (r >= ARM64_REG_S0 && r <= ARM64_REG_S31) return 4;
    if (r >= ARM64_REG_D0 && r <= ARM64_REG_D31) return 8;
    if (r >= ARM64_REG_Q0 && r <= ARM64_REG_Q31) return 16;
    if ((r >= ARM64_REG_W0 && r <= ARM64_REG_W30) || r == ARM64_REG_WZR) return 4;
    if ((r >= ARM64_REG_X0 && r <= ARM64_REG_X28) || r == ARM64_REG_X29 ||
        r == ARM64_REG_X30 || r == ARM64_REG_XZR) return 8;
    return 0;
}

/* Best effort: capstone 4 has no operand size for AArch64 and marks plain
 * stores (str, stp) read-write, so the load/store naming scheme decides
 * and capstone's access flags are only a last resort. */
static void a64_interpret(const cs_insn *insn, Decoded *d)
{
    static const char *const k_rmw[] = {
        "swp", "cas", "ldadd", "ldclr", "ldeor", "ldset", "ldsmax", "ldsmin",
        "ldumax", "ldumin", "stadd", "stclr", "steor", "stset", "stsmax",
        "stsmin", "stumax", "stumin",
    };
    const cs_arm64 *a = &insn->detail->arm64;
    const char *mn = insn->mnemonic;
    uint8_t access = 0;
    uint8_t cs_access = 0;
    uint32_t reg_bytes = 0;
    /* Store-exclusive names its status register before the data. */
    int data_reg = str_starts(mn, "stx") || str_starts(mn, "stlx") ? 1 : 0;
    for (uint8_t i = 0; i < a->op_count; i++) {
        if (a->operands[i].type == ARM64_OP_MEM)
            cs_access = a->operands[i].access;
        else if (a->operands[i].type == ARM64_OP_REG && data_reg-- == 0)
            reg_bytes = a64_reg_bytes(a->operands[i].reg);
    }
    for (size_t i = 0; i < sizeof k_rmw / sizeof k_rmw[0]; i++)
        if (str_starts(mn, k_rmw[i]))
            access = CS_AC_READ | CS_AC_WRITE;
    if (access == 0 && str_starts(mn, "st"))
        access = CS_AC_WRITE;
    else if (access == 0 && str_starts(mn, "ld"))
        access = CS_AC_READ;
    else if (access == 0)
        access = cs_access;
    d->access = merge_access(access, d->kernel_write);

    size_t len = strlen(mn);
    char last = len > 0 ? mn[len - 1] : '\0';
    bool ldst = str_starts(mn, "ld") || str_starts(mn, "st");
    bool pair = ldst && len >= 3 && mn[len - 1] == 'p';
    if (ldst && str_starts(mn, "ld1")) /* vector structure loads: unknown */
        reg_bytes = 0;
    else if (ldst && last == 'b')
        reg_bytes = 1;
    else if (ldst && last == 'h')
        reg_bytes = 2;
    else if (ldst && (last == 'w' || str_starts(mn, "ldpsw")))
        reg_bytes = 4;
    d->size = pair ? 2 * reg_bytes : reg_bytes;
}

#endif

#ifdef RT_FAULT_CS_ARCH
/* Decode at pc without reading past the end of its page unless the
 * instruction really continues there (then the CPU fetched that page, so
 * it is mapped): a stray read here would kill us before the report. */
static bool decode_at(uint64_t pc)
{
    uint64_t to_page_end = g_page_size - (pc & (g_page_size - 1));
    size_t len = to_page_end < RT_FAULT_MAX_INSN ? (size_t)to_page_end
                                                 : RT_FAULT_MAX_INSN;
    for (;;) {
        const uint8_t *code = (const uint8_t *)(uintptr_t)pc;
        size_t size = len;
        uint64_t address = pc;
        if (cs_disasm_iter(g_cs, &code, &size, &address, g_insn))
            return true;
        if (len >= RT_FAULT_MAX_INSN)
            return false;
        len = RT_FAULT_MAX_INSN;
    }
}
#endif

static void decode_fault(const ucontext_t *uc, uint64_t addr, uint64_t lo,
                         uint64_t hi, Decoded *d)
{
    d->kernel_write = -1;
#if defined(__x86_64__)
    d->pc = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
    d->have_pc = true;
    x86_kernel_hint(uc, d);
#elif defined(__aarch64__)
    d->pc = (uint64_t)uc->uc_mcontext.pc;
    d->have_pc = true;
    a64_kernel_hint(uc, d);
#else
    (void)uc;
#endif
    (void)addr;
    if (d->have_pc && d->pc >= lo && d->pc < hi)
        d->exec = true; /* jumped into device memory: nothing to decode */
    if (d->exec || !d->have_pc) {
        d->access = merge_access(0, d->kernel_write);
        return;
    }
#ifdef RT_FAULT_CS_ARCH
    if (atomic_flag_test_and_set(&g_decoder_busy)) {
        d->decoder_busy = true;
        d->access = merge_access(0, d->kernel_write);
        return;
    }
    d->decoder_claimed = true;
    if (g_insn != NULL && decode_at(d->pc)) {
        d->decoded = true;
        d->mnemonic = g_insn->mnemonic;
        d->op_str = g_insn->op_str;
#if defined(__x86_64__)
        x86_interpret(uc, g_insn, addr, d);
#else
        a64_interpret(g_insn, d);
#endif
    }
#endif
}

static void report(uint64_t addr, const ucontext_t *uc, uint64_t lo,
                   uint64_t hi)
{
    Decoded d;
    memset(&d, 0, sizeof d);
    decode_fault(uc, addr, lo, hi, &d);

    Msg m;
    m.len = 0;
    msg_str(&m, "npu-emu: host ");
    if (d.exec) {
        msg_str(&m, "instruction fetch");
    } else {
        switch (d.access) {
        case CS_AC_READ: msg_str(&m, "read"); break;
        case CS_AC_WRITE: msg_str(&m, "write"); break;
        case CS_AC_READ | CS_AC_WRITE: msg_str(&m, "read-write"); break;
        default: msg_str(&m, "access (read/write unknown)"); break;
        }
        if (d.size != 0) {
            msg_str(&m, " of ");
            msg_dec(&m, d.size);
            msg_str(&m, d.size == 1 ? " byte" : " bytes");
            if (d.rep) {
                msg_str(&m, " per element (");
                msg_str(&m, d.mnemonic);
                msg_str(&m, ")");
            }
        } else if (d.access != 0) {
            msg_str(&m, " of unknown size");
        }
    }
    msg_str(&m, " at device address ");
    msg_hex(&m, addr);

    RtFaultLookup lookup = atomic_load(&g_lookup);
    RtFaultAlloc a;
    memset(&a, 0, sizeof a);
    if (lookup != NULL && lookup(addr, &a)) {
        msg_str(&m, " (device ");
        msg_dec(&m, a.device);
        msg_str(&m, ", allocation ");
        msg_hex(&m, a.base);
        msg_str(&m, " size ");
        msg_hex(&m, a.size);
        if (addr >= a.base) {
            msg_str(&m, ", offset ");
            msg_hex(&m, addr - a.base);
            if (addr - a.base >= a.size)
                msg_str(&m, ", past its end");
        } else {
            msg_str(&m, ", offset -");
            msg_hex(&m, a.base - addr);
        }
        msg_str(&m, ")");
    } else {
        msg_str(&m, " (no allocation: address not mapped on any device)");
    }
    msg_str(&m, ": device memory is not host-accessible; use aclrtMemcpy");
    msg_flush(&m);

    if (!d.have_pc)
        goto done;
    msg_str(&m, "  at pc ");
    msg_hex(&m, d.pc);
    msg_str(&m, ": ");
    if (d.exec) {
        msg_str(&m, "(execution jumped into device memory)");
    } else if (d.decoded) {
        msg_str(&m, d.mnemonic);
        if (d.op_str[0] != '\0') {
            msg_str(&m, " ");
            msg_str(&m, d.op_str);
        }
    } else if (d.decoder_busy) {
        msg_str(&m, "(not decoded: another thread is reporting a fault)");
    } else {
        msg_str(&m, "(instruction could not be decoded)");
    }
    msg_flush(&m);
    /* Held until now because d.mnemonic/op_str point into g_insn.  Released
     * at all because the process need not die: another thread may have
     * made the page accessible before the instruction is retried. */
done:
    if (d.decoder_claimed)
        atomic_flag_clear(&g_decoder_busy);
}

/* ------------------------------------------------------------------ */
/* Chaining.                                                            */

static void reset_default(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

/* Do what the kernel would have done had the previous disposition been
 * the installed one. */
static void chain(int idx, int sig, siginfo_t *si, void *uctx)
{
    const struct sigaction *p = &g_prev[idx];
    /* A fault re-executes the instruction on return; a kill() does not. */
    bool fault = si != NULL && si->si_code > 0;

    if (p->sa_handler == SIG_IGN && !fault)
        return;
    if (p->sa_handler == SIG_DFL || p->sa_handler == SIG_IGN) {
        /* The kernel does not let a fault be ignored either: it resets the
         * action and kills.  Returning lets the fault recur under SIG_DFL;
         * a sent signal is re-raised and stays pending (our handler runs
         * with sig blocked) until we return. */
        reset_default(sig);
        if (!fault)
            raise(sig);
        return;
    }

    if (p->sa_flags & SA_RESETHAND)
        reset_default(sig);
    sigset_t mask;
    if (uctx != NULL)
        mask = ((const ucontext_t *)uctx)->uc_sigmask;
    else
        pthread_sigmask(SIG_BLOCK, NULL, &mask);
    sigorset(&mask, &mask, &p->sa_mask);
    if (!(p->sa_flags & SA_NODEFER))
        sigaddset(&mask, sig);
    else
        sigdelset(&mask, sig);
    pthread_sigmask(SIG_SETMASK, &mask, NULL);

    if (p->sa_flags & SA_SIGINFO)
        p->sa_sigaction(sig, si, uctx);
    else
        p->sa_handler(sig);
    /* Returning restores uc_sigmask (and any context the previous handler
     * edited, e.g. a JIT skipping the instruction) via sigreturn. */
}

static void rt_fault_handler(int sig, siginfo_t *si, void *uctx)
{
    int saved_errno = errno;
    int idx = -1;
    for (int i = 0; i < RT_FAULT_NSIG; i++)
        if (k_signals[i] == sig)
            idx = i;
    if (idx < 0)
        goto out;

    uint64_t lo = atomic_load(&g_lo), hi = atomic_load(&g_hi);
    /* si_addr means nothing for a sent signal (si_code <= 0). */
    uint64_t addr = si != NULL ? (uint64_t)(uintptr_t)si->si_addr : 0;
    if (!atomic_load(&g_active) || si == NULL || si->si_code <= 0 ||
        uctx == NULL || addr < lo || addr >= hi) {
        chain(idx, sig, si, uctx);
        goto out;
    }

    report(addr, (const ucontext_t *)uctx, lo, hi);
    /* Die the ordinary way: the instruction faults again under SIG_DFL, so
     * the exit status, core dump and debugger view are the usual ones. */
    reset_default(sig);
out:
    errno = saved_errno;
}

/* ------------------------------------------------------------------ */
/* Install / uninstall.                                                 */

static void decoder_acquire(void)
{
    while (atomic_flag_test_and_set(&g_decoder_busy))
        sched_yield();
}

static void decoder_release(void)
{
    atomic_flag_clear(&g_decoder_busy);
}

/* Opened here, not in the handler, because cs_open and cs_malloc
 * allocate. */
static void decoder_open(void)
{
#ifdef RT_FAULT_CS_ARCH
    decoder_acquire();
    if (g_insn == NULL) {
        csh h;
        if (cs_open(RT_FAULT_CS_ARCH, RT_FAULT_CS_MODE, &h) == CS_ERR_OK) {
            cs_insn *insn = NULL;
            if (cs_option(h, CS_OPT_DETAIL, CS_OPT_ON) == CS_ERR_OK)
                insn = cs_malloc(h);
            if (insn != NULL) {
                g_cs = h;
                g_insn = insn;
            } else {
                cs_close(&h);
            }
        }
    }
    decoder_release();
#endif
}

static void decoder_close(void)
{
#ifdef RT_FAULT_CS_ARCH
    decoder_acquire();
    if (g_insn != NULL) {
        cs_free(g_insn, 1);
        g_insn = NULL;
        cs_close(&g_cs);
    }
    decoder_release();
#endif
}

void rt_fault_install(uint64_t window_lo, uint64_t window_hi,
                      RtFaultLookup lookup)
{
    pthread_mutex_lock(&g_mutex);
    atomic_store(&g_active, false);

    long ps = sysconf(_SC_PAGESIZE);
    if (ps > 0 && (ps & (ps - 1)) == 0)
        g_page_size = (uint64_t)ps;
    decoder_open();
    atomic_store(&g_lo, window_lo);
    atomic_store(&g_hi, window_hi);
    atomic_store(&g_lookup, lookup);

    for (int i = 0; i < RT_FAULT_NSIG; i++) {
        if (g_registered[i])
            continue;
        /* Read the old action before replacing it, so g_prev is valid by
         * the time any thread can enter our handler. */
        if (sigaction(k_signals[i], NULL, &g_prev[i]) != 0)
            continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = rt_fault_handler;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        if (sigaction(k_signals[i], &sa, NULL) == 0)
            g_registered[i] = true;
    }

    atomic_store(&g_active, true);
    pthread_mutex_unlock(&g_mutex);
}

void rt_fault_uninstall(void)
{
    pthread_mutex_lock(&g_mutex);
    atomic_store(&g_active, false);
    for (int i = 0; i < RT_FAULT_NSIG; i++) {
        if (!g_registered[i])
            continue;
        struct sigaction cur;
        if (sigaction(k_signals[i], NULL, &cur) != 0)
            continue;
        /* Someone who installed over us may chain to us: then we must stay
         * (inactive, passing everything to g_prev) rather than pull the
         * ground from under them. */
        if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == rt_fault_handler &&
            sigaction(k_signals[i], &g_prev[i], NULL) == 0)
            g_registered[i] = false;
    }
    decoder_close();
    pthread_mutex_unlock(&g_mutex);
}
