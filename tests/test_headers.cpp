// test_headers.cpp - the public headers work from C++: they compile with
// warnings as errors, every declaration has C linkage (this links against
// libascendcl.so), and a call through them reaches the runtime.
#include "acl/acl.h"

#include <cstdio>
#include <cstring>

int main()
{
    // Before aclInit every runtime call reports "uninitialised".
    int32_t dev = -1;
    aclError e = aclrtGetDevice(&dev);
    if (e != ACL_ERROR_UNINITIALIZE) {
        std::printf("aclrtGetDevice before aclInit returned %d, expected %d\n", e,
                    ACL_ERROR_UNINITIALIZE);
        std::printf("0 passed, 1 failed\n");
        return 1;
    }
    // A few types and enums of chapter 25 as C++ sees them.
    aclrtPtrAttributes attrs;
    std::memset(&attrs, 0, sizeof(attrs));
    aclrtMemcpyKind kind = ACL_MEMCPY_DEFAULT;
    aclrtMemMallocPolicy policy = ACL_MEM_MALLOC_HUGE1G_ONLY_P2P;
    bool ok = sizeof(attrs) == 28 && kind == 4 && policy == 7 &&
              aclrtGetLastError(ACL_RT_THREAD_LEVEL) == ACL_ERROR_UNINITIALIZE;
    std::printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
    return ok ? 0 : 1;
}
