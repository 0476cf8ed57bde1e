/*
 * host.h — internals of mesibo-host shared by its translation units.
 * Everything here has hidden visibility (the Makefile builds with
 * -fvisibility=hidden); only the mesibo_* API in host_api.h is exported.
 */
#ifndef MESIBO_HOST_H
#define MESIBO_HOST_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../mesibo_revisions.h"
#include "../module.h"
#include "conf.h"
#include "host_api.h"

enum { ABI_DOC = 0, ABI_R2019 = 1, ABI_R2020 = 2 };

enum { MOD_LOADING = 0, MOD_ACTIVE = 1, MOD_FAILED = 2, MOD_CLEANED = 3 };

/* bytes calloc'd for every module struct: more than the largest revision
 * (192) so a module that writes a little past its idea of the struct does
 * not corrupt the heap */
#define HOST_MOD_ALLOC 512

typedef struct hmod {
	const char *name;         /* name in mesibo.conf (also used in every output line) */
	const conf_module_t *conf;
	void *mem;                /* the module struct, HOST_MOD_ALLOC bytes, owned by the host */
	void *cfg;                /* module_configs_t (doc) or rev_config_t (r2019/r2020) */
	_Atomic int state;        /* MOD_* */
	void *handle;             /* dlopen handle */
} hmod_t;

/* message params, revision independent */
typedef struct nparams {
	uint64_t aid, id, refid, groupid, flags, type, expiry;
	uint64_t to_online, uflags, status, sid, device;
} nparams_t;

/* a message inside the host */
typedef struct hmsg {
	struct hmsg *next;
	int mod;          /* index of the module that sent it, -1 for a user message */
	nparams_t p;
	char *to, *from;  /* as addressed */
	char *rcpt;       /* the user it is delivered or queued to (set at routing) */
	char *data;
	size_t len;
	uint64_t deadline_ms; /* monotonic, when queued */
	uint64_t t_ns;        /* module messages: CLOCK_MONOTONIC ns of the send_message call */
} hmsg_t;

typedef struct http_req http_req_t;

enum { EV_LINE, EV_QUIT, EV_SEND, EV_HTTP };

typedef struct event {
	struct event *next;
	int kind;
	char *line;    /* EV_LINE */
	hmsg_t *msg;   /* EV_SEND */
	/* EV_HTTP */
	http_req_t *req;
	int state;
	int64_t progress;
	char *buf;
	size_t size;
	int final;     /* last event of the request (DONE): the main loop frees req */
} event_t;

/* globals (main.c) */
extern hmod_t g_mods[CONF_MAX_MODULES];
extern _Atomic int g_nmods;
extern int g_abi;
extern uint64_t g_loglevel;
extern int g_interactive;
extern int g_stamp;

/* CLOCK_MONOTONIC in nanoseconds */
static inline uint64_t host_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* util */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
uint64_t now_ms(void);

/* output (out.c) */
typedef struct sb {
	char *b;
	size_t n, cap;
} sb_t;
void sb_add(sb_t *s, const char *p, size_t n);
void sb_printf(sb_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* escaped text: \\ \n \r \t, other bytes < 0x20 and 0x7f as \xNN; field=1 also escapes ' ' as \x20 */
void sb_esc(sb_t *s, const char *p, size_t n, int field);
void sb_field(sb_t *s, const char *str); /* sb_esc(str, strlen, 1); NULL as "(null)" */
void out_emit(sb_t *s);                  /* prints s as one line, frees it */
void out_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void out_close(void);                    /* nothing is printed after this */
/* decodes \n \\ \t \r \xNN in place; returns new length */
size_t text_unescape(char *s, size_t n);

/* event queue (main.c) */
void evq_push_internal(event_t *ev);
void evq_push_cmd(event_t *ev);

/* module table (api.c) */
int mod_lookup(const void *mod); /* index, or -1 */
int mod_usable(int idx);         /* loading or active */
void host_install_doc_pointers(mesibo_module_t *m);
void params_from_module(const void *params, nparams_t *np, char **to, char **from);
int host_vlog(int idx, mesibo_uint_t level, const char *fmt, va_list ap);

/* http (http.c) */
void http_global_init(void);
mesibo_int_t http_start(int modidx, const char *url, const char *post,
                        mesibo_module_http_data_callback_t cb, void *cbdata,
                        const module_http_option_t *opt);
void http_dispatch(event_t *ev); /* main loop: calls the module's callback */

#endif
