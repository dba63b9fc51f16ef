/*
 * server.c - listening socket, accept loop, idle exit, operator log.
 */
#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "session.h"

/* ---- operator log ---- */

static int log_fd = 2;
static bool log_quiet;

void emu_log_open(const char *path, bool quiet)
{
    log_quiet = quiet;
    if (path) {
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0)
            log_fd = fd;
    }
}

void emu_log(const char *fmt, ...)
{
    if (log_quiet)
        return;
    char line[512];
    GDateTime *now = g_date_time_new_now_local();
    gchar *stamp = g_date_time_format(now, "%Y-%m-%dT%H:%M:%S");
    int n = snprintf(line, sizeof(line), "%s.%03d npu-emu[%d]: ", stamp,
                     g_date_time_get_microsecond(now) / 1000, (int)getpid());
    g_free(stamp);
    g_date_time_unref(now);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t unused = write(log_fd, line, (size_t)n);
    (void)unused;
}

/* ---- server ---- */

char *emu_default_socket_path(void)
{
    const char *env = g_getenv("NPU_EMU_SOCKET");
    if (env && *env)
        return g_strdup(env);
    return g_strdup_printf(EMU_DEFAULT_SOCKET_FMT, (unsigned)getuid());
}

EmuServer *emu_server_new(const EmuOptions *opt, GError **errp)
{
    const EmuProfile *p = profile_find(opt->profile ? opt->profile : "a2");
    if (!p) {
        g_set_error(errp, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "unknown profile '%s' (known: a2, a3)", opt->profile);
        return NULL;
    }
    int nservers = opt->servers > 0 ? opt->servers : 1;
    if (nservers > p->max_servers) {
        g_set_error(errp, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "profile %s supports at most %d server(s)", p->name, p->max_servers);
        return NULL;
    }
    EmuServer *srv = g_new0(EmuServer, 1);
    srv->opt = *opt;
    srv->profile = p;
    srv->nservers = nservers;
    srv->uid = getuid();
    srv->listen_fd = srv->lock_fd = srv->epoll_fd = -1;
    srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g_mutex_init(&srv->lock);
    srv->sessions = g_hash_table_new(g_direct_hash, g_direct_equal);
    srv->pids = g_hash_table_new(g_direct_hash, g_direct_equal);
    for (int s = 0; s < nservers; s++)
        for (int d = 0; d < p->devices_per_server; d++) {
            uint64_t lo = EMU_VA_WINDOW_LO + (uint64_t)d * EMU_VA_DEVICE_SPAN + EMU_VA_HEAP_OFFSET;
            srv->devices[s][d] = device_new(d, p->hbm_bytes, lo, lo + EMU_VA_MALLOC_SPAN);
            srv->devices[s][d]->tag = (uint32_t)(s * EMU_MAX_DEVICES + d);
            srv->by_tag[s * EMU_MAX_DEVICES + d] = srv->devices[s][d];
        }
    srv->shares = share_registry_new();
    /* Host memory for aclrtMallocPhysical with a HOST location: a pool as
     * large as the machine's RAM, in whole GiB; it has no VA heap. */
    uint64_t ram = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t host_bytes = ram >= (2ull << 30) ? ram & ~((1ull << 30) - 1) : (1ull << 30);
    for (int s = 0; s < nservers; s++) {
        srv->host[s] = device_new(EMU_MAX_DEVICES, host_bytes, 0, 0);
        srv->host[s]->tag = EMU_HOST_TAG(s);
        srv->by_tag[EMU_HOST_TAG(s)] = srv->host[s];
    }
    return srv;
}

bool emu_server_listen(EmuServer *srv, GError **errp)
{
    const char *path = srv->opt.socket_path;
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(addr.sun_path)) {
        g_set_error(errp, G_FILE_ERROR, G_FILE_ERROR_NAMETOOLONG,
                    "socket path too long: %s", path);
        return false;
    }
    /* The lock file decides which of several emulators started at once keeps the
     * socket; the losers leave it alone. */
    gchar *lock_path = g_strdup_printf("%s.lock", path);
    srv->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    g_free(lock_path);
    if (srv->lock_fd < 0 || flock(srv->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        g_set_error(errp, G_FILE_ERROR, G_FILE_ERROR_EXIST,
                    "another npu-emu already serves %s", path);
        return false;
    }
    strcpy(addr.sun_path, path);
    unlink(path);
    srv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (srv->listen_fd < 0 || bind(srv->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        chmod(path, srv->opt.socket_mode ? srv->opt.socket_mode : 0600) < 0 ||
        listen(srv->listen_fd, 128) < 0) {
        g_set_error(errp, G_FILE_ERROR, g_file_error_from_errno(errno), "cannot listen on %s: %s",
                    path, g_strerror(errno));
        return false;
    }
    srv->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };
    epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, srv->listen_fd, &ev);
    ev.data.u64 = UINT64_MAX;
    epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, srv->stop_fd, &ev);
    srv->idle_since = g_get_monotonic_time();
    emu_log("serving profile %s (%s), %d server(s) x %d devices, %" G_GUINT64_FORMAT
            " GiB HBM each, on %s", srv->profile->name, srv->profile->soc_name, srv->nservers,
            srv->profile->devices_per_server, srv->profile->hbm_bytes >> 30, path);
    return true;
}

void emu_server_stop(EmuServer *srv)
{
    uint64_t one = 1;
    ssize_t unused = write(srv->stop_fd, &one, sizeof(one));
    (void)unused;
}

static bool idle_expired(EmuServer *srv)
{
    if (srv->opt.idle_exit_sec <= 0)
        return false;
    g_mutex_lock(&srv->lock);
    bool expired = srv->live == 0 &&
                   g_get_monotonic_time() - srv->idle_since >
                       (gint64)srv->opt.idle_exit_sec * G_USEC_PER_SEC;
    g_mutex_unlock(&srv->lock);
    return expired;
}

static void kill_session(EmuServer *srv, uint32_t id)
{
    g_mutex_lock(&srv->lock);
    Session *s = g_hash_table_lookup(srv->sessions, GUINT_TO_POINTER(id));
    if (s)
        emu_session_kill(s);
    g_mutex_unlock(&srv->lock);
}

static void end_all_sessions(EmuServer *srv)
{
    g_mutex_lock(&srv->lock);
    GHashTableIter it;
    gpointer key, value;
    g_hash_table_iter_init(&it, srv->sessions);
    while (g_hash_table_iter_next(&it, &key, &value))
        emu_session_kill(value);
    g_mutex_unlock(&srv->lock);
    /* Session threads (handshakes included) finish by reclaiming themselves. */
    for (int i = 0; i < 1000; i++) {
        g_mutex_lock(&srv->lock);
        unsigned left = srv->live;
        g_mutex_unlock(&srv->lock);
        if (!left)
            break;
        g_usleep(10000);
    }
}

/* Stops taking clients: the socket disappears and the start-up lock is free,
 * so a client arriving now starts a new emulator instead of reaching this one. */
static void stop_listening(EmuServer *srv)
{
    if (srv->listen_fd >= 0) {
        unlink(srv->opt.socket_path);
        close(srv->listen_fd);
        srv->listen_fd = -1;
    }
    if (srv->lock_fd >= 0) {
        close(srv->lock_fd);
        srv->lock_fd = -1;
    }
}

void emu_server_run(EmuServer *srv)
{
    struct epoll_event evs[32];
    for (;;) {
        int n = epoll_wait(srv->epoll_fd, evs, 32, 500);
        if (n < 0 && errno != EINTR)
            break;
        bool stop = false;
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == UINT64_MAX) {
                stop = true;
            } else if (tag == 0) {
                int c = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (c >= 0) {
                    emu_session_start(srv, c);
                } else if (errno == EMFILE || errno == ENFILE) {
                    /* Out of fds: the listen socket stays readable; do not spin. */
                    emu_log("out of file descriptors: a client has to wait");
                    g_usleep(100000);
                }
            } else {
                /* A client never writes after its greeting: readable means closed. */
                kill_session(srv, (uint32_t)tag);
            }
        }
        if (stop) {
            emu_log("stop requested");
            break;
        }
        if (idle_expired(srv)) {
            /* Accepts happen on this thread and are counted at once, so nobody
             * is half-connected now; connections still in the backlog are
             * reset and their clients start a new emulator. */
            emu_log("idle for %d s with no clients: exiting", srv->opt.idle_exit_sec);
            break;
        }
    }
    stop_listening(srv);
    end_all_sessions(srv);
}

void emu_server_free(EmuServer *srv)
{
    if (!srv)
        return;
    stop_listening(srv);
    if (srv->live > 0) {
        /* A session thread is still stuck (a task that will not end): its
         * memory must outlive it; the process is exiting anyway. */
        emu_log("%u session(s) did not finish: leaving their state to the exit", srv->live);
        return;
    }
    share_registry_destroy(srv->shares);   /* drops its references first */
    for (int s = 0; s < srv->nservers; s++) {
        for (int d = 0; d < EMU_MAX_DEVICES; d++)
            device_destroy(srv->devices[s][d]);
        device_destroy(srv->host[s]);
    }
    if (srv->epoll_fd >= 0)
        close(srv->epoll_fd);
    close(srv->stop_fd);
    g_hash_table_destroy(srv->sessions);
    g_hash_table_destroy(srv->pids);
    g_mutex_clear(&srv->lock);
    g_free(srv);
}
