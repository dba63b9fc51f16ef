/*
 * conn.c - the runtime's connection to npu-emu: finding or starting the
 * emulator (the embedded default), the handshake, request round trips over the
 * shared-memory channel, memory-object fds from the socket, stream waits.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "npuemu/futex.h"
#include "rt.h"

#define RT_CONNECT_TIMEOUT_MS 10000
#define RT_WAIT_SLICE_NS      100000000 /* re-check the emulator's health every 100 ms */
#define RT_POLL_NS            30000     /* poll this long for an answer before sleeping */

static char *socket_path(void)
{
    const char *env = getenv("NPU_EMU_SOCKET");
    if (env && *env)
        return g_strdup(env);
    return g_strdup_printf(EMU_DEFAULT_SOCKET_FMT, (unsigned)getuid());
}

/* The npu-emu binary: $NPU_EMU_BIN, else next to this library (build tree:
 * build/runtime/ -> build/emu/; install tree: lib64/ -> bin/), else $PATH. */
static char *find_emulator(void)
{
    const char *env = getenv("NPU_EMU_BIN");
    if (env && *env)
        return g_strdup(env);
    Dl_info info;
    if (dladdr((void *)find_emulator, &info) && info.dli_fname) {
        char *dir = g_path_get_dirname(info.dli_fname);
        const char *rel[] = { "../emu/npu-emu", "npu-emu", "../bin/npu-emu" };
        for (size_t i = 0; i < G_N_ELEMENTS(rel); i++) {
            char *p = g_build_filename(dir, rel[i], NULL);
            if (access(p, X_OK) == 0) {
                g_free(dir);
                return p;
            }
            g_free(p);
        }
        g_free(dir);
    }
    return g_find_program_in_path("npu-emu");
}

/* Starts a detached emulator that outlives us and exits when idle. */
static bool spawn_emulator(const char *path)
{
    char *bin = find_emulator();
    if (!bin)
        return false;
    const char *profile = getenv("NPU_EMU_PROFILE");
    const char *servers = getenv("NPU_EMU_SERVERS");
    const char *idle = getenv("NPU_EMU_IDLE_EXIT");
    char *log = g_strdup_printf("%s.log", path);
    /* Everything the child needs is built before fork: only async-signal-safe
     * calls may run between fork and exec in a threaded process. */
    char *argv[] = {
        bin, "--socket", (char *)path, "--profile", (char *)(profile && *profile ? profile : "a2"),
        "--servers", (char *)(servers && *servers ? servers : "1"),
        "--idle-exit", (char *)(idle && *idle ? idle : "30"), "--log", log, NULL,
    };
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        if (fork() != 0)
            _exit(0);
        /* The emulator outlives us: it must not hold the application's pipes,
         * files or locks, its working directory, or its blocked signals. */
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        close_range(3, ~0u, 0);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        if (chdir("/") != 0)
            _exit(126);
        execv(bin, argv);
        _exit(127);
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    g_free(log);
    g_free(bin);
    return pid > 0;
}

static int try_connect(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(addr.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Receives one message and at most one fd; returns bytes or -1. */
static ssize_t recv_with_fd(int sock, void *buf, size_t len, int *fd)
{
    union {
        char b[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
                          .msg_controllen = sizeof(u.b) };
    ssize_t n;
    do
        n = recvmsg(sock, &msg, MSG_WAITALL | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    *fd = -1;
    if (msg.msg_flags & MSG_CTRUNC)
        return n;       /* the fd did not fit (our fd table is full): it is lost */
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (n > 0 && c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
        memcpy(fd, CMSG_DATA(c), sizeof(int));
    return n;
}

static aclError handshake(RtConn *c, int sock)
{
    const char *srv = getenv("NPU_EMU_SERVER");
    EmuHello hello = { .magic = EMU_PROTO_MAGIC, .version = EMU_PROTO_VERSION,
                       .server = srv && *srv ? atoi(srv) : 0 };
    if (send(sock, &hello, sizeof(hello), MSG_NOSIGNAL) != (ssize_t)sizeof(hello))
        return ACL_ERROR_RT_SOCKET_CLOSE;
    struct pollfd p = { .fd = sock, .events = POLLIN };
    if (poll(&p, 1, RT_CONNECT_TIMEOUT_MS) <= 0)
        return ACL_ERROR_RT_SOCKET_CLOSE;
    int fd;
    ssize_t n = recv_with_fd(sock, &c->welcome, sizeof(c->welcome), &fd);
    if (n != (ssize_t)sizeof(c->welcome) || c->welcome.magic != EMU_PROTO_MAGIC) {
        if (fd >= 0)
            close(fd);
        return ACL_ERROR_RT_SOCKET_CLOSE;
    }
    if (c->welcome.status != ACL_SUCCESS) {
        if (fd >= 0)
            close(fd);
        return c->welcome.status;
    }
    if (fd < 0 || c->welcome.chan_size != EMU_CHAN_SIZE ||
        c->welcome.version != EMU_PROTO_VERSION) {
        if (fd >= 0)
            close(fd);
        return ACL_ERROR_RT_DRV_INTERNAL_ERROR;
    }
    void *map = mmap(NULL, EMU_CHAN_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return ACL_ERROR_RT_DRV_INTERNAL_ERROR;
    /* A forked child must not inherit our session's channel. */
    madvise(map, EMU_CHAN_SIZE, MADV_DONTFORK);
    c->chan = map;
    c->hdr = map;
    c->slots = (EmuSlot *)(c->chan + c->hdr->slots_off);
    c->states = (EmuStreamState *)(c->chan + c->hdr->streams_off);
    c->sock = sock;
    return ACL_SUCCESS;
}

aclError rt_conn_open(RtConn *c)
{
    char *path = socket_path();
    bool spawned = false;
    int64_t deadline = now_ms() + RT_CONNECT_TIMEOUT_MS;
    aclError err = ACL_ERROR_RT_DEV_SETUP_ERROR;

    memset(c, 0, sizeof(*c));
    c->sock = -1;
    pthread_mutex_init(&c->fd_lock, NULL);
    for (;;) {
        int sock = try_connect(path);
        if (sock >= 0) {
            err = handshake(c, sock);
            if (err == ACL_SUCCESS)
                break;
            close(sock);
            /* An emulator that was just exiting when we came: start another. */
            if (err != ACL_ERROR_RT_SOCKET_CLOSE || now_ms() > deadline)
                break;
            spawned = false;
        } else if (errno == EACCES || errno == EPERM) {
            err = ACL_ERROR_RT_NO_PERMISSION;   /* another user's emulator */
            break;
        } else if (errno != ENOENT && errno != ECONNREFUSED) {
            break;
        } else if (!spawned) {
            spawned = spawn_emulator(path);
            if (!spawned)
                break;
        }
        if (now_ms() > deadline)
            break;
        g_usleep(5000);
    }
    g_free(path);
    return err;
}

void rt_conn_close(RtConn *c)
{
    if (c->chan)
        munmap(c->chan, EMU_CHAN_SIZE);
    if (c->sock >= 0)
        close(c->sock);
    for (unsigned i = 0; i < EMU_CHAN_SLOTS; i++)
        if (c->stash[i].tag)
            close(c->stash[i].fd);
    pthread_mutex_destroy(&c->fd_lock);
    memset(c, 0, sizeof(*c));
    c->sock = -1;
}

/* True when the emulator is gone (it ended our session or its socket closed). */
static bool conn_dead(RtConn *c)
{
    if (c->broken || __atomic_load_n(&c->hdr->dead, __ATOMIC_ACQUIRE))
        return c->broken = true;
    struct pollfd p = { .fd = c->sock, .events = 0 };
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)))
        return c->broken = true;
    return false;
}

static int take_fd(RtConn *c, uint32_t tag)
{
    int fd = -1;
    pthread_mutex_lock(&c->fd_lock);
    for (unsigned i = 0; i < EMU_CHAN_SLOTS; i++)
        if (c->stash[i].tag == tag) {
            fd = c->stash[i].fd;
            c->stash[i].tag = 0;
            goto out;
        }
    /* The fd was sent before the slot was marked DONE, so it is already queued;
     * fds of other threads' calls may come first: keep them for their owners. */
    for (;;) {
        EmuFdMsg m;
        int got;
        if (recv_with_fd(c->sock, &m, sizeof(m), &got) != (ssize_t)sizeof(m)) {
            c->broken = true;
            break;
        }
        if (m.tag == tag) {
            fd = got;   /* -1 if it could not be received: this call fails alone */
            break;
        }
        if (got < 0)
            continue;
        unsigned i;
        for (i = 0; i < EMU_CHAN_SLOTS && c->stash[i].tag; i++)
            ;
        if (i == EMU_CHAN_SLOTS) {
            close(got);
            continue;
        }
        c->stash[i] = (RtFdStash){ .tag = m.tag, .fd = got };
    }
out:
    pthread_mutex_unlock(&c->fd_lock);
    return fd;
}

static unsigned take_slot(RtConn *c)
{
    for (;;) {
        uint64_t busy = __atomic_load_n(&c->slot_busy, __ATOMIC_RELAXED);
        if (busy != UINT64_MAX) {
            unsigned i = (unsigned)__builtin_ctzll(~busy);
            if (__atomic_compare_exchange_n(&c->slot_busy, &busy, busy | (1ull << i), false,
                                            __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
                return i;
        } else {
            sched_yield();
        }
    }
}

aclError rt_call(uint32_t cmd, const void *req, uint32_t req_len, void *resp,
                 uint32_t resp_len, int *fd_out)
{
    RtConn *c = &g_rt.conn;
    if (fd_out)
        *fd_out = -1;
    if (!c->hdr || c->broken)
        return ACL_ERROR_RT_SOCKET_CLOSE;
    unsigned i = take_slot(c);
    EmuSlot *s = &c->slots[i];
    s->cmd = cmd;
    s->req_len = req_len;
    if (req_len)
        memcpy(s->req, req, req_len);
    s->client_waiting = 0;
    __atomic_store_n(&s->state, EMU_SLOT_POSTED, __ATOMIC_SEQ_CST);
    __atomic_or_fetch(&c->hdr->posted, 1ull << i, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&c->hdr->doorbell, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&c->hdr->server_sleeping, __ATOMIC_SEQ_CST))
        emu_futex_wake(&c->hdr->doorbell, 1);

    aclError err;
    /* Most requests are answered within a few microseconds: poll briefly before
     * paying for a sleep. */
    uint64_t deadline = emu_now_ns() + RT_POLL_NS;
    do {
        if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == EMU_SLOT_DONE)
            goto done;
    } while (emu_poll_step(deadline));
    __atomic_store_n(&s->client_waiting, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&s->state, __ATOMIC_SEQ_CST) != EMU_SLOT_DONE) {
        emu_futex_wait(&s->state, EMU_SLOT_POSTED, RT_WAIT_SLICE_NS);
        if (__atomic_load_n(&s->state, __ATOMIC_SEQ_CST) != EMU_SLOT_DONE && conn_dead(c)) {
            /* The slot stays busy forever: the channel is dead anyway. */
            return ACL_ERROR_RT_SOCKET_CLOSE;
        }
    }
done:
    err = s->status;
    if (err == ACL_SUCCESS && resp && resp_len) {
        if (s->resp_len != resp_len)
            err = ACL_ERROR_RT_DRV_INTERNAL_ERROR;
        else
            memcpy(resp, s->resp, resp_len);
    }
    uint32_t tag = s->fd_tag;
    __atomic_store_n(&s->state, EMU_SLOT_FREE, __ATOMIC_RELEASE);
    __atomic_and_fetch(&c->slot_busy, ~(1ull << i), __ATOMIC_RELEASE);
    if (tag) {
        int fd = take_fd(c, tag);
        if (fd_out && err == ACL_SUCCESS)
            *fd_out = fd;
        else if (fd >= 0)
            close(fd);
        if (fd < 0 && err == ACL_SUCCESS)
            err = c->broken ? ACL_ERROR_RT_SOCKET_CLOSE : ACL_ERROR_RT_RESOURCE_ALLOC_FAIL;
    }
    return err;
}

aclError rt_wait_stream(uint32_t id, uint32_t seq, int64_t timeout_ms)
{
    RtConn *c = &g_rt.conn;
    if (!c->states || id >= EMU_CHAN_STREAMS)
        return ACL_ERROR_RT_SOCKET_CLOSE;
    EmuStreamState *st = &c->states[id];
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : now_ms() + timeout_ms;
    uint64_t poll_until = emu_now_ns() + RT_POLL_NS;
    do {
        if (emu_seq_reached(__atomic_load_n(&st->done, __ATOMIC_ACQUIRE), seq))
            return ACL_SUCCESS;
    } while (emu_poll_step(poll_until));
    __atomic_add_fetch(&st->waiters, 1, __ATOMIC_SEQ_CST);
    aclError err = ACL_SUCCESS;
    for (;;) {
        uint32_t done = __atomic_load_n(&st->done, __ATOMIC_SEQ_CST);
        if (emu_seq_reached(done, seq))
            break;
        if (conn_dead(c)) {
            err = ACL_ERROR_RT_SOCKET_CLOSE;
            break;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            err = ACL_ERROR_RT_STREAM_SYNC_TIMEOUT;
            break;
        }
        int64_t slice = left < RT_WAIT_SLICE_NS / 1000000 ? left * 1000000 : RT_WAIT_SLICE_NS;
        emu_futex_wait(&st->done, done, slice);
    }
    __atomic_sub_fetch(&st->waiters, 1, __ATOMIC_SEQ_CST);
    return err;
}
