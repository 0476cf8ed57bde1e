/*
 * module.h — the mesibo loadable module ABI as the specification document
 * ("Mesibo Loadable Modules") describes it: types, structs, constants and the
 * callables the host fills in. A module author can compile the document's
 * examples against this header.
 *
 * Layout (LP64): sizeof(mesibo_module_t) == 176, signature at offset 112,
 * sizeof(mesibo_message_params_t) == 96. The two published header revisions
 * (r2019, r2020) are in mesibo_revisions.h.
 *
 * This file is mesibo-iot's own; it is written from the layouts in
 * docs/abi.md, not copied from mesibo's sources.
 */
#ifndef MESIBO_IOT_MODULE_H
#define MESIBO_IOT_MODULE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MESIBO_MODULE_SIGNATURE 0xAA55773388FF1100ULL
#define MESIBO_MODULE_VERSION 1

#define MESIBO_RESULT_OK 0
#define MESIBO_RESULT_FAIL -1
#define MESIBO_RESULT_PASS 0
#define MESIBO_RESULT_CONSUMED 1

/* message status values (on_message_status) */
#define MESIBO_MSGSTATUS_OUTBOX 0 /* client side, for reference */
#define MESIBO_MSGSTATUS_SENT 1   /* client side, for reference */
#define MESIBO_MSGSTATUS_DELIVERED 2
#define MESIBO_MSGSTATUS_READ 3
#define MESIBO_MSGSTATUS_FAIL 0x80
#define MESIBO_MSGSTATUS_NOTACTIVE 0x81
#define MESIBO_MSGSTATUS_INBOXFULL 0x82
#define MESIBO_MSGSTATUS_INVALIDDEST 0x83
#define MESIBO_MSGSTATUS_EXPIRED 0x84 /* client side, for reference */
#define MESIBO_MSGSTATUS_NOINCOMING 0x86
#define MESIBO_MSGSTATUS_BLOCKED 0x88

/* message flags */
#define MESIBO_FLAG_DELIVERYRECEIPT 0x1
#define MESIBO_FLAG_READRECEIPT 0x2
#define MESIBO_FLAG_TRANSIENT 0x4
#define MESIBO_FLAG_PRESENCE 0x8
#define MESIBO_FLAG_MEDIA 0x100

typedef intptr_t mesibo_int_t;
typedef uintptr_t mesibo_uint_t;

typedef struct mesibo_module_s mesibo_module_t;

typedef struct mesibo_message_params_s {
	mesibo_uint_t aid;
	mesibo_uint_t id; /* the sender's 32-bit message id */
	mesibo_uint_t refid;
	mesibo_uint_t groupid;
	mesibo_uint_t flags;
	mesibo_uint_t type;
	mesibo_uint_t expiry; /* seconds */
	mesibo_uint_t to_online;
	uintptr_t reserved_0;
	uintptr_t reserved_1;
	char *to, *from;
} mesibo_message_params_t;

typedef struct mesibo_user_s {
	mesibo_uint_t flags;
	char *address;
	mesibo_int_t online;
	uintptr_t reserved_0;
	uintptr_t reserved_1;
} mesibo_user_t;

/* doc revision: the login callback names its argument mesibo_login_params_t too */
typedef mesibo_user_t mesibo_login_params_t;

typedef struct module_config_item_s {
	char *name;
	char *value;
} module_config_item_t;

typedef struct module_configs_s {
	int count;
	module_config_item_t items[]; /* starts at offset 8 */
} module_configs_t;

typedef enum {
	MODULE_HTTP_STATE_REQUEST,
	MODULE_HTTP_STATE_REQBODY,
	MODULE_HTTP_STATE_RESPHEADER,
	MODULE_HTTP_STATE_RESPBODY,
	MODULE_HTTP_STATE_DONE
} module_http_state_t;

typedef int (*mesibo_module_http_data_callback_t)(void *cbdata, mesibo_int_t state,
                                                  mesibo_int_t progress, const char *buffer,
                                                  mesibo_int_t size);

typedef struct _module_http_option_t {
	const char *proxy;
	const char *content_type;
	const char *extra_header;
	const char *user_agent;
	const char *referrer;
	const char *origin;
	const char *cookie;
	const char *encoding;
	const char *cache_control;
	const char *accept;
	const char *etag;
	mesibo_uint_t ims;
	mesibo_uint_t maxredirects;
	mesibo_uint_t conn_timeout, header_timeout, body_timeout, total_timeout;
	mesibo_uint_t retries;
} module_http_option_t;

struct mesibo_module_s {
	mesibo_uint_t version; /* mesibo module API version */
	mesibo_uint_t flags;   /* module flags */
	const char *name;      /* module name */
	void *ctx;             /* module context */

	mesibo_int_t (*cleanup)(mesibo_module_t *mod);
	mesibo_int_t (*on_message)(mesibo_module_t *mod, mesibo_message_params_t *params,
	                           const char *message, mesibo_uint_t len);
	mesibo_int_t (*on_message_status)(mesibo_module_t *mod, mesibo_message_params_t *params,
	                                  mesibo_uint_t status);
	mesibo_int_t (*on_call)(mesibo_module_t *mod);
	mesibo_int_t (*on_call_status)(mesibo_module_t *mod);
	mesibo_int_t (*on_login)(mesibo_module_t *mod, mesibo_login_params_t *params);

	uintptr_t reserved_0;
	uintptr_t reserved_1;
	uintptr_t reserved_2;
	uintptr_t reserved_3;

	mesibo_uint_t signature; /* module signature, offset 112 */

	uintptr_t reserved_4;
	uintptr_t reserved_5;
	uintptr_t reserved_6;
	uintptr_t reserved_7;

	/* filled in by the host */
	mesibo_int_t (*send_message)(mesibo_module_t *mod, mesibo_message_params_t *params,
	                             const char *message, mesibo_uint_t len);
	mesibo_int_t (*http)(mesibo_module_t *mod, const char *url, const char *post,
	                     mesibo_module_http_data_callback_t cb, void *cbdata,
	                     module_http_option_t *opt);
	mesibo_int_t (*log)(mesibo_module_t *mod, mesibo_uint_t level, const char *format, ...);
};

/* the init function a module named <name> exports */
typedef mesibo_int_t (*mesibo_module_init_fn_doc)(mesibo_int_t version, mesibo_module_t *mod,
                                                  mesibo_uint_t len, module_configs_t *config);

#ifndef __cplusplus
_Static_assert(sizeof(mesibo_module_t) == 176, "doc mesibo_module_t is 176 bytes");
_Static_assert(offsetof(mesibo_module_t, signature) == 112, "doc signature at 112");
_Static_assert(offsetof(mesibo_module_t, send_message) == 152, "doc send_message at 152");
_Static_assert(sizeof(mesibo_message_params_t) == 96, "doc params are 96 bytes");
_Static_assert(offsetof(module_configs_t, items) == 8, "config items at 8");
#endif

#ifdef __cplusplus
}
#endif
#endif
