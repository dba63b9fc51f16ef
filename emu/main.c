/*
 * main.c - npu-emu: parse options, run the server.
 */
#define _GNU_SOURCE
#include <glib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "server.h"

static EmuServer *running;

static void on_signal(int sig)
{
    (void)sig;
    if (running)
        emu_server_stop(running);
}

int main(int argc, char **argv)
{
    gchar *socket_path = NULL, *profile = NULL, *log_path = NULL;
    gint servers = 1, idle = 0;
    gchar *mode = NULL;
    gboolean quiet = FALSE, list = FALSE;
    GOptionEntry entries[] = {
        { "socket", 's', 0, G_OPTION_ARG_FILENAME, &socket_path,
          "Unix socket to serve (default: $NPU_EMU_SOCKET, else /tmp/npu-emu-<uid>.sock)",
          "PATH" },
        { "profile", 'p', 0, G_OPTION_ARG_STRING, &profile,
          "Hardware profile: a2 (8 x Ascend 910B, 64 GiB HBM each) or a3 (16 x Ascend 910C "
          "dies per server, 64 GiB each); default $NPU_EMU_PROFILE, else a2", "NAME" },
        { "servers", 'n', 0, G_OPTION_ARG_INT, &servers,
          "Servers in the A3 SuperPoD (1-8; clients pick one with NPU_EMU_SERVER)", "N" },
        { "idle-exit", 'i', 0, G_OPTION_ARG_INT, &idle,
          "Exit after SECONDS without any client (0: run until SIGTERM/SIGINT)", "SECONDS" },
        { "log", 'l', 0, G_OPTION_ARG_FILENAME, &log_path,
          "Append the operator log to FILE instead of stderr", "FILE" },
        { "socket-mode", 'm', 0, G_OPTION_ARG_STRING, &mode,
          "Permissions of the socket file, octal (default 0600). Other users are refused\n"
          "                             by their kernel-verified uid whatever the mode", "MODE" },
        { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "Write no log", NULL },
        { "list-profiles", 0, 0, G_OPTION_ARG_NONE, &list, "List the profiles and exit", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    GOptionContext *ctx = g_option_context_new("- emulated Ascend NPU devices for libascendcl");
    g_option_context_set_summary(ctx,
        "Runs the device side of an emulated Atlas A2 / A3 server: HBM, stream engines and\n"
        "the sessions of every process that uses npu-emu's libascendcl.so.  Clients connect\n"
        "over the Unix socket; only the user running npu-emu may connect.  A client that\n"
        "finds no emulator starts one itself (with --idle-exit), so running this by hand\n"
        "is only needed to choose options or watch the log.");
    g_option_context_add_main_entries(ctx, entries, NULL);
    GError *err = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        fprintf(stderr, "npu-emu: %s (see --help)\n", err->message);
        return 2;
    }
    g_option_context_free(ctx);
    if (list) {
        for (const EmuProfile *const *p = profile_all(); *p; p++)
            printf("%-4s %-16s %s\n", (*p)->name, (*p)->soc_name, (*p)->description);
        return 0;
    }

    if (!socket_path)
        socket_path = emu_default_socket_path();
    EmuOptions opt = {
        .socket_path = socket_path,
        .profile = profile ? profile : g_getenv("NPU_EMU_PROFILE"),
        .servers = servers,
        .idle_exit_sec = idle,
        .log_path = log_path,
        .quiet = quiet,
        .socket_mode = mode ? (unsigned)strtoul(mode, NULL, 8) & 0777u : 0600u,
    };
    if (!opt.profile || !*opt.profile)
        opt.profile = "a2";
    emu_log_open(log_path, quiet);
    EmuServer *srv = emu_server_new(&opt, &err);
    if (!srv) {
        fprintf(stderr, "npu-emu: %s\n", err->message);
        return 2;
    }
    if (!emu_server_listen(srv, &err)) {
        /* Losing the start-up race to another emulator is not a failure. */
        int code = g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_EXIST) ? 3 : 1;
        emu_log("%s", err->message);
        emu_server_free(srv);
        return code;
    }
    /* Every memory object is an fd: use all the fds the hard limit allows. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    running = srv;
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    emu_server_run(srv);
    running = NULL;
    emu_server_free(srv);
    emu_log("exited");
    g_free(socket_path);
    g_free(profile);
    g_free(log_path);
    g_free(mode);
    return 0;
}
