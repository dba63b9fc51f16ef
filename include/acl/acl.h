/*
 * npu-emu: acl/acl.h -- umbrella header of the ACL API.
 *
 * Concepts: includes the runtime API (acl_rt.h, which brings acl_base.h and
 * acl_rt_allocator.h) and declares the process-level calls: aclInit /
 * aclFinalize and their callbacks, version and feature queries, and the
 * platform (SoC) information queries.
 *
 * aclInit must be the first ACL call of a process. aclFinalize undoes every
 * aclInit at once; aclFinalizeReference undoes one (reference counted).
 */
#ifndef NPU_EMU_ACL_ACL_H
#define NPU_EMU_ACL_ACL_H

#include <stdint.h>
#include <stddef.h>

#include "acl_rt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Platform information enums (chapter 25-02), used by aclplatform*
 * ------------------------------------------------------------------------ */

typedef enum aclplatformCoreType {
    ACL_PLATFORM_CORE_TYPE_AI_CORE = 0,     /* cube core */
    ACL_PLATFORM_CORE_TYPE_VECTOR_CORE = 1
} aclplatformCoreType;

/* All results are returned as text; numbers in decimal. */
typedef enum aclplatformDevInfo {
    ACL_PLATFORM_AICORE_CNT = 0,
    ACL_PLATFORM_AICORE_UB_SIZE = 1,     /* bytes */
    ACL_PLATFORM_CUBE_CORE_CNT = 2,
    ACL_PLATFORM_VECTOR_CORE_CNT = 3,
    ACL_PLATFORM_L2_SIZE = 4,            /* bytes */
    ACL_PLATFORM_MEMORY_SIZE = 5,        /* bytes */
    ACL_PLATFORM_CUBE_FREQ = 6,          /* MHz */
    ACL_PLATFORM_VEC_FREQ = 7,           /* MHz */
    ACL_PLATFORM_BT_SIZE = 8,            /* bytes */
    ACL_PLATFORM_L0_A_SIZE = 9,          /* bytes */
    ACL_PLATFORM_L0_B_SIZE = 10,         /* bytes */
    ACL_PLATFORM_L0_C_SIZE = 11,         /* bytes */
    ACL_PLATFORM_L1_SIZE = 12,           /* bytes */
    ACL_PLATFORM_SOC_VERSION = 13,
    ACL_PLATFORM_AIC_VERSION = 14,
    ACL_PLATFORM_NPU_ARCH = 15,          /* an aclplatformNpuArch value */
    ACL_PLATFORM_MEMORY_TYPE = 16        /* an aclplatformLocalMemType value */
} aclplatformDevInfo;

typedef enum aclplatformLocalMemType {
    L0_A = 0,
    L0_B = 1,
    L0_C = 2,
    L1 = 3,
    L2 = 4,
    UB = 5,
    HBM = 6
} aclplatformLocalMemType;

/* NPU architecture versions; A2 and A3 are both DAV_2201. */
typedef enum aclplatformNpuArch {
    DAV_1001 = 1001,
    DAV_2002 = 2002,
    DAV_2102 = 2102,
    DAV_2201 = 2201,
    DAV_3002 = 3002,
    DAV_3003 = 3003,
    DAV_3004 = 3004,
    DAV_3102 = 3102,
    DAV_3113 = 3113,
    DAV_3505 = 3505,
    DAV_3510 = 3510,
    DAV_5102 = 5102,
    DAV_5162 = 5162,
    DAV_RESV = 0xFFFF
} aclplatformNpuArch;

/* ------------------------------------------------------------------------
 * Functions
 * ------------------------------------------------------------------------ */

/* chapter 02 */
/* Initialisation and finalisation. */

/* Initialise ACL; configPath names a JSON file or is NULL. A repeated call
 * returns ACL_ERROR_REPEAT_INITIALIZE, which callers may ignore. */
ACL_FUNC_VISIBILITY aclError aclInit(const char *configPath);
/* Finalise, whatever the number of aclInit calls. */
ACL_FUNC_VISIBILITY aclError aclFinalize(void);
/* Drop one aclInit reference; finalise when it reaches 0. *refCount (may be
 * NULL) receives the remaining count. */
ACL_FUNC_VISIBILITY aclError aclFinalizeReference(uint64_t *refCount);
/* Observers of aclInit / aclFinalize, one list per component type. */
ACL_FUNC_VISIBILITY aclError aclInitCallbackRegister(aclRegisterCallbackType type, aclInitCallbackFunc cbFunc, void *userData);
ACL_FUNC_VISIBILITY aclError aclInitCallbackUnRegister(aclRegisterCallbackType type, aclInitCallbackFunc cbFunc);
ACL_FUNC_VISIBILITY aclError aclFinalizeCallbackRegister(aclRegisterCallbackType type, aclFinalizeCallbackFunc cbFunc,
                                                         void *userData);
ACL_FUNC_VISIBILITY aclError aclFinalizeCallbackUnRegister(aclRegisterCallbackType type, aclFinalizeCallbackFunc cbFunc);

/* chapter 24 */
/* Versions, features and platform information. */

/* Deprecated: use aclsysGetVersionNum / aclsysGetVersionStr. */
ACL_DEPRECATED_MESSAGE("use aclsysGetVersionNum or aclsysGetVersionStr")
ACL_FUNC_VISIBILITY aclError aclrtGetVersion(int32_t *majorVersion, int32_t *minorVersion, int32_t *patchVersion);
/* Deprecated: use aclsysGetVersionStr. Fails if the package is not installed. */
ACL_DEPRECATED_MESSAGE("use aclsysGetVersionStr")
ACL_FUNC_VISIBILITY aclError aclsysGetCANNVersion(aclCANNPackageName name, aclCANNPackageVersion *version);
/* Features supported here; the array is owned by the library. */
ACL_FUNC_VISIBILITY aclError aclGetCannAttributeList(const aclCannAttr **cannAttrList, size_t *num);
/* *value = 1 if cannAttr is supported, else 0. */
ACL_FUNC_VISIBILITY aclError aclGetCannAttribute(aclCannAttr cannAttr, int32_t *value);
ACL_FUNC_VISIBILITY aclError aclGetDeviceCapability(uint32_t deviceId, aclDeviceInfo deviceInfo, int64_t *value);
/* Version of package pkgName as a number. */
ACL_FUNC_VISIBILITY aclError aclsysGetVersionNum(char *pkgName, int32_t *versionNum);
/* Version of package pkgName as text; versionStr holds ACL_PKG_VERSION_MAX_SIZE bytes. */
ACL_FUNC_VISIBILITY aclError aclsysGetVersionStr(char *pkgName, char *versionStr);
/* Hardware figure of the SoC as text; fails if it does not fit in maxLen bytes. */
ACL_FUNC_VISIBILITY aclError aclplatformGetDeviceInfo(aclplatformDevInfo infoType, char *value, uint32_t maxLen);
/* Properties of an instruction on a core type, as text. */
ACL_FUNC_VISIBILITY aclError aclplatformGetInstructionInfo(aclplatformCoreType type, const char *instruction, char *value,
                                                           uint32_t maxLen);

#ifdef __cplusplus
}
#endif

#endif /* NPU_EMU_ACL_ACL_H */
