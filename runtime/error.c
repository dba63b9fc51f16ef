/*
 * error.c - the last error and recent error messages of each thread
 * (aclrtGetLastError, aclrtPeekAtLastError, aclGetRecentErrMsg).
 *
 * Every failing runtime call records its code as the thread's last error and
 * queues one message line; aclGetRecentErrMsg hands out the queue, newest line
 * first, and empties it.  Everything lives in thread-local storage, so no call
 * here takes a lock.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rt.h"
#include "rt_unsupported.h"

#define RT_MSG_MAX 4096

typedef struct RtThreadErr {
    aclError last;
    size_t len;
    char queue[RT_MSG_MAX];     /* newest line first */
    char handed[RT_MSG_MAX];    /* what the last aclGetRecentErrMsg returned */
} RtThreadErr;

static __thread RtThreadErr t_err;

aclError rt_set_error(aclError code)
{
    if (code != ACL_SUCCESS)
        t_err.last = code;
    return code;
}

aclError rt_fail(aclError code, const char *api, const char *fmt, ...)
{
    char line[512];
    int n = snprintf(line, sizeof(line), "%s failed (error %d): ", api, code);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof(line) - 2)
        n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t l = strnlen(line, sizeof(line) - 2);
    line[l++] = '\n';
    /* Newest first: push the queue down, dropping the oldest lines if full. */
    size_t keep = t_err.len;
    if (l + keep >= RT_MSG_MAX)
        keep = RT_MSG_MAX - 1 - l;
    memmove(t_err.queue + l, t_err.queue, keep);
    memcpy(t_err.queue, line, l);
    t_err.len = l + keep;
    t_err.queue[t_err.len] = '\0';
    return rt_set_error(code);
}

aclError rt_unsupported(const char *fn)
{
    return rt_fail(ACL_ERROR_RT_FEATURE_NOT_SUPPORT, fn,
                   "not supported by npu-emu (see docs/api-coverage.md)");
}

RT_EXPORT aclError aclrtGetLastError(aclrtLastErrLevel level)
{
    if (level != ACL_RT_THREAD_LEVEL)
        return ACL_ERROR_RT_PARAM_INVALID;
    aclError e = t_err.last;
    t_err.last = ACL_SUCCESS;
    return e;
}

RT_EXPORT aclError aclrtPeekAtLastError(aclrtLastErrLevel level)
{
    if (level != ACL_RT_THREAD_LEVEL)
        return ACL_ERROR_RT_PARAM_INVALID;
    return t_err.last;
}

RT_EXPORT const char *aclGetRecentErrMsg(void)
{
    if (t_err.len == 0)
        return NULL;
    memcpy(t_err.handed, t_err.queue, t_err.len + 1);
    t_err.len = 0;
    t_err.queue[0] = '\0';
    return t_err.handed;
}
