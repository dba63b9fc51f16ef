/*
 * npu-emu: base/err_msg.h -- error-message reporting for CANN components and
 * custom operators (C++ only).
 *
 * Concepts: an error code is a 6-character string such as "E10001": the
 * first letter is the level (E error, W warning, I info), the second the
 * module, the last four the number (0000-8999 user errors, 9000-9999 internal
 * errors). Predefined codes come from JSON descriptions registered with
 * RegisterFormatErrorMessage (or REG_FORMAT_ERROR_MSG at load time); reports
 * are collected and later returned by aclGetRecentErrMsg. A formatted message
 * is limited to 1024 bytes including the terminating NUL; longer ones fail.
 * All functions return 0 on success and -1 on failure.
 *
 * The functions live in namespace error_message and are also visible in
 * namespace ge, the two spellings used by CANN code. This header is not
 * included by acl/acl.h, as in CANN.
 */
#ifndef NPU_EMU_BASE_ERR_MSG_H
#define NPU_EMU_BASE_ERR_MSG_H

#ifdef __cplusplus

#include <cstddef>
#include <cstdint>
#include <vector>

#ifndef ACL_FUNC_VISIBILITY
#define ACL_FUNC_VISIBILITY __attribute__((visibility("default")))
#endif

namespace error_message {

typedef char char_t;

/* chapter 22 */
/* Report an internal (9xxx) error together with the caller's location. */
ACL_FUNC_VISIBILITY int32_t ReportInnerErrMsg(const char_t *file_name, const char_t *func, uint32_t line, const char *error_code,
                                              const char_t *format, ...);
/* Report a predefined error that takes no arguments. */
ACL_FUNC_VISIBILITY int32_t ReportPredefinedErrMsg(const char *error_code);
/* Report a predefined error; value[i] replaces the placeholder named key[i]. */
ACL_FUNC_VISIBILITY int32_t ReportPredefinedErrMsg(const char *error_code, const std::vector<const char *> &key,
                                                   const std::vector<const char *> &value);
/* Report an error code defined by the caller (the "U" module range is advised). */
ACL_FUNC_VISIBILITY int32_t ReportUserDefinedErrMsg(const char *error_code, const char *format, ...);
/* Register error_msg_len bytes of JSON ({"error_info_list": [...]}) describing codes. */
ACL_FUNC_VISIBILITY int32_t RegisterFormatErrorMessage(const char *error_msg, size_t error_msg_len);

} /* namespace error_message */

namespace ge {
using error_message::char_t;
using error_message::ReportInnerErrMsg;
using error_message::ReportPredefinedErrMsg;
using error_message::ReportUserDefinedErrMsg;
using error_message::RegisterFormatErrorMessage;
} /* namespace ge */

/* Report an internal error from the current source location. */
#define REPORT_INNER_ERR_MSG(error_code, format, ...)                                                 \
    ((void)::error_message::ReportInnerErrMsg(__FILE__, __FUNCTION__, __LINE__, (error_code), (format), \
                                              ##__VA_ARGS__))

/* REPORT_PREDEFINED_ERR_MSG(code) or REPORT_PREDEFINED_ERR_MSG(code, keys, values). */
#define NPU_EMU_ERRMSG_SELECT(a1, a2, a3, chosen, ...) chosen
#define NPU_EMU_ERRMSG_REPORT1(error_code) ::error_message::ReportPredefinedErrMsg((error_code))
#define NPU_EMU_ERRMSG_REPORT3(error_code, key, value) \
    ::error_message::ReportPredefinedErrMsg((error_code), (key), (value))
#define REPORT_PREDEFINED_ERR_MSG(...) \
    NPU_EMU_ERRMSG_SELECT(__VA_ARGS__, NPU_EMU_ERRMSG_REPORT3, , NPU_EMU_ERRMSG_REPORT1, )(__VA_ARGS__)

/* Register error descriptions when the containing binary is loaded. */
#define NPU_EMU_ERRMSG_JOIN2(a, b) a##b
#define NPU_EMU_ERRMSG_JOIN(a, b) NPU_EMU_ERRMSG_JOIN2(a, b)
#define REG_FORMAT_ERROR_MSG(error_msg, error_msg_len)                                                     \
    static const int32_t NPU_EMU_ERRMSG_JOIN(npu_emu_errmsg_registration_, __COUNTER__) __attribute__((used)) = \
        ::error_message::RegisterFormatErrorMessage((error_msg), (error_msg_len))

#endif /* __cplusplus */

#endif /* NPU_EMU_BASE_ERR_MSG_H */
