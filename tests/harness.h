/*
 * harness.h - helpers for tests that run the real npu-emu and real client
 * processes.
 *
 * Concepts: emu_start() forks and execs the npu-emu binary named by
 * $NPU_EMU_BIN (meson sets it) on a socket in a fresh temporary directory, waits
 * until the socket accepts, and exports NPU_EMU_SOCKET so that every client
 * started afterwards (forked or exec'd) talks to it.  Children are plain fork()s
 * that call aclInit themselves.  Nothing here is thread-safe; tests are
 * single-threaded around these calls.
 *
 * Agents: when a scenario needs several client processes acting in a set
 * order, each is an agent, a forked child that runs the commands its parent
 * sends down one pipe and answers each up another.  A command is a fixed-size
 * message of the test file's own type that starts with op / want / rc
 * (AGENT_MSG_HEAD); the file supplies an AgentDef (the size, the function that
 * runs one command, its op codes for init / exit / hang / quit) and the
 * harness does the rest.  Both sides check rc against want: the agent in full
 * (acl_check.h; its failure count is its exit status), the parent at the
 * scenario's file and line.  Every wait is bounded and scaled by TEST_SLOW.
 */
#ifndef TESTS_HARNESS_H
#define TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "acl/acl_rt.h"

/* Sanitizer builds run several times slower: every time limit is multiplied
 * by TEST_SLOW. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_SLOW 4u
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_SLOW 4u
#endif
#endif
#ifndef TEST_SLOW
#define TEST_SLOW 1u
#endif

typedef struct TestEmu {
    pid_t pid;
    char dir[256];
    char sock[320];
    char log[320];
} TestEmu;

/* Starts npu-emu with `profile` ("a2"/"a3") and extra argv entries (NULL-terminated,
 * may be NULL). Exports NPU_EMU_SOCKET. */
bool emu_start(TestEmu *e, const char *profile, const char *const *extra);
/* True while the emulator process lives. */
bool emu_running(const TestEmu *e);
/* SIGTERM, wait, remove the directory. */
void emu_stop(TestEmu *e);
/* Whole operator log so far (g_free it). */
char *emu_log_text(const TestEmu *e);

/* Runs fn(arg) in a forked child, which _exits with its return value. */
pid_t child_run(int (*fn)(void *), void *arg);
/* Waits; returns the exit status, or 128 + signal if it was killed. */
int child_wait(pid_t pid);
/* As child_run, but the child's stderr goes to a pipe; child_collect reads it all. */
pid_t child_run_stderr(int (*fn)(void *), void *arg, int *err_fd);
char *child_collect(int fd);

/* The emulator's log line about client `pid` going away, once it is logged
 * (within 10 s); NULL if it never is.  g_free it. */
char *emu_gone_line(const TestEmu *e, pid_t pid);

/* Polls until cond(arg) is true or timeout_ms passes; returns the last result. */
bool wait_until(bool (*cond)(void *), void *arg, int timeout_ms);
/* Milliseconds on the monotonic clock. */
int64_t clock_ms(void);

/* ---- agents ---- */

/* The first fields of every agent message: the command, the code it must
 * return, and the code it did return.  A macro, not a member of type
 * AgentHdr, so that scenarios write .op = ... and r.rc like any other field. */
#define AGENT_MSG_HEAD int32_t op, want, rc
typedef struct AgentHdr {
    AGENT_MSG_HEAD;
} AgentHdr;

/* rc of a command that got no answer: the agent is dead, stuck or gone. */
#define AGENT_NO_ANSWER (-999)

typedef struct AgentDef {
    size_t size;                            /* of the file's message type */
    /* Runs command m in the agent; r is m with rc 0, sent back afterwards. */
    void (*run)(const void *m, void *r);
    int32_t op_init;    /* aclInit: from then on op_exit calls aclFinalize */
    int32_t op_exit;    /* answered by the loop itself, then the agent exits */
    int32_t op_hang;    /* if not 0: answered, then the agent waits to be killed */
    int32_t op_quit;    /* if not 0: answered, then _exit with no cleanup at all */
} AgentDef;

/* The parent's handle on one agent. */
typedef struct Agent {
    pid_t pid;
    int rd, wr;                 /* the parent's ends */
    char name[8];
    bool done;                  /* reaped */
    bool broken;                /* it stopped answering: no more waiting for it */
    const AgentDef *def;
} Agent;

/* Forks agent `name` serving def; it uses emulator e and server `server`
 * (NPU_EMU_SERVER, -1 for none), or with e NULL the environment as it is. */
Agent agent_spawn(const char *name, const AgentDef *def, const TestEmu *e, int server);
/* Sends m (size bytes) and reads the answer into r; false, with r zeroed but
 * rc AGENT_NO_ANSWER, when none comes (a is then broken). */
bool agent_call(Agent *a, const void *m, void *r, size_t size);
/* agent_call, then a check that rc is m's want, failing at file:line; each
 * file wraps it in its own DO(agent, want, fields...) on its message type. */
void agent_do_op(Agent *a, const void *m, void *r, size_t size, const char *text,
                 const char *file, int line);
/* Waits (bounded) for a to exit and closes its pipes; its exit status, 128 +
 * signal, 255 if it had to be killed, -1 if there was none to wait for. */
int agent_reap(Agent *a);
/* op_exit, then a check at file:line that a exited with no failed checks. */
void agent_finish_at(Agent *a, const char *file, int line);
/* SIGKILLs a (parked in op_hang) and checks at file:line that emulator e logs
 * it gone, with `what` in the line when not NULL. */
void agent_kill_at(Agent *a, const TestEmu *e, const char *what, const char *file, int line);

/* In an agent: checks the result rc of API call `what` against want in full
 * (acl_check.h: code, last error, message), failing at file:line; returns rc. */
aclError agent_expect(aclError rc, aclError want, const char *what, const char *file, int line);

/* The usual spellings in a scenario, for an Agent variable a. */
#define AGENT_FINISH(a) agent_finish_at(&(a), __FILE__, __LINE__)
#define AGENT_KILL(a, e, what) agent_kill_at(&(a), (e), (what), __FILE__, __LINE__)

/* ---- the integration test programs (test_*.c) ----
 *
 * Each is one CUnit program whose main() describes itself in a TestProgram
 * and hands it to test_main, which
 *  - starts its emulators in order (the last is this process's: emu_start
 *    points NPU_EMU_SOCKET at it), and at the end stops them, last first;
 *  - registers its suites in order, with only the tests whose name contains
 *    $only_env if that is set, and runs them all verbosely;
 *  - with `devices`: the suites after the first pre_init ones (those are for
 *    children that must fork before this process calls aclInit) run
 *    initialised.  Before the first of them, aclInit, aclrtSetDevice on each
 *    of `devices`, highest first (so the lowest is current), their default
 *    contexts into ctx[d], and `stream`; each such suite's own init comes
 *    after that, and none of them runs if it failed.  After the run, while
 *    this process's emulator lives: `stream` destroyed, aclrtResetDevice on
 *    each of `reset`, highest first, and aclFinalize.
 *
 * stdout is unbuffered, so that CUnit's lines and the diagnostics on stderr
 * (this process's and its children's) come out in order, and a forked child
 * has no buffered output to print twice.  SIGPIPE is ignored: a write to a
 * dead agent or child fails instead of killing the program.  The exit status
 * is 0 only if every required emulator started, every assertion passed, every
 * suite init and cleanup succeeded and aclFinalize did; an emulator that exits
 * with an error fails the program too (emu_stop). */

typedef struct TestCase {
    const char *name;
    void (*fn)(void);
} TestCase;

typedef struct TestSuite {
    const char *name;
    int (*init)(void);          /* CUnit suite init (0: ready), or NULL */
    int (*clean)(void);         /* CUnit suite cleanup, or NULL */
    const TestCase *tests;
    size_t n;
} TestSuite;

#define T(f) { #f, f }
#define SUITE(name, init, clean, tests) \
    { (name), (init), (clean), (tests), sizeof(tests) / sizeof((tests)[0]) }

typedef struct TestEmuDef {
    TestEmu *emu;
    const char *profile;        /* "a2" or "a3" */
    const char *const *args;    /* extra npu-emu arguments, NULL-terminated, or NULL */
    /* NULL: the program cannot run without this emulator.  Otherwise it runs
     * either way and *started says whether the emulator did (the tests that
     * need it check). */
    bool *started;
} TestEmuDef;

#define EMU(emu, profile) { (emu), (profile), NULL, NULL }

/* A device's bit in TestProgram.devices / .reset. */
#define DEV(d) (1u << (d))

#define TEST_MAX_EMUS 2
#define TEST_MAX_SUITES 8

typedef struct TestProgram {
    const char *name;           /* "test_hostmem", in messages */
    TestEmuDef emus[TEST_MAX_EMUS];         /* up to the first with emu NULL */
    TestSuite suites[TEST_MAX_SUITES];      /* up to the first with name NULL */
    size_t pre_init;            /* how many leading suites run before aclInit */
    uint32_t devices;           /* DEV(d)s set after aclInit; 0: no aclInit / aclFinalize here */
    uint32_t reset;             /* DEV(d)s reset before aclFinalize */
    aclrtContext *ctx;          /* if not NULL: ctx[d] = device d's default context */
    aclrtStream *stream;        /* if not NULL: a stream on the current device, made after
                                 * the devices are set and destroyed before they are reset */
    const char *only_env;       /* e.g. "EVENT_ONLY" (for debugging), or NULL */
} TestProgram;

/* Runs the program p as above; returns the process exit status. */
int test_main(const TestProgram *p);

/* ---- the aclrt* API test programs (test_api_*.c) ----
 *
 * Each is one test program (api_run) with one emulator of its own (profile
 * a2: 8 x Ascend910B1, 64 GiB HBM each).  Most tests run in this process, with
 * device 0's default context (g_api_ctx0) current on the main thread; tests of
 * process-wide life cycle run in forked children, which call aclInit
 * themselves (check_child in acl_check.h).  A test declared with API_TEST
 * fails at once once the emulator is gone, instead of tripping over NULL
 * buffers, and its run time is printed after the CUnit summary. */

#define API_TEST(name)                        \
    static void name##_body(void);            \
    static void name(void)                    \
    {                                         \
        api_run_test(#name, name##_body);     \
    }                                         \
    static void name##_body(void)

/* Device 0's default context, the main thread's (api_use_dev0). */
extern aclrtContext g_api_ctx0;

/* test_main for the program `prog` made of these suites (at most
 * TEST_MAX_SUITES), with its own a2 emulator (the one API_TEST watches); with
 * `init`, device 0 is set (its context into g_api_ctx0) before the first suite
 * and reset at the end.  Each API_TEST's run time is printed after the CUnit
 * summary. */
int api_run(const char *prog, bool init, const TestSuite *suites, size_t n);
/* API_TEST's test: runs body while the emulator lives, and times it. */
void api_run_test(const char *name, void (*body)(void));
/* Kills the emulator (SIGKILL) and waits for it; later tests fail at once. */
void api_emu_kill(void);
/* aclrtSetDevice(0) on this thread, its context into g_api_ctx0; 0 on success
 * (a CUnit suite init). */
int api_use_dev0(void);
/* Makes g_api_ctx0 current again, checking that it worked. */
void use_dev0(void);
/* Runs fn(arg) in a new thread and joins it (a fatal CUnit failure if the
 * thread cannot be created). */
void run_thread(void *(*fn)(void *), void *arg);
/* Seconds on the monotonic clock. */
double now_s(void);

/* Two device buffers of BUSY_BYTES, `a` filled with a pattern and `b` zeroed:
 * a copy between them keeps a stream busy for a while, so work queued behind
 * it has visibly not run yet. */
#define BUSY_BYTES (256ull << 20)
typedef struct BusyBufs {
    void *a, *b;
} BusyBufs;
bool busy_bufs_alloc(BusyBufs *bz);
void busy_bufs_free(BusyBufs *bz);

/* An allocation attribute of `type` with value v (module id, device id or VA
 * flag; reserved bytes 0). */
aclrtMallocAttribute attr_of(aclrtMallocAttrType type, uint32_t v);

#endif
