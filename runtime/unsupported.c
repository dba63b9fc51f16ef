/*
 * npu-emu: weak fallback definitions for every function of the public headers.
 *
 * Concepts: each entry point declared in include/acl/ (and base/err_msg.h) has
 * a weak definition here that reports the call as unsupported: it records
 * ACL_ERROR_RT_FEATURE_NOT_SUPPORT as the thread's last error through
 * rt_unsupported() and returns that code, or NULL / 0 / -1 for functions that
 * do not return aclError. A real implementation anywhere else in the library
 * is a strong definition and replaces the fallback at link time, so the
 * library always exports the complete API and a program built against the
 * CANN headers always links. Keep this file in step with the headers:
 * scripts/list-api gives the complete list.
 */
#include <stddef.h>
#include <stdint.h>

#include "acl/acl.h"
#include "rt_unsupported.h"

/* chapter 02: initialisation and finalisation */

__attribute__((weak)) aclError aclInit(const char *configPath)
{ (void)configPath; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclFinalize(void)
{ return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclFinalizeReference(uint64_t *refCount)
{ (void)refCount; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclInitCallbackRegister(aclRegisterCallbackType type, aclInitCallbackFunc cbFunc,
                                                       void *userData)
{ (void)type; (void)cbFunc; (void)userData; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclInitCallbackUnRegister(aclRegisterCallbackType type, aclInitCallbackFunc cbFunc)
{ (void)type; (void)cbFunc; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclFinalizeCallbackRegister(aclRegisterCallbackType type,
                                                           aclFinalizeCallbackFunc cbFunc, void *userData)
{ (void)type; (void)cbFunc; (void)userData; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclFinalizeCallbackUnRegister(aclRegisterCallbackType type,
                                                             aclFinalizeCallbackFunc cbFunc)
{ (void)type; (void)cbFunc; return rt_unsupported(__func__); }

/* chapter 04: device management */

__attribute__((weak)) aclError aclrtSetDevice(int32_t deviceId)
{ (void)deviceId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtResetDevice(int32_t deviceId)
{ (void)deviceId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtResetDeviceForce(int32_t deviceId)
{ (void)deviceId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetDevice(int32_t *deviceId)
{ (void)deviceId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetRunMode(aclrtRunMode *runMode)
{ (void)runMode; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSetTsDevice(aclrtTsId tsId)
{ (void)tsId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetDeviceCount(uint32_t *count)
{ (void)count; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetDeviceUtilizationRate(int32_t deviceId, aclrtUtilizationInfo *utilizationInfo)
{ (void)deviceId; (void)utilizationInfo; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtQueryDeviceStatus(int32_t deviceId, aclrtDeviceStatus *deviceStatus)
{ (void)deviceId; (void)deviceStatus; return rt_unsupported(__func__); }
__attribute__((weak)) const char * aclrtGetSocName(void)
{ (void)rt_unsupported(__func__); return NULL; }
__attribute__((weak)) aclError aclrtSetDeviceSatMode(aclrtFloatOverflowMode mode)
{ (void)mode; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetDeviceSatMode(aclrtFloatOverflowMode *mode)
{ (void)mode; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDeviceCanAccessPeer(int32_t *canAccessPeer, int32_t deviceId, int32_t peerDeviceId)
{ (void)canAccessPeer; (void)deviceId; (void)peerDeviceId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDeviceEnablePeerAccess(int32_t peerDeviceId, uint32_t flags)
{ (void)peerDeviceId; (void)flags; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDeviceDisablePeerAccess(int32_t peerDeviceId)
{ (void)peerDeviceId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDevicePeerAccessStatus(int32_t deviceId, int32_t peerDeviceId, int32_t *status)
{ (void)deviceId; (void)peerDeviceId; (void)status; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetOverflowStatus(void *outputAddr, size_t outputSize, aclrtStream stream)
{ (void)outputAddr; (void)outputSize; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtResetOverflowStatus(aclrtStream stream)
{ (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSynchronizeDevice(void)
{ return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSynchronizeDeviceWithTimeout(int32_t timeout)
{ (void)timeout; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetDeviceInfo(uint32_t deviceId, aclrtDevAttr attr, int64_t *value)
{ (void)deviceId; (void)attr; (void)value; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDeviceGetStreamPriorityRange(int32_t *leastPriority, int32_t *greatestPriority)
{ (void)leastPriority; (void)greatestPriority; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetDeviceCapability(int32_t deviceId, aclrtDevFeatureType devFeatureType,
                                                        int32_t *value)
{ (void)deviceId; (void)devFeatureType; (void)value; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetDevicesTopo(uint32_t deviceId, uint32_t otherDeviceId, uint64_t *value)
{ (void)deviceId; (void)otherDeviceId; (void)value; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtRegDeviceStateCallback(const char *regName, aclrtDeviceStateCallback callback,
                                                           void *args)
{ (void)regName; (void)callback; (void)args; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetLogicDevIdByUserDevId(const int32_t userDevid, int32_t *const logicDevId)
{ (void)userDevid; (void)logicDevId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetUserDevIdByLogicDevId(const int32_t logicDevId, int32_t *const userDevid)
{ (void)logicDevId; (void)userDevid; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetLogicDevIdByPhyDevId(const int32_t phyDevId, int32_t *const logicDevId)
{ (void)phyDevId; (void)logicDevId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetPhyDevIdByLogicDevId(const int32_t logicDevId, int32_t *const phyDevId)
{ (void)logicDevId; (void)phyDevId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetUserDevIdByPhyDevId(const int32_t phyDevId, int32_t *const userDevId)
{ (void)phyDevId; (void)userDevId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetPhyDevIdByUserDevId(const int32_t userDevId, int32_t *const phyDevId)
{ (void)userDevId; (void)phyDevId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDeviceGetUuid(int32_t deviceId, aclrtUuid *uuid)
{ (void)deviceId; (void)uuid; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDeviceGetPCIBusId(int32_t deviceId, char *pciBusId, int32_t len)
{ (void)deviceId; (void)pciBusId; (void)len; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDeviceGetByPCIBusId(const char *pciBusId, int32_t *deviceId)
{ (void)pciBusId; (void)deviceId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDeviceGetBareTgid(int32_t *pid)
{ (void)pid; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDeviceGetHostAtomicCapabilities(uint32_t *capabilities,
                                                                    const aclrtAtomicOperation *operations,
                                                                    const uint32_t count, int32_t deviceId)
{ (void)capabilities; (void)operations; (void)count; (void)deviceId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDeviceGetP2PAtomicCapabilities(uint32_t *capabilities,
                                                                   const aclrtAtomicOperation *operations,
                                                                   const uint32_t count, int32_t srcDeviceId,
                                                                   int32_t dstDeviceId)
{ (void)capabilities; (void)operations; (void)count; (void)srcDeviceId; (void)dstDeviceId;
  return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDeviceSetLimit(aclrtDeviceLimit limit, size_t value)
{ (void)limit; (void)value; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDeviceGetLimit(aclrtDeviceLimit limit, size_t *value)
{ (void)limit; (void)value; return rt_unsupported(__func__); }

/* chapter 05: context management */

__attribute__((weak)) aclError aclrtCreateContext(aclrtContext *context, int32_t deviceId)
{ (void)context; (void)deviceId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDestroyContext(aclrtContext context)
{ (void)context; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSetCurrentContext(aclrtContext context)
{ (void)context; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetCurrentContext(aclrtContext *context)
{ (void)context; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCtxSetSysParamOpt(aclSysParamOpt opt, int64_t value)
{ (void)opt; (void)value; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCtxGetSysParamOpt(aclSysParamOpt opt, int64_t *value)
{ (void)opt; (void)value; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCtxGetCurrentDefaultStream(aclrtStream *stream)
{ (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetPrimaryCtxState(int32_t deviceId, uint32_t *flags, int32_t *active)
{ (void)deviceId; (void)flags; (void)active; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCtxGetFloatOverflowAddr(void **overflowAddr)
{ (void)overflowAddr; return rt_unsupported(__func__); }

/* chapter 06: stream management */

__attribute__((weak)) aclError aclrtCreateStream(aclrtStream *stream)
{ (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCreateStreamWithConfig(aclrtStream *stream, uint32_t priority, uint32_t flag)
{ (void)stream; (void)priority; (void)flag; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDestroyStream(aclrtStream stream)
{ (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDestroyStreamForce(aclrtStream stream)
{ (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSetStreamOverflowSwitch(aclrtStream stream, uint32_t flag)
{ (void)stream; (void)flag; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetStreamOverflowSwitch(aclrtStream stream, uint32_t *flag)
{ (void)stream; (void)flag; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSetStreamFailureMode(aclrtStream stream, uint64_t mode)
{ (void)stream; (void)mode; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtStreamQuery(aclrtStream stream, aclrtStreamStatus *status)
{ (void)stream; (void)status; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSynchronizeStream(aclrtStream stream)
{ (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSynchronizeStreamWithTimeout(aclrtStream stream, int32_t timeout)
{ (void)stream; (void)timeout; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtStreamAbort(aclrtStream stream)
{ (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtStreamGetId(aclrtStream stream, int32_t *streamId)
{ (void)stream; (void)streamId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetStreamAvailableNum(uint32_t *streamCount)
{ (void)streamCount; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSetStreamAttribute(aclrtStream stream, aclrtStreamAttr stmAttrType,
                                                       aclrtStreamAttrValue *value)
{ (void)stream; (void)stmAttrType; (void)value; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetStreamAttribute(aclrtStream stream, aclrtStreamAttr stmAttrType,
                                                       aclrtStreamAttrValue *value)
{ (void)stream; (void)stmAttrType; (void)value; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtActiveStream(aclrtStream activeStream, aclrtStream stream)
{ (void)activeStream; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSwitchStream(void *leftValue, aclrtCondition cond, void *rightValue,
                                                 aclrtCompareDataType dataType, aclrtStream trueStream,
                                                 aclrtStream falseStream, aclrtStream stream)
{ (void)leftValue; (void)cond; (void)rightValue; (void)dataType; (void)trueStream; (void)falseStream; (void)stream;
  return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtRegStreamStateCallback(const char *regName, aclrtStreamStateCallback callback,
                                                           void *args)
{ (void)regName; (void)callback; (void)args; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtStreamStop(aclrtStream stream)
{ (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtPersistentTaskClean(aclrtStream stream)
{ (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtStreamGetPriority(aclrtStream stream, uint32_t *priority)
{ (void)stream; (void)priority; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtStreamGetFlags(aclrtStream stream, uint32_t *flags)
{ (void)stream; (void)flags; return rt_unsupported(__func__); }

/* chapter 07: event management */

__attribute__((weak)) aclError aclrtCreateEvent(aclrtEvent *event)
{ (void)event; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCreateEventWithFlag(aclrtEvent *event, uint32_t flag)
{ (void)event; (void)flag; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCreateEventExWithFlag(aclrtEvent *event, uint32_t flag)
{ (void)event; (void)flag; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDestroyEvent(aclrtEvent event)
{ (void)event; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtRecordEvent(aclrtEvent event, aclrtStream stream)
{ (void)event; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtRecordEventWithFlag(aclrtEvent event, aclrtStream stream, uint32_t flag)
{ (void)event; (void)stream; (void)flag; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtResetEvent(aclrtEvent event, aclrtStream stream)
{ (void)event; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtQueryEvent(aclrtEvent event, aclrtEventStatus *status)
{ (void)event; (void)status; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtQueryEventStatus(aclrtEvent event, aclrtEventRecordedStatus *status)
{ (void)event; (void)status; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtQueryEventWaitStatus(aclrtEvent event, aclrtEventWaitStatus *status)
{ (void)event; (void)status; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSynchronizeEvent(aclrtEvent event)
{ (void)event; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSynchronizeEventWithTimeout(aclrtEvent event, int32_t timeout)
{ (void)event; (void)timeout; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtEventElapsedTime(float *ms, aclrtEvent startEvent, aclrtEvent endEvent)
{ (void)ms; (void)startEvent; (void)endEvent; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtStreamWaitEvent(aclrtStream stream, aclrtEvent event)
{ (void)stream; (void)event; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtStreamWaitEventWithFlag(aclrtStream stream, aclrtEvent event, uint32_t timeout,
                                                            uint32_t flag)
{ (void)stream; (void)event; (void)timeout; (void)flag; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtStreamWaitEventWithTimeout(aclrtStream stream, aclrtEvent event, int32_t timeout)
{ (void)stream; (void)event; (void)timeout; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSetOpWaitTimeout(uint32_t timeout)
{ (void)timeout; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtEventGetTimestamp(aclrtEvent event, uint64_t *timestamp)
{ (void)event; (void)timestamp; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetEventId(aclrtEvent event, uint32_t *eventId)
{ (void)event; (void)eventId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetEventAvailNum(uint32_t *eventCount)
{ (void)eventCount; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtIpcGetEventHandle(aclrtEvent event, aclrtIpcEventHandle *handle)
{ (void)event; (void)handle; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtIpcOpenEventHandle(aclrtIpcEventHandle handle, aclrtEvent *event)
{ (void)handle; (void)event; return rt_unsupported(__func__); }

/* chapter 08: notify management */

__attribute__((weak)) aclError aclrtCreateNotify(aclrtNotify *notify, uint64_t flag)
{ (void)notify; (void)flag; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDestroyNotify(aclrtNotify notify)
{ (void)notify; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtRecordNotify(aclrtNotify notify, aclrtStream stream)
{ (void)notify; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtWaitAndResetNotify(aclrtNotify notify, aclrtStream stream, uint32_t timeout)
{ (void)notify; (void)stream; (void)timeout; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetNotifyId(aclrtNotify notify, uint32_t *notifyId)
{ (void)notify; (void)notifyId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtNotifyBatchReset(aclrtNotify *notifies, size_t num)
{ (void)notifies; (void)num; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtNotifyGetExportKey(aclrtNotify notify, char *key, size_t len, uint64_t flags)
{ (void)notify; (void)key; (void)len; (void)flags; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtNotifySetImportPid(aclrtNotify notify, int32_t *pid, size_t num)
{ (void)notify; (void)pid; (void)num; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtNotifySetImportPidInterServer(aclrtNotify notify, aclrtServerPid *serverPids,
                                                                  size_t num)
{ (void)notify; (void)serverPids; (void)num; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtNotifyImportByKey(aclrtNotify *notify, const char *key, uint64_t flags)
{ (void)notify; (void)key; (void)flags; return rt_unsupported(__func__); }

/* chapter 09: count notify management */

__attribute__((weak)) aclError aclrtCntNotifyCreate(aclrtCntNotify *cntNotify, uint64_t flag)
{ (void)cntNotify; (void)flag; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCntNotifyRecord(aclrtCntNotify cntNotify, aclrtStream stream,
                                                    aclrtCntNotifyRecordInfo *info)
{ (void)cntNotify; (void)stream; (void)info; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCntNotifyWaitWithTimeout(aclrtCntNotify cntNotify, aclrtStream stream,
                                                             aclrtCntNotifyWaitInfo *info)
{ (void)cntNotify; (void)stream; (void)info; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCntNotifyReset(aclrtCntNotify cntNotify, aclrtStream stream)
{ (void)cntNotify; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCntNotifyGetId(aclrtCntNotify cntNotify, uint32_t *notifyId)
{ (void)cntNotify; (void)notifyId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCntNotifyDestroy(aclrtCntNotify cntNotify)
{ (void)cntNotify; return rt_unsupported(__func__); }

/* chapter 11-01: device memory allocation */

__attribute__((weak)) aclError aclrtMalloc(void **devPtr, size_t size, aclrtMemMallocPolicy policy)
{ (void)devPtr; (void)size; (void)policy; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMallocAlign32(void **devPtr, size_t size, aclrtMemMallocPolicy policy)
{ (void)devPtr; (void)size; (void)policy; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMallocCached(void **devPtr, size_t size, aclrtMemMallocPolicy policy)
{ (void)devPtr; (void)size; (void)policy; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemFlush(void *devPtr, size_t size)
{ (void)devPtr; (void)size; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemInvalidate(void *devPtr, size_t size)
{ (void)devPtr; (void)size; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMallocWithCfg(void **devPtr, size_t size, aclrtMemMallocPolicy policy,
                                                  aclrtMallocConfig *cfg)
{ (void)devPtr; (void)size; (void)policy; (void)cfg; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMallocForTaskScheduler(void **devPtr, size_t size, aclrtMemMallocPolicy policy,
                                                           aclrtMallocConfig *cfg)
{ (void)devPtr; (void)size; (void)policy; (void)cfg; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtFree(void *devPtr)
{ (void)devPtr; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtFreeWithDevSync(void *devPtr)
{ (void)devPtr; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetMemInfo(aclrtMemAttr attr, size_t *free, size_t *total)
{ (void)attr; (void)free; (void)total; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetMemUsageInfo(int32_t deviceId, aclrtMemUsageInfo *memUsageInfo,
                                                    size_t inputNum, size_t *outputNum)
{ (void)deviceId; (void)memUsageInfo; (void)inputNum; (void)outputNum; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCheckMemType(void **addrList, uint32_t size, uint32_t memType,
                                                 uint32_t *checkResult, uint32_t reserve)
{ (void)addrList; (void)size; (void)memType; (void)checkResult; (void)reserve; return rt_unsupported(__func__); }

/* chapter 11-02: host memory */

__attribute__((weak)) aclError aclrtMallocHost(void **hostPtr, size_t size)
{ (void)hostPtr; (void)size; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMallocHostWithCfg(void **ptr, uint64_t size, aclrtMallocConfig *cfg)
{ (void)ptr; (void)size; (void)cfg; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtFreeHost(void *hostPtr)
{ (void)hostPtr; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtFreeHostWithDevSync(void *hostPtr)
{ (void)hostPtr; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtHostRegister(void *ptr, uint64_t size, aclrtHostRegisterType type, void **devPtr)
{ (void)ptr; (void)size; (void)type; (void)devPtr; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtHostRegisterV2(void *ptr, uint64_t size, uint32_t flag)
{ (void)ptr; (void)size; (void)flag; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtHostGetDevicePointer(void *pHost, void **pDevice, uint32_t flag)
{ (void)pHost; (void)pDevice; (void)flag; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtHostMemMapCapabilities(uint32_t deviceId, aclrtHacType hacType,
                                                           aclrtHostMemMapCapability *capabilities)
{ (void)deviceId; (void)hacType; (void)capabilities; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtHostUnregister(void *ptr)
{ (void)ptr; return rt_unsupported(__func__); }

/* chapter 11-03: memory copy and set */

__attribute__((weak)) aclError aclrtMemcpy(void *dst, size_t destMax, const void *src, size_t count,
                                           aclrtMemcpyKind kind)
{ (void)dst; (void)destMax; (void)src; (void)count; (void)kind; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemcpyAsync(void *dst, size_t destMax, const void *src, size_t count,
                                                aclrtMemcpyKind kind, aclrtStream stream)
{ (void)dst; (void)destMax; (void)src; (void)count; (void)kind; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemcpyAsyncWithCondition(void *dst, size_t destMax, const void *src, size_t count,
                                                             aclrtMemcpyKind kind, aclrtStream stream)
{ (void)dst; (void)destMax; (void)src; (void)count; (void)kind; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemcpyBatch(void **dsts, size_t *destMaxs, void **srcs, size_t *sizes,
                                                size_t numBatches, aclrtMemcpyBatchAttr *attrs, size_t *attrsIndexes,
                                                size_t numAttrs, size_t *failIndex)
{ (void)dsts; (void)destMaxs; (void)srcs; (void)sizes; (void)numBatches; (void)attrs; (void)attrsIndexes;
  (void)numAttrs; (void)failIndex; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemcpyBatchAsync(void **dsts, size_t *destMaxs, void **srcs, size_t *sizes,
                                                     size_t numBatches, aclrtMemcpyBatchAttr *attrs,
                                                     size_t *attrsIndexes, size_t numAttrs, size_t *failIndex,
                                                     aclrtStream stream)
{ (void)dsts; (void)destMaxs; (void)srcs; (void)sizes; (void)numBatches; (void)attrs; (void)attrsIndexes;
  (void)numAttrs; (void)failIndex; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemcpyBatchV2(void **dsts, size_t *destMaxs, void **srcs, size_t *sizes,
                                                  size_t numBatches, aclrtMemcpyBatchAttr *attrs,
                                                  size_t *attrsIndexes, size_t numAttrs)
{ (void)dsts; (void)destMaxs; (void)srcs; (void)sizes; (void)numBatches; (void)attrs; (void)attrsIndexes;
  (void)numAttrs; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemcpyBatchAsyncV2(void **dsts, size_t *destMaxs, void **srcs, size_t *sizes,
                                                       size_t numBatches, aclrtMemcpyBatchAttr *attrs,
                                                       size_t *attrsIndexes, size_t numAttrs, aclrtStream stream)
{ (void)dsts; (void)destMaxs; (void)srcs; (void)sizes; (void)numBatches; (void)attrs; (void)attrsIndexes;
  (void)numAttrs; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemcpy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                                             size_t height, aclrtMemcpyKind kind)
{ (void)dst; (void)dpitch; (void)src; (void)spitch; (void)width; (void)height; (void)kind;
  return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemcpy2dAsync(void *dst, size_t dpitch, const void *src, size_t spitch,
                                                  size_t width, size_t height, aclrtMemcpyKind kind,
                                                  aclrtStream stream)
{ (void)dst; (void)dpitch; (void)src; (void)spitch; (void)width; (void)height; (void)kind; (void)stream;
  return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetMemcpyDescSize(aclrtMemcpyKind kind, size_t *descSize)
{ (void)kind; (void)descSize; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSetMemcpyDesc(void *desc, aclrtMemcpyKind kind, void *srcAddr, void *dstAddr,
                                                  size_t count, void *config)
{ (void)desc; (void)kind; (void)srcAddr; (void)dstAddr; (void)count; (void)config; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemcpyAsyncWithDesc(void *desc, aclrtMemcpyKind kind, aclrtStream stream)
{ (void)desc; (void)kind; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemcpyAsyncWithOffset(void **dst, size_t destMax, size_t dstDataOffset,
                                                          const void **src, size_t count, size_t srcDataOffset,
                                                          aclrtMemcpyKind kind, aclrtStream stream)
{ (void)dst; (void)destMax; (void)dstDataOffset; (void)src; (void)count; (void)srcDataOffset; (void)kind;
  (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemset(void *devPtr, size_t maxCount, int32_t value, size_t count)
{ (void)devPtr; (void)maxCount; (void)value; (void)count; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemsetAsync(void *devPtr, size_t maxCount, int32_t value, size_t count,
                                                aclrtStream stream)
{ (void)devPtr; (void)maxCount; (void)value; (void)count; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemsetD32(void *ptr, size_t memSize, uint32_t value, size_t N)
{ (void)ptr; (void)memSize; (void)value; (void)N; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemsetD32Async(void *ptr, size_t memSize, uint32_t value, size_t N,
                                                   aclrtStream stream)
{ (void)ptr; (void)memSize; (void)value; (void)N; (void)stream; return rt_unsupported(__func__); }

/* chapter 11-04: virtual memory */

__attribute__((weak)) aclError aclrtMallocPhysical(aclrtDrvMemHandle *handle, size_t size,
                                                   const aclrtPhysicalMemProp *prop, uint64_t flags)
{ (void)handle; (void)size; (void)prop; (void)flags; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtFreePhysical(aclrtDrvMemHandle handle)
{ (void)handle; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtReserveMemAddress(void **virPtr, size_t size, size_t alignment, void *expectPtr,
                                                      uint64_t flags)
{ (void)virPtr; (void)size; (void)alignment; (void)expectPtr; (void)flags; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtReserveMemAddressNoUCMemory(void **virPtr, size_t size, size_t alignment,
                                                                void *expectPtr, uint64_t flags)
{ (void)virPtr; (void)size; (void)alignment; (void)expectPtr; (void)flags; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtReleaseMemAddress(void *virPtr)
{ (void)virPtr; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMapMem(void *virPtr, size_t size, size_t offset, aclrtDrvMemHandle handle,
                                           uint64_t flags)
{ (void)virPtr; (void)size; (void)offset; (void)handle; (void)flags; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemMapNoAccess(void *virPtr, size_t size, size_t offset, aclrtDrvMemHandle handle,
                                                   uint64_t flags)
{ (void)virPtr; (void)size; (void)offset; (void)handle; (void)flags; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtUnmapMem(void *virPtr)
{ (void)virPtr; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemExportToShareableHandle(aclrtDrvMemHandle handle,
                                                               aclrtMemHandleType handleType, uint64_t flags,
                                                               uint64_t *shareableHandle)
{ (void)handle; (void)handleType; (void)flags; (void)shareableHandle; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemSetPidToShareableHandle(uint64_t shareableHandle, int32_t *pid, size_t pidNum)
{ (void)shareableHandle; (void)pid; (void)pidNum; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemImportFromShareableHandle(uint64_t shareableHandle, int32_t deviceId,
                                                                 aclrtDrvMemHandle *handle)
{ (void)shareableHandle; (void)deviceId; (void)handle; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemExportToShareableHandleV2(aclrtDrvMemHandle handle, uint64_t flags,
                                                                 aclrtMemSharedHandleType shareType,
                                                                 void *shareableHandle)
{ (void)handle; (void)flags; (void)shareType; (void)shareableHandle; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemSetPidToShareableHandleV2(void *shareableHandle,
                                                                 aclrtMemSharedHandleType shareType, int32_t *pid,
                                                                 size_t pidNum)
{ (void)shareableHandle; (void)shareType; (void)pid; (void)pidNum; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemImportFromShareableHandleV2(void *shareableHandle,
                                                                   aclrtMemSharedHandleType shareType, uint64_t flags,
                                                                   aclrtDrvMemHandle *handle)
{ (void)shareableHandle; (void)shareType; (void)flags; (void)handle; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemGetAllocationGranularity(aclrtPhysicalMemProp *prop,
                                                                aclrtMemGranularityOptions option,
                                                                size_t *granularity)
{ (void)prop; (void)option; (void)granularity; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemSetAccess(void *virPtr, size_t size, aclrtMemAccessDesc *desc, size_t count)
{ (void)virPtr; (void)size; (void)desc; (void)count; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemGetAccess(void *virPtr, aclrtMemLocation *location, uint64_t *flag)
{ (void)virPtr; (void)location; (void)flag; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemRetainAllocationHandle(void *virPtr, aclrtDrvMemHandle *handle)
{ (void)virPtr; (void)handle; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemGetAllocationPropertiesFromHandle(aclrtDrvMemHandle handle,
                                                                         aclrtPhysicalMemProp *prop)
{ (void)handle; (void)prop; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemGetAddressRange(void *ptr, void **pbase, size_t *psize)
{ (void)ptr; (void)pbase; (void)psize; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemMapSelectedLink(void *virPtrDst, size_t size, void *virPtrSrc, uint32_t linkIdx)
{ (void)virPtrDst; (void)size; (void)virPtrSrc; (void)linkIdx; return rt_unsupported(__func__); }

/* chapter 11-05: unified addressing */

__attribute__((weak)) aclError aclrtMemAllocManaged(void **ptr, uint64_t size, uint32_t flag)
{ (void)ptr; (void)size; (void)flag; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemManagedAdvise(const void *const ptr, uint64_t size,
                                                     aclrtMemManagedAdviseType advise,
                                                     aclrtMemManagedLocation location)
{ (void)ptr; (void)size; (void)advise; (void)location; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemManagedGetAttr(aclrtMemManagedRangeAttribute attribute, const void *ptr,
                                                      size_t size, void *data, size_t dataSize)
{ (void)attribute; (void)ptr; (void)size; (void)data; (void)dataSize; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemManagedGetAttrs(aclrtMemManagedRangeAttribute *attributes,
                                                       size_t numAttributes, const void *ptr, size_t size,
                                                       void **data, size_t *dataSizes)
{ (void)attributes; (void)numAttributes; (void)ptr; (void)size; (void)data; (void)dataSizes;
  return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemManagedPrefetchAsync(const void *ptr, size_t size,
                                                            aclrtMemManagedLocation location, uint32_t flags,
                                                            aclrtStream stream)
{ (void)ptr; (void)size; (void)location; (void)flags; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemManagedPrefetchBatchAsync(const void **ptrs, size_t *sizes, size_t count,
                                                                 aclrtMemManagedLocation *prefetchLocs,
                                                                 size_t *prefetchLocIdxs, size_t numPrefetchLocs,
                                                                 uint64_t flags, aclrtStream stream)
{ (void)ptrs; (void)sizes; (void)count; (void)prefetchLocs; (void)prefetchLocIdxs; (void)numPrefetchLocs;
  (void)flags; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemP2PMap(void *devPtr, size_t size, int32_t dstDevId, uint64_t flags)
{ (void)devPtr; (void)size; (void)dstDevId; (void)flags; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtPointerGetAttributes(const void *ptr, aclrtPtrAttributes *attributes)
{ (void)ptr; (void)attributes; return rt_unsupported(__func__); }

/* chapter 11-06: cache maintenance operations */

__attribute__((weak)) aclError aclrtCmoAsync(void *src, size_t size, aclrtCmoType cmoType, aclrtStream stream)
{ (void)src; (void)size; (void)cmoType; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCmoAsyncWithBarrier(void *src, size_t size, aclrtCmoType cmoType,
                                                        uint32_t barrierId, aclrtStream stream)
{ (void)src; (void)size; (void)cmoType; (void)barrierId; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCmoWaitBarrier(aclrtBarrierTaskInfo *taskInfo, aclrtStream stream, uint32_t flag)
{ (void)taskInfo; (void)stream; (void)flag; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCmoGetDescSize(size_t *size)
{ (void)size; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCmoSetDesc(void *cmoDesc, void *src, size_t size)
{ (void)cmoDesc; (void)src; (void)size; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCmoAsyncWithDesc(void *cmoDesc, aclrtCmoType cmoType, aclrtStream stream,
                                                     const void *reserve)
{ (void)cmoDesc; (void)cmoType; (void)stream; (void)reserve; return rt_unsupported(__func__); }

/* chapter 11-07: IPC memory sharing */

__attribute__((weak)) aclError aclrtIpcMemGetExportKey(void *devPtr, size_t size, char *key, size_t len, uint64_t flags)
{ (void)devPtr; (void)size; (void)key; (void)len; (void)flags; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtIpcMemSetImportPid(const char *key, int32_t *pid, size_t num)
{ (void)key; (void)pid; (void)num; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtIpcMemImportPidInterServer(const char *key, aclrtServerPid *serverPids, size_t num)
{ (void)key; (void)serverPids; (void)num; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtIpcMemImportByKey(void **devPtr, const char *key, uint64_t flags)
{ (void)devPtr; (void)key; (void)flags; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtIpcMemSetAttr(const char *key, aclrtIpcMemAttrType type, uint64_t attr)
{ (void)key; (void)type; (void)attr; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtIpcMemClose(const char *key)
{ (void)key; return rt_unsupported(__func__); }

/* chapter 11-08: custom memory allocator */

__attribute__((weak)) aclError aclrtAllocatorRegister(aclrtStream stream, aclrtAllocatorDesc allocatorDesc)
{ (void)stream; (void)allocatorDesc; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtAllocatorGetByStream(aclrtStream stream, aclrtAllocatorDesc *allocatorDesc,
                                                         aclrtAllocator *allocator,
                                                         aclrtAllocatorAllocFunc *allocFunc,
                                                         aclrtAllocatorFreeFunc *freeFunc,
                                                         aclrtAllocatorAllocAdviseFunc *allocAdviseFunc,
                                                         aclrtAllocatorGetAddrFromBlockFunc *getAddrFromBlockFunc)
{ (void)stream; (void)allocatorDesc; (void)allocator; (void)allocFunc; (void)freeFunc; (void)allocAdviseFunc;
  (void)getAddrFromBlockFunc; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtAllocatorUnregister(aclrtStream stream)
{ (void)stream; return rt_unsupported(__func__); }

/* chapter 11-09: stream memory operations */

__attribute__((weak)) aclError aclrtValueWrite(void *devAddr, uint64_t value, uint32_t flag, aclrtStream stream)
{ (void)devAddr; (void)value; (void)flag; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtValueWait(void *devAddr, uint64_t value, uint32_t flag, aclrtStream stream)
{ (void)devAddr; (void)value; (void)flag; (void)stream; return rt_unsupported(__func__); }

/* chapter 11-10: stream-ordered memory pools */

__attribute__((weak)) aclError aclrtMemPoolCreate(aclrtMemPool *memPool, const aclrtMemPoolProps *poolProps)
{ (void)memPool; (void)poolProps; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemPoolDestroy(const aclrtMemPool memPool)
{ (void)memPool; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemPoolSetAttr(aclrtMemPool memPool, aclrtMemPoolAttr attr, void *value)
{ (void)memPool; (void)attr; (void)value; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemPoolGetAttr(aclrtMemPool memPool, aclrtMemPoolAttr attr, void *value)
{ (void)memPool; (void)attr; (void)value; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemPoolMallocAsync(void **ptr, size_t size, aclrtMemPool memPool,
                                                       aclrtStream stream)
{ (void)ptr; (void)size; (void)memPool; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemPoolFreeAsync(void *ptr, aclrtStream stream)
{ (void)ptr; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemPoolTrimTo(aclrtMemPool memPool, size_t minBytesToKeep)
{ (void)memPool; (void)minBytesToKeep; return rt_unsupported(__func__); }

/* chapter 11-11: device variables (symbols) */

__attribute__((weak)) aclError aclrtGetSymbolAddress(const void *symbol, void **devPtr)
{ (void)symbol; (void)devPtr; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetSymbolSize(const void *symbol, size_t *size)
{ (void)symbol; (void)size; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemcpyFromSymbol(void *dst, size_t dstMax, const void *symbol, size_t count,
                                                     size_t offset, aclrtMemcpyKind kind)
{ (void)dst; (void)dstMax; (void)symbol; (void)count; (void)offset; (void)kind; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemcpyFromSymbolAsync(void *dst, size_t dstMax, const void *symbol, size_t count,
                                                          size_t offset, aclrtMemcpyKind kind, aclrtStream stream)
{ (void)dst; (void)dstMax; (void)symbol; (void)count; (void)offset; (void)kind; (void)stream;
  return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemcpyToSymbol(const void *symbol, const void *src, size_t count, size_t offset,
                                                   aclrtMemcpyKind kind)
{ (void)symbol; (void)src; (void)count; (void)offset; (void)kind; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemcpyToSymbolAsync(const void *symbol, const void *src, size_t count,
                                                        size_t offset, aclrtMemcpyKind kind, aclrtStream stream)
{ (void)symbol; (void)src; (void)count; (void)offset; (void)kind; (void)stream; return rt_unsupported(__func__); }

/* chapter 12: execution control */

__attribute__((weak)) aclError aclrtLaunchCallback(aclrtCallback fn, void *userData, aclrtCallbackBlockType blockType,
                                                   aclrtStream stream)
{ (void)fn; (void)userData; (void)blockType; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSubscribeReport(uint64_t threadId, aclrtStream stream)
{ (void)threadId; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtProcessReport(int32_t timeout)
{ (void)timeout; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtUnSubscribeReport(uint64_t threadId, aclrtStream stream)
{ (void)threadId; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetOpTimeOutInterval(uint64_t *interval)
{ (void)interval; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSetOpExecuteTimeOut(uint32_t timeout)
{ (void)timeout; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSetOpExecuteTimeOutV2(uint64_t timeout, uint64_t *actualTimeout)
{ (void)timeout; (void)actualTimeout; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSetOpExecuteTimeOutWithMs(uint32_t timeout)
{ (void)timeout; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetOpExecuteTimeout(uint32_t *const timeoutMs)
{ (void)timeoutMs; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetThreadLastTaskId(uint32_t *taskId)
{ (void)taskId; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtReduceAsync(void *dst, const void *src, uint64_t count, aclrtReduceKind kind,
                                                aclDataType type, aclrtStream stream, void *reserve)
{ (void)dst; (void)src; (void)count; (void)kind; (void)type; (void)stream; (void)reserve;
  return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtLaunchHostFunc(aclrtStream stream, aclrtHostFunc fn, void *args)
{ (void)stream; (void)fn; (void)args; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtRandomNumAsync(const aclrtRandomNumTaskInfo *taskInfo, const aclrtStream stream,
                                                   void *reserve)
{ (void)taskInfo; (void)stream; (void)reserve; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtTaskUpdateAsync(aclrtStream taskStream, uint32_t taskId,
                                                    aclrtTaskUpdateInfo *info, aclrtStream execStream)
{ (void)taskStream; (void)taskId; (void)info; (void)execStream; return rt_unsupported(__func__); }

/* chapter 13: exception handling */

__attribute__((weak)) const char * aclGetRecentErrMsg(void)
{ (void)rt_unsupported(__func__); return NULL; }
__attribute__((weak)) aclError aclrtSetExceptionInfoCallback(aclrtExceptionInfoCallback callback)
{ (void)callback; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtExceptionInfoCallbackRegister(aclrtExceptionInfoCallback callback)
{ (void)callback; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtExceptionInfoCallbackUnregister(aclrtExceptionInfoCallback callback)
{ (void)callback; return rt_unsupported(__func__); }
__attribute__((weak)) uint32_t aclrtGetTaskIdFromExceptionInfo(const aclrtExceptionInfo *info)
{ (void)info; (void)rt_unsupported(__func__); return 0; }
__attribute__((weak)) uint32_t aclrtGetStreamIdFromExceptionInfo(const aclrtExceptionInfo *info)
{ (void)info; (void)rt_unsupported(__func__); return 0; }
__attribute__((weak)) uint32_t aclrtGetThreadIdFromExceptionInfo(const aclrtExceptionInfo *info)
{ (void)info; (void)rt_unsupported(__func__); return 0; }
__attribute__((weak)) uint32_t aclrtGetDeviceIdFromExceptionInfo(const aclrtExceptionInfo *info)
{ (void)info; (void)rt_unsupported(__func__); return 0; }
__attribute__((weak)) uint32_t aclrtGetErrorCodeFromExceptionInfo(const aclrtExceptionInfo *info)
{ (void)info; (void)rt_unsupported(__func__); return 0; }
__attribute__((weak)) aclError aclrtPeekAtLastError(aclrtLastErrLevel level)
{ (void)level; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetLastError(aclrtLastErrLevel level)
{ (void)level; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetMemUceInfo(int32_t deviceId, aclrtMemUceInfo *memUceInfoArray,
                                                  size_t arraySize, size_t *retSize)
{ (void)deviceId; (void)memUceInfoArray; (void)arraySize; (void)retSize; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtMemUceRepair(int32_t deviceId, aclrtMemUceInfo *memUceInfoArray, size_t arraySize)
{ (void)deviceId; (void)memUceInfoArray; (void)arraySize; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtDeviceTaskAbort(int32_t deviceId, uint32_t timeout)
{ (void)deviceId; (void)timeout; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetErrorVerbose(int32_t deviceId, aclrtErrorInfo *errorInfo)
{ (void)deviceId; (void)errorInfo; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtRepairError(int32_t deviceId, const aclrtErrorInfo *errorInfo)
{ (void)deviceId; (void)errorInfo; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSetDeviceTaskAbortCallback(const char *regName,
                                                               aclrtDeviceTaskAbortCallback callback, void *args)
{ (void)regName; (void)callback; (void)args; return rt_unsupported(__func__); }

/* chapter 22: error reporting (C++ API of base/err_msg.h) */
/*
 * This API is C++ (namespace error_message). The fallbacks are C functions
 * bound, with asm labels, to the symbols a C++ compiler emits for the
 * declarations in base/err_msg.h (Itanium C++ ABI), so C++ programs using
 * that header link as well. std::vector references are passed as pointers by
 * that ABI, hence the const void * parameters. The names assume an LP64
 * target (size_t is unsigned long), i.e. x86_64 or aarch64 Linux.
 */
#if defined(__LP64__)
#define NPU_EMU_CXX_EXPORT __attribute__((weak, visibility("default")))

int32_t npu_emu_ReportInnerErrMsg(const char *file_name, const char *func, uint32_t line, const char *error_code,
                                  const char *format, ...)
    __asm__("_ZN13error_message17ReportInnerErrMsgEPKcS1_jS1_S1_z");
int32_t npu_emu_ReportPredefinedErrMsg(const char *error_code)
    __asm__("_ZN13error_message22ReportPredefinedErrMsgEPKc");
int32_t npu_emu_ReportPredefinedErrMsgArgs(const char *error_code, const void *key, const void *value)
    __asm__("_ZN13error_message22ReportPredefinedErrMsgEPKcRKSt6vectorIS1_SaIS1_EES6_");
int32_t npu_emu_ReportUserDefinedErrMsg(const char *error_code, const char *format, ...)
    __asm__("_ZN13error_message23ReportUserDefinedErrMsgEPKcS1_z");
int32_t npu_emu_RegisterFormatErrorMessage(const char *error_msg, size_t error_msg_len)
    __asm__("_ZN13error_message26RegisterFormatErrorMessageEPKcm");

NPU_EMU_CXX_EXPORT int32_t npu_emu_ReportInnerErrMsg(const char *file_name, const char *func, uint32_t line,
                                                     const char *error_code, const char *format, ...)
{ (void)file_name; (void)func; (void)line; (void)error_code; (void)format; (void)rt_unsupported("ReportInnerErrMsg");
  return -1; }
NPU_EMU_CXX_EXPORT int32_t npu_emu_ReportPredefinedErrMsg(const char *error_code)
{ (void)error_code; (void)rt_unsupported("ReportPredefinedErrMsg"); return -1; }
NPU_EMU_CXX_EXPORT int32_t npu_emu_ReportPredefinedErrMsgArgs(const char *error_code, const void *key,
                                                              const void *value)
{ (void)error_code; (void)key; (void)value; (void)rt_unsupported("ReportPredefinedErrMsg"); return -1; }
NPU_EMU_CXX_EXPORT int32_t npu_emu_ReportUserDefinedErrMsg(const char *error_code, const char *format, ...)
{ (void)error_code; (void)format; (void)rt_unsupported("ReportUserDefinedErrMsg"); return -1; }
NPU_EMU_CXX_EXPORT int32_t npu_emu_RegisterFormatErrorMessage(const char *error_msg, size_t error_msg_len)
{ (void)error_msg; (void)error_msg_len; (void)rt_unsupported("RegisterFormatErrorMessage"); return -1; }
#endif /* __LP64__ */

/* chapter 24: other calls */

__attribute__((weak)) size_t aclDataTypeSize(aclDataType dataType)
{ (void)dataType; (void)rt_unsupported(__func__); return 0; }
__attribute__((weak)) float aclFloat16ToFloat(aclFloat16 value)
{ (void)value; (void)rt_unsupported(__func__); return 0.0f; }
__attribute__((weak)) aclFloat16 aclFloatToFloat16(float value)
{ (void)value; (void)rt_unsupported(__func__); return 0; }
__attribute__((weak)) void aclAppLog(aclLogLevel logLevel, const char *func, const char *file, uint32_t line,
                                     const char *fmt, ...)
{ (void)logLevel; (void)func; (void)file; (void)line; (void)fmt; (void)rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtGetVersion(int32_t *majorVersion, int32_t *minorVersion, int32_t *patchVersion)
{ (void)majorVersion; (void)minorVersion; (void)patchVersion; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclsysGetCANNVersion(aclCANNPackageName name, aclCANNPackageVersion *version)
{ (void)name; (void)version; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclGetCannAttributeList(const aclCannAttr **cannAttrList, size_t *num)
{ (void)cannAttrList; (void)num; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclGetCannAttribute(aclCannAttr cannAttr, int32_t *value)
{ (void)cannAttr; (void)value; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclGetDeviceCapability(uint32_t deviceId, aclDeviceInfo deviceInfo, int64_t *value)
{ (void)deviceId; (void)deviceInfo; (void)value; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclsysGetVersionNum(char *pkgName, int32_t *versionNum)
{ (void)pkgName; (void)versionNum; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclsysGetVersionStr(char *pkgName, char *versionStr)
{ (void)pkgName; (void)versionStr; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclplatformGetDeviceInfo(aclplatformDevInfo infoType, char *value, uint32_t maxLen)
{ (void)infoType; (void)value; (void)maxLen; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclplatformGetInstructionInfo(aclplatformCoreType type, const char *instruction,
                                                             char *value, uint32_t maxLen)
{ (void)type; (void)instruction; (void)value; (void)maxLen; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCacheLastTaskOpInfo(const void *const infoPtr, const size_t infoSize)
{ (void)infoPtr; (void)infoSize; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCacheLastTaskExtendInfo(const char *const extendInfoPtr, const size_t infoSize)
{ (void)extendInfoPtr; (void)infoSize; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtProfTrace(void *userdata, int32_t length, aclrtStream stream)
{ (void)userdata; (void)length; (void)stream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtCreateStreamV2(aclrtStream *stream, const aclrtStreamConfigHandle *handle)
{ (void)stream; (void)handle; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSetStreamConfigOpt(aclrtStreamConfigHandle *handle, aclrtStreamConfigAttr attr,
                                                       const void *attrValue, size_t valueSize)
{ (void)handle; (void)attr; (void)attrValue; (void)valueSize; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtSubscribeHostFunc(uint64_t hostFuncThreadId, aclrtStream exeStream)
{ (void)hostFuncThreadId; (void)exeStream; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtProcessHostFunc(int32_t timeout)
{ (void)timeout; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtUnSubscribeHostFunc(uint64_t hostFuncThreadId, aclrtStream exeStream)
{ (void)hostFuncThreadId; (void)exeStream; return rt_unsupported(__func__); }

/* chapter 25-03: operation objects */

__attribute__((weak)) aclDataBuffer * aclCreateDataBuffer(void *data, size_t size)
{ (void)data; (void)size; (void)rt_unsupported(__func__); return NULL; }
__attribute__((weak)) aclError aclDestroyDataBuffer(const aclDataBuffer *dataBuffer)
{ (void)dataBuffer; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclUpdateDataBuffer(aclDataBuffer *dataBuffer, void *data, size_t size)
{ (void)dataBuffer; (void)data; (void)size; return rt_unsupported(__func__); }
__attribute__((weak)) void * aclGetDataBufferAddr(const aclDataBuffer *dataBuffer)
{ (void)dataBuffer; (void)rt_unsupported(__func__); return NULL; }
__attribute__((weak)) uint32_t aclGetDataBufferSize(const aclDataBuffer *dataBuffer)
{ (void)dataBuffer; (void)rt_unsupported(__func__); return 0; }
__attribute__((weak)) size_t aclGetDataBufferSizeV2(const aclDataBuffer *dataBuffer)
{ (void)dataBuffer; (void)rt_unsupported(__func__); return 0; }
__attribute__((weak)) aclrtStreamConfigHandle * aclrtCreateStreamConfigHandle(void)
{ (void)rt_unsupported(__func__); return NULL; }
__attribute__((weak)) aclError aclrtDestroyStreamConfigHandle(aclrtStreamConfigHandle *handle)
{ (void)handle; return rt_unsupported(__func__); }
__attribute__((weak)) aclrtAllocatorDesc aclrtAllocatorCreateDesc(void)
{ (void)rt_unsupported(__func__); return NULL; }
__attribute__((weak)) aclError aclrtAllocatorDestroyDesc(aclrtAllocatorDesc allocatorDesc)
{ (void)allocatorDesc; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtAllocatorSetObjToDesc(aclrtAllocatorDesc allocatorDesc, aclrtAllocator allocator)
{ (void)allocatorDesc; (void)allocator; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtAllocatorSetAllocFuncToDesc(aclrtAllocatorDesc allocatorDesc,
                                                                aclrtAllocatorAllocFunc func)
{ (void)allocatorDesc; (void)func; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtAllocatorSetAllocAdviseFuncToDesc(aclrtAllocatorDesc allocatorDesc,
                                                                      aclrtAllocatorAllocAdviseFunc func)
{ (void)allocatorDesc; (void)func; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtAllocatorSetFreeFuncToDesc(aclrtAllocatorDesc allocatorDesc,
                                                               aclrtAllocatorFreeFunc func)
{ (void)allocatorDesc; (void)func; return rt_unsupported(__func__); }
__attribute__((weak)) aclError aclrtAllocatorSetGetAddrFromBlockFuncToDesc(aclrtAllocatorDesc allocatorDesc,
                                                                           aclrtAllocatorGetAddrFromBlockFunc func)
{ (void)allocatorDesc; (void)func; return rt_unsupported(__func__); }
