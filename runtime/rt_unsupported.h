/* npu-emu: record "not supported" as the thread's last error and return it (ACL_ERROR_RT_FEATURE_NOT_SUPPORT); fn names the API entry point. */
#ifndef NPU_EMU_RUNTIME_RT_UNSUPPORTED_H
#define NPU_EMU_RUNTIME_RT_UNSUPPORTED_H

#include "acl/acl_base.h"

aclError rt_unsupported(const char *fn);

#endif /* NPU_EMU_RUNTIME_RT_UNSUPPORTED_H */
