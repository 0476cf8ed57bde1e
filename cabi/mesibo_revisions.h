/*
 * mesibo_revisions.h — the two published mesibo module header revisions,
 * r2019 (2019-10-30) and r2020 (2020-02-26), with prefixed names so they can
 * live beside module.h (the document's revision) in one translation unit.
 *
 * Layouts (LP64), from docs/abi.md:
 *   r2019: sizeof(module) 176, signature at 96, params 112 bytes,
 *          host functions exported: mesibo_message, mesibo_log, mesibo_http.
 *   r2020: sizeof(module) 192, signature at 112, params 136 bytes,
 *          on_message_status(mod, params) with the status in params->status,
 *          host functions exported: mesibo_message, mesibo_log, mesibo_vlog, ...
 * Both: config arrives in mod->config (offset 40); user is {flags, online, address, ...}.
 */
#ifndef MESIBO_IOT_REVISIONS_H
#define MESIBO_IOT_REVISIONS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "module.h"

typedef struct r19_module_s r19_module_t;
typedef struct r20_module_s r20_module_t;

/* config list of both published revisions: count is pointer-wide */
typedef struct rev_config_s {
	mesibo_int_t count;
	module_config_item_t items[];
} rev_config_t;

typedef struct r19_params_s {
	mesibo_uint_t aid, id, refid, groupid, flags, type, expiry, to_online;
	uintptr_t reserved_0, reserved_1, reserved_2, reserved_3;
	char *to, *from;
} r19_params_t;

typedef struct r20_params_s {
	mesibo_uint_t aid, id, refid, groupid, flags, type, expiry;
	mesibo_uint_t uflags, status, sid, device;
	uintptr_t reserved_0, reserved_1, reserved_2, reserved_3;
	char *to, *from;
} r20_params_t;

typedef struct rev_user_s {
	mesibo_uint_t flags;
	mesibo_int_t online;
	char *address;
	uintptr_t reserved_0, reserved_1, reserved_2, reserved_3;
} rev_user_t;

struct r19_module_s {
	mesibo_uint_t version;
	mesibo_uint_t flags;
	const char *name;
	const char *description;
	void *ctx;
	rev_config_t *config;
	mesibo_int_t (*on_cleanup)(r19_module_t *mod);
	mesibo_int_t (*on_message)(r19_module_t *mod, r19_params_t *params, char *message,
	                           mesibo_uint_t len);
	mesibo_int_t (*on_message_status)(r19_module_t *mod, r19_params_t *params,
	                                  mesibo_uint_t status);
	mesibo_int_t (*on_call)(r19_module_t *mod);
	mesibo_int_t (*on_call_status)(r19_module_t *mod);
	mesibo_int_t (*on_login)(r19_module_t *mod, rev_user_t *user);
	mesibo_uint_t signature; /* offset 96 */
	uintptr_t reserved[8];
	mesibo_int_t (*invoke)(mesibo_int_t id, r19_module_t *mod, ...);
};

struct r20_module_s {
	mesibo_uint_t version;
	mesibo_uint_t flags;
	const char *name;
	const char *description;
	void *ctx;
	rev_config_t *config;
	mesibo_int_t (*on_cleanup)(r20_module_t *mod);
	mesibo_int_t (*on_message)(r20_module_t *mod, r20_params_t *params, char *message,
	                           mesibo_uint_t len);
	mesibo_int_t (*on_message_status)(r20_module_t *mod, r20_params_t *params);
	mesibo_int_t (*on_call)(r20_module_t *mod);
	mesibo_int_t (*on_call_status)(r20_module_t *mod);
	mesibo_int_t (*on_login)(r20_module_t *mod, rev_user_t *user);
	mesibo_int_t (*on_config)(r20_module_t *mod, mesibo_uint_t type, void *config);
	void *custom_fns;
	mesibo_uint_t signature; /* offset 112 */
	uintptr_t reserved[8];
	mesibo_int_t (*invoke)(mesibo_int_t id, r20_module_t *mod, ...);
};

/* init function of the published revisions */
typedef mesibo_int_t (*mesibo_module_init_fn_rev)(mesibo_int_t version, void *mod,
                                                  mesibo_int_t len);

/* Host functions a published-revision host exports (looked up with dlsym).
 * `mod` is the revision's own module struct. */
typedef mesibo_int_t (*rev_message_fn)(void *mod, void *params, const char *message,
                                       mesibo_uint_t len);
typedef mesibo_int_t (*rev_log_fn)(void *mod, mesibo_uint_t level, const char *format, ...);

#ifndef __cplusplus
_Static_assert(sizeof(r19_module_t) == 176, "r2019 module is 176 bytes");
_Static_assert(offsetof(r19_module_t, signature) == 96, "r2019 signature at 96");
_Static_assert(offsetof(r19_module_t, config) == 40, "r2019 config at 40");
_Static_assert(sizeof(r20_module_t) == 192, "r2020 module is 192 bytes");
_Static_assert(offsetof(r20_module_t, signature) == 112, "r2020 signature at 112");
_Static_assert(offsetof(r20_module_t, config) == 40, "r2020 config at 40");
_Static_assert(sizeof(r19_params_t) == 112, "r2019 params are 112 bytes");
_Static_assert(sizeof(r20_params_t) == 136, "r2020 params are 136 bytes");
_Static_assert(offsetof(rev_config_t, items) == 8, "config items at 8");
#endif

#endif
