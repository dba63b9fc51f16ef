/*
 * harness.c - start the real emulator and real client processes for tests.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "acl/acl.h"
#include "acl_check.h"
#include "cu_run.h"

static const unsigned slow = TEST_SLOW;

static bool can_connect(void *arg)
{
    const char *path = arg;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    g_strlcpy(a.sun_path, path, sizeof(a.sun_path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

bool wait_until(bool (*cond)(void *), void *arg, int timeout_ms)
{
    for (int t = 0;; t += 5) {
        if (cond(arg))
            return true;
        if (t >= timeout_ms)
            return false;
        g_usleep(5000);
    }
}

bool emu_start(TestEmu *e, const char *profile, const char *const *extra)
{
    memset(e, 0, sizeof(*e));
    const char *bin = getenv("NPU_EMU_BIN");
    if (!bin) {
        fprintf(stderr, "harness: NPU_EMU_BIN is not set\n");
        return false;
    }
    g_strlcpy(e->dir, "/tmp/npu-emu-test-XXXXXX", sizeof(e->dir));
    if (!mkdtemp(e->dir))
        return false;
    chmod(e->dir, 0755);    /* lets a test connect as another user */
    snprintf(e->sock, sizeof(e->sock), "%s/emu.sock", e->dir);
    snprintf(e->log, sizeof(e->log), "%s/emu.log", e->dir);
    GPtrArray *argv = g_ptr_array_new();
    g_ptr_array_add(argv, (char *)bin);
    g_ptr_array_add(argv, "--socket");
    g_ptr_array_add(argv, e->sock);
    g_ptr_array_add(argv, "--profile");
    g_ptr_array_add(argv, (char *)(profile ? profile : "a2"));
    g_ptr_array_add(argv, "--log");
    g_ptr_array_add(argv, e->log);
    for (int i = 0; extra && extra[i]; i++)
        g_ptr_array_add(argv, (char *)extra[i]);
    g_ptr_array_add(argv, NULL);
    e->pid = fork();
    if (e->pid == 0) {
        execv(bin, (char **)argv->pdata);
        _exit(127);
    }
    g_ptr_array_free(argv, TRUE);
    setenv("NPU_EMU_SOCKET", e->sock, 1);
    return e->pid > 0 && wait_until(can_connect, e->sock, 10000);
}

void emu_stop(TestEmu *e)
{
    int status = 0;
    bool bad = false;
    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        bad = waitpid(e->pid, &status, 0) == e->pid && WIFEXITED(status) &&
              WEXITSTATUS(status) != 0;
        e->pid = 0;
    }
    if (bad) {
        /* A sanitizer report (or any error) in the emulator fails the test
         * program, whatever its own checks said; the log stays for reading. */
        fprintf(stderr, "harness: npu-emu exited with status %d; its log is %s\n",
                WEXITSTATUS(status), e->log);
        exit(1);
    }
    if (e->dir[0]) {
        char *cmd = g_strdup_printf("rm -rf '%s'", e->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "harness: cannot remove %s\n", e->dir);
        g_free(cmd);
    }
}

char *emu_log_text(const TestEmu *e)
{
    char *text = NULL;
    if (!g_file_get_contents(e->log, &text, NULL, NULL))
        return g_strdup("");
    return text;
}

pid_t child_run(int (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(arg));
    return pid;
}

int child_wait(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

pid_t child_run_stderr(int (*fn)(void *), void *arg, int *err_fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 2);
        _exit(fn(arg));
    }
    close(p[1]);
    *err_fd = p[0];
    return pid;
}

char *child_collect(int fd)
{
    GString *s = g_string_new(NULL);
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        g_string_append_len(s, buf, n);
    close(fd);
    return g_string_free(s, FALSE);
}

typedef struct LogWait {
    const TestEmu *emu;
    const char *needle;
    char *line;
} LogWait;

static bool log_has(void *arg)
{
    LogWait *w = arg;
    char *log = emu_log_text(w->emu);
    char *at = log ? strstr(log, w->needle) : NULL;
    if (at) {
        char *end = strchr(at, '\n');
        w->line = g_strndup(at, end ? (size_t)(end - at) : strlen(at));
    }
    g_free(log);
    return at != NULL;
}

char *emu_gone_line(const TestEmu *e, pid_t pid)
{
    char *needle = g_strdup_printf("client pid %d gone", (int)pid);
    LogWait w = { e, needle, NULL };
    wait_until(log_has, &w, 10000);
    g_free(needle);
    return w.line;
}

bool emu_running(const TestEmu *e)
{
    return e->pid > 0 && waitpid(e->pid, NULL, WNOHANG) == 0;
}

int64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- agents: the pipes ---- */

static bool write_full(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* False when the n bytes are not all there within timeout_ms, or the writer
 * closed its end. */
static bool read_full(int fd, void *buf, size_t n, int timeout_ms)
{
    uint8_t *p = buf;
    int64_t end = clock_ms() + timeout_ms;
    while (n > 0) {
        int64_t left = end - clock_ms();
        if (left <= 0)
            return false;
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        int r = poll(&pf, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        ssize_t k = read(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* The parent's ends of every live agent's pipes.  A new agent closes them all:
 * an agent holding another's write end would keep that one from seeing EOF
 * when the parent goes away. */
static int g_parent_fds[64];
static int g_nparent_fds;

static void parent_fd_add(int fd)
{
    if (g_nparent_fds < (int)G_N_ELEMENTS(g_parent_fds))
        g_parent_fds[g_nparent_fds++] = fd;
}

static void parent_fd_del(int fd)
{
    for (int i = 0; i < g_nparent_fds; i++)
        if (g_parent_fds[i] == fd)
            g_parent_fds[i] = g_parent_fds[--g_nparent_fds];
    close(fd);
}

/* ---- agents: the child side ---- */

/* Messages are the files' own types: the header is read and written as bytes. */
static AgentHdr hdr_of(const void *msg)
{
    AgentHdr h;
    memcpy(&h, msg, sizeof(h));
    return h;
}

static void hdr_set_rc(void *msg, int32_t rc)
{
    memcpy((char *)msg + offsetof(AgentHdr, rc), &rc, sizeof(rc));
}

/* Points this process's aclInit at emulator e and server `server`. */
static void use_emu(const TestEmu *e, int server)
{
    setenv("NPU_EMU_SOCKET", e->sock, 1);
    if (server >= 0) {
        char s[16];
        snprintf(s, sizeof(s), "%d", server);
        setenv("NPU_EMU_SERVER", s, 1);
    } else {
        unsetenv("NPU_EMU_SERVER");
    }
}

static int child_status(void)
{
    fflush(NULL);
    return g_child_fails > 100 ? 100 : g_child_fails;
}

/* The agent's life: read a command, run it, answer, until op_exit, a quiet
 * parent or a closed pipe.  Returns the exit status (the failure count). */
static int agent_serve(const AgentDef *def, int rd, int wr)
{
    g_in_child = true;
    g_child_fails = 0;
    alarm(120 * slow);
    bool inited = false;
    void *m = g_malloc(def->size);
    void *r = g_malloc(def->size);
    for (;;) {
        if (!read_full(rd, m, def->size, 60000 * slow)) {
            CHECKF(false, "agent %d: no command within %u s", (int)getpid(), 60 * slow);
            break;
        }
        int32_t op = hdr_of(m).op;
        memcpy(r, m, def->size);
        hdr_set_rc(r, 0);
        if (op == def->op_exit) {
            if (inited)
                hdr_set_rc(r, agent_expect(aclFinalize(), ACL_SUCCESS, "aclFinalize()", __FILE__,
                                           __LINE__));
            write_full(wr, r, def->size);
            break;
        }
        def->run(m, r);
        if (op == def->op_init)
            inited = true;
        drain_errors();
        fflush(NULL);
        if (!write_full(wr, r, def->size))
            break;
        if (def->op_quit && op == def->op_quit)
            _exit(child_status());
        if (def->op_hang && op == def->op_hang)
            for (;;)
                pause();
    }
    g_free(m);
    g_free(r);
    return child_status();
}

aclError agent_expect(aclError rc, aclError want, const char *what, const char *file, int line)
{
    if (want == ACL_SUCCESS)
        expect_ok_impl(rc, what, file, line, "agent");
    else
        expect_err_impl(rc, want, what, file, line, "agent");
    return rc;
}

/* ---- agents: the parent side ---- */

Agent agent_spawn(const char *name, const AgentDef *def, const TestEmu *e, int server)
{
    Agent a;
    memset(&a, 0, sizeof(a));
    g_strlcpy(a.name, name, sizeof(a.name));
    a.def = def;
    int down[2], up[2];
    if (pipe2(down, O_CLOEXEC) < 0 || pipe2(up, O_CLOEXEC) < 0) {
        CHECKF(false, "pipe2: %s", g_strerror(errno));
        a.pid = -1;
        return a;
    }
    fflush(NULL);
    a.pid = fork();
    if (a.pid == 0) {
        for (int i = 0; i < g_nparent_fds; i++)
            close(g_parent_fds[i]);
        close(down[1]);
        close(up[0]);
        if (e)
            use_emu(e, server);
        _exit(agent_serve(def, down[0], up[1]));
    }
    close(down[0]);
    close(up[1]);
    a.rd = up[0];
    a.wr = down[1];
    parent_fd_add(a.rd);
    parent_fd_add(a.wr);
    CHECKF(a.pid > 0, "cannot fork agent %s", name);
    return a;
}

bool agent_call(Agent *a, const void *m, void *r, size_t size)
{
    bool ok = a->pid > 0 && !a->done && !a->broken;
    if (ok && !(write_full(a->wr, m, size) && read_full(a->rd, r, size, 30000 * slow))) {
        ok = false;
        a->broken = true;
    }
    if (!ok) {
        memset(r, 0, size);
        hdr_set_rc(r, AGENT_NO_ANSWER);
    }
    return ok;
}

void agent_do_op(Agent *a, const void *m, void *r, size_t size, const char *text,
                 const char *file, int line)
{
    if (!agent_call(a, m, r, size)) {
        check_impl(false, file, line, "scenario", "%s: %s: no answer (agent dead?)", a->name,
                   text);
        return;
    }
    int32_t rc = hdr_of(r).rc, want = hdr_of(m).want;
    check_impl(rc == want, file, line, "scenario", "%s: %s: returned %d, expected %d", a->name,
               text, rc, want);
}

int agent_reap(Agent *a)
{
    if (a->pid <= 0 || a->done)
        return -1;
    int st = 0, res = -1;
    int64_t end = clock_ms() + 15000 * (int64_t)slow;
    for (;;) {
        pid_t w = waitpid(a->pid, &st, WNOHANG);
        if (w == a->pid) {
            res = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
            break;
        }
        if (w < 0 || clock_ms() > end) {
            kill(a->pid, SIGKILL);
            waitpid(a->pid, &st, 0);
            res = 255;
            break;
        }
        g_usleep(5000);
    }
    parent_fd_del(a->rd);
    parent_fd_del(a->wr);
    a->done = true;
    return res;
}

void agent_finish_at(Agent *a, const char *file, int line)
{
    if (a->pid <= 0 || a->done)
        return;
    void *m = g_malloc0(a->def->size);
    void *r = g_malloc0(a->def->size);
    AgentHdr h = { .op = a->def->op_exit };
    memcpy(m, &h, sizeof(h));
    agent_call(a, m, r, a->def->size);
    int32_t rc = hdr_of(r).rc;
    g_free(m);
    g_free(r);
    int st = agent_reap(a);
    check_impl(rc == 0 && st == 0, file, line, "scenario",
               "agent %s (pid %d) ended with status %d (its failed checks; 128+ = signal, 255 = "
               "did not exit)", a->name, (int)a->pid, st);
}

void agent_kill_at(Agent *a, const TestEmu *e, const char *what, const char *file, int line)
{
    kill(a->pid, SIGKILL);
    int st = agent_reap(a);
    check_impl(st == 128 + SIGKILL, file, line, "scenario", "agent %s: status %d after SIGKILL",
               a->name, st);
    char *gone = emu_gone_line(e, a->pid);
    check_impl(gone != NULL, file, line, "scenario",
               "the emulator did not log agent %s (pid %d) gone", a->name, (int)a->pid);
    if (gone && what)
        check_impl(strstr(gone, what) != NULL, file, line, "scenario",
                   "reclaim of %s: \"%s\", expected \"%s\" in it", a->name, gone, what);
    g_free(gone);
}

/* ---- the API test programs ---- */

aclrtContext g_api_ctx0;

static TestEmu g_api_emu;
static bool g_api_emu_dead;
static const char *g_api_prog = "test_api";

typedef struct TestTime {
    const char *name;
    double secs;
} TestTime;
static TestTime g_times[128];
static int g_ntimes;

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool api_emu_alive(void)
{
    if (!g_api_emu_dead && g_api_emu.pid > 0 && !emu_running(&g_api_emu)) {
        g_api_emu_dead = true;
        g_api_emu.pid = 0;
        fprintf(stderr, "%s: npu-emu exited or died\n", g_api_prog);
    }
    return !g_api_emu_dead;
}

void api_emu_kill(void)
{
    kill(g_api_emu.pid, SIGKILL);
    waitpid(g_api_emu.pid, NULL, 0);
    g_api_emu.pid = 0;
    g_api_emu_dead = true;
}

void api_run_test(const char *name, void (*body)(void))
{
    if (!api_emu_alive()) {
        CU_FAIL("npu-emu died earlier: test not run");
        return;
    }
    double t0 = now_s();
    body();
    if (g_ntimes < (int)G_N_ELEMENTS(g_times))
        g_times[g_ntimes++] = (TestTime){ name, now_s() - t0 };
}

int api_use_dev0(void)
{
    if (aclrtSetDevice(0) != ACL_SUCCESS || aclrtGetCurrentContext(&g_api_ctx0) != ACL_SUCCESS)
        return 1;
    drain_errors();
    return 0;
}

void use_dev0(void)
{
    aclError e = aclrtSetCurrentContext(g_api_ctx0);
    CHECKF(e == ACL_SUCCESS, "restoring device 0's context returned %d", e);
    drain_errors();
}

void run_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, fn, arg) == 0);
    pthread_join(t, NULL);
}

bool busy_bufs_alloc(BusyBufs *bz)
{
    bz->a = bz->b = NULL;
    return EXPECT_OK(aclrtMalloc(&bz->a, BUSY_BYTES, ACL_MEM_MALLOC_HUGE_FIRST)) &&
           EXPECT_OK(aclrtMalloc(&bz->b, BUSY_BYTES, ACL_MEM_MALLOC_HUGE_FIRST)) &&
           EXPECT_OK(aclrtMemsetD32(bz->a, BUSY_BYTES, 0x5a5a0001u, BUSY_BYTES / 4)) &&
           EXPECT_OK(aclrtMemset(bz->b, BUSY_BYTES, 0, BUSY_BYTES));
}

void busy_bufs_free(BusyBufs *bz)
{
    EXPECT_OK(aclrtFree(bz->a));
    EXPECT_OK(aclrtFree(bz->b));
}

aclrtMallocAttribute attr_of(aclrtMallocAttrType type, uint32_t v)
{
    aclrtMallocAttribute a;
    memset(&a, 0, sizeof(a));
    a.attr = type;
    if (type == ACL_RT_MEM_ATTR_MODULE_ID)
        a.value.moduleId = (uint16_t)v;
    else
        a.value.deviceId = v;   /* deviceId and vaFlag share the same 4 bytes */
    return a;
}

/* ---- test_main ---- */

static const TestProgram *g_prog;
static size_t g_nemus, g_nsuites;
static bool g_acl_tried, g_acl_ready;

/* Whether the emulator lives, without reaping it if it is gone: emu_stop must
 * still see how it exited. */
static bool emu_alive_peek(const TestEmu *e)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    return e->pid > 0 && waitid(P_PID, (id_t)e->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           si.si_pid == 0;
}

static bool prog_emu_start(const TestProgram *p, const TestEmuDef *d)
{
    bool ok = emu_start(d->emu, d->profile, d->args);
    if (d->started)
        *d->started = ok;
    if (!ok)
        fprintf(stderr, "%s: cannot start the %s npu-emu%s\n", p->name, d->profile,
                d->started ? " (the tests that need it fail)" : "");
    return ok || d->started;
}

static bool acl_setup(const TestProgram *p)
{
    if (aclInit(NULL) != ACL_SUCCESS)
        return false;
    for (int32_t d = 31; d >= 0; d--)
        if ((p->devices & DEV(d)) &&
            (aclrtSetDevice(d) != ACL_SUCCESS ||
             (p->ctx && aclrtGetCurrentContext(&p->ctx[d]) != ACL_SUCCESS)))
            return false;
    if (p->stream && aclrtCreateStream(p->stream) != ACL_SUCCESS)
        return false;
    drain_errors();
    return true;
}

static bool acl_teardown(const TestProgram *p)
{
    if (g_nemus && !emu_alive_peek(p->emus[g_nemus - 1].emu))
        return true;            /* the emulator is gone: the tests said so */
    if (p->stream)
        aclrtDestroyStream(*p->stream);
    for (int32_t d = 31; d >= 0; d--)
        if (p->reset & DEV(d))
            aclrtResetDevice(d);
    aclError e = aclFinalize();
    if (e != ACL_SUCCESS)
        fprintf(stderr, "%s: aclFinalize returned %d\n", p->name, e);
    return e == ACL_SUCCESS;
}

/* The CUnit init of every suite that runs after aclInit: the first one does
 * the program's aclInit and devices, then each runs the suite's own init. */
static int acl_suite_init(void)
{
    const TestProgram *p = g_prog;
    if (!g_acl_tried) {
        g_acl_tried = true;
        g_acl_ready = acl_setup(p);
        if (!g_acl_ready)
            fprintf(stderr, "%s: cannot initialise the devices (aclInit, aclrtSetDevice)\n",
                    p->name);
    }
    if (!g_acl_ready)
        return 1;
    const char *name = CU_get_current_suite()->pName;
    for (size_t i = 0; i < g_nsuites; i++)
        if (strcmp(p->suites[i].name, name) == 0)
            return p->suites[i].init ? p->suites[i].init() : 0;
    return 1;
}

static bool prog_register(const TestProgram *p)
{
    const char *only = p->only_env ? getenv(p->only_env) : NULL;
    for (size_t i = 0; i < g_nsuites; i++) {
        const TestSuite *s = &p->suites[i];
        bool acl = p->devices && i >= p->pre_init;
        CU_pSuite cs = CU_add_suite(s->name, acl ? acl_suite_init : s->init, s->clean);
        if (!cs)
            return false;
        for (size_t j = 0; j < s->n; j++)
            if ((!only || strstr(s->tests[j].name, only)) &&
                !CU_add_test(cs, s->tests[j].name, s->tests[j].fn))
                return false;
    }
    return true;
}

int test_main(const TestProgram *p)
{
    g_prog = p;
    while (g_nemus < TEST_MAX_EMUS && p->emus[g_nemus].emu)
        g_nemus++;
    while (g_nsuites < TEST_MAX_SUITES && p->suites[g_nsuites].name)
        g_nsuites++;
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IONBF, 0);
    size_t started = 0;
    bool ok = true;
    while (ok && started < g_nemus)
        ok = prog_emu_start(p, &p->emus[started++]);
    int rc = 1;
    if (ok && CU_initialize_registry() == CUE_SUCCESS) {
        if (prog_register(p)) {
            double t0 = now_s();
            rc = cu_run_all();
            if (g_ntimes > 0) {
                double total = now_s() - t0;
                printf("\nRun times:\n");
                for (int i = 0; i < g_ntimes; i++)
                    printf("  %-36s %8.3f s\n", g_times[i].name, g_times[i].secs);
                printf("  %-36s %8.3f s\n", "total", total);
            }
        } else {
            fprintf(stderr, "%s: cannot register tests: %s\n", p->name, CU_get_error_msg());
            CU_cleanup_registry();
        }
    }
    if (g_acl_ready && !acl_teardown(p))
        rc = 1;
    while (started > 0)
        emu_stop(p->emus[--started].emu);
    return rc;
}

int api_run(const char *prog, bool init, const TestSuite *suites, size_t n)
{
    TestProgram p = {
        .name = prog, .emus = { EMU(&g_api_emu, "a2") }, .ctx = &g_api_ctx0,
        .devices = init ? DEV(0) : 0, .reset = init ? DEV(0) : 0,
    };
    if (n > TEST_MAX_SUITES) {
        fprintf(stderr, "%s: more than %d suites\n", prog, TEST_MAX_SUITES);
        return 1;
    }
    memcpy(p.suites, suites, n * sizeof(*suites));
    g_api_prog = prog;
    return test_main(&p);
}
