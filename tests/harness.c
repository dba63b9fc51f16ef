/*
 * harness.c - start the real emulator and real client processes for tests.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <fcntl.h>
#include <glib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

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
    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        waitpid(e->pid, NULL, 0);
        e->pid = 0;
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
