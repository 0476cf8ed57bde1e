/*
 * host_api.h — functions mesibo-host exports to modules of the published
 * header revisions (r2019, r2020), which find them with dlsym(RTLD_DEFAULT,
 * ...) or link against them as undefined symbols. Modules of the document
 * revision use the function pointers in their struct instead (send_message,
 * http, log), which the host fills before init.
 *
 * `mod` is always the module struct the host allocated and passed to init
 * (in the selected revision's layout); a pointer the host did not hand out
 * makes the call fail (-1, or NULL for mesibo_util_getconfig). `params` is in
 * the selected revision's layout (mesibo_message_params_t for --abi doc,
 * r19_params_t for r2019, r20_params_t for r2020).
 *
 * Every function here may be called from any thread at any time. None calls
 * back into a module synchronously: what needs the module is queued for the
 * host's main loop. See docs/host.md.
 */
#ifndef MESIBO_HOST_API_H
#define MESIBO_HOST_API_H

#include <stdarg.h>

#include "../module.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MESIBO_HOST_API __attribute__((visibility("default")))

/* Sends a message (copied before return). It does not pass through the
 * module chain. 0 on success, -1 on a bad module, NULL params/to/from, or a
 * NULL message with len > 0. */
MESIBO_HOST_API mesibo_int_t mesibo_message(void *mod, void *params, const char *message,
                                            mesibo_uint_t len);

/* printf-style log line; printed when level <= --log-level. 0, or -1 on a bad module. */
MESIBO_HOST_API mesibo_int_t mesibo_log(void *mod, mesibo_uint_t level, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
MESIBO_HOST_API mesibo_int_t mesibo_vlog(void *mod, mesibo_uint_t level, const char *format,
                                         va_list args);

/* r2019-style HTTP request, same arguments as the document's mod->http. The
 * callback runs on the host's main loop thread. 0 if started, -1 otherwise. */
MESIBO_HOST_API mesibo_int_t mesibo_http(void *mod, const char *url, const char *post,
                                         mesibo_module_http_data_callback_t cb, void *cbdata,
                                         module_http_option_t *opt);

/* Minimal r2020-style request: mesibo-host's own struct (not mesibo's
 * mesibo_http_t, whose layout is not published in our references). All
 * strings are copied before mesibo_util_http returns. */
typedef struct mesibo_host_http_s {
	const char *url;                          /* required */
	const char *post;                         /* NULL: GET; else POST body (NUL-terminated) */
	module_http_option_t *opt;                /* optional */
	mesibo_module_http_data_callback_t on_data; /* optional; called with cbdata */
	void *mod;                                /* optional: module struct, for log lines */
} mesibo_host_http_t;

MESIBO_HOST_API mesibo_int_t mesibo_util_http(mesibo_host_http_t *req, void *cbdata);

/* Value of the module's first config item called name, or NULL. The string
 * belongs to the host and lives as long as the process. */
MESIBO_HOST_API const char *mesibo_util_getconfig(void *mod, const char *name);

/* Microseconds since the Unix epoch (CLOCK_REALTIME). */
MESIBO_HOST_API mesibo_uint_t mesibo_util_usec(void);

#ifdef __cplusplus
}
#endif
#endif
