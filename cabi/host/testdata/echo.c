/*
 * echo.c — test module for mesibo-host (test.sh). Works under all three ABI
 * revisions (detected like the filter module does).
 *
 * A message addressed to "echo" is CONSUMED and answered with send_message:
 *   from "echo", to the sender, id = original id + 1000, refid = original id,
 *   flags DELIVERYRECEIPT|READRECEIPT, expiry = the original's expiry,
 *   text "echo: <text>".
 * Special texts (to "echo"):
 *   "garbage"     -> on_message returns 0x7777 (the message passes on)
 *   "thread"      -> three replies sent from a module-owned thread
 *   "http <url>"  -> fetches url with the host's http (doc: mod->http, r2019:
 *                    mesibo_http, r2020: mesibo_util_http); when DONE arrives replies
 *                    "http ok|fail progress=<p> len=<n> <body>"
 * Every callback logs a line (level 0) so the test can see what arrived:
 *   on_message_status -> "status id=.. refid=.. from=.. to=.. status=.." (r2020: from params->status)
 *   on_login          -> "login <address> online=<n>"
 * Config: init_rc = N (init returns N), cleanup_rc = N, greeting = text (logged at init).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../mesibo_revisions.h"
#include "../../module.h"
#include "../host_api.h"

#define EXPORT __attribute__((visibility("default")))

enum { REV_DOC, REV_R2019, REV_R2020 };

typedef mesibo_int_t (*rev_http_fn)(void *mod, const char *url, const char *post,
                                    mesibo_module_http_data_callback_t cb, void *cbdata,
                                    module_http_option_t *opt);
typedef const char *(*rev_getconfig_fn)(void *mod, const char *name);
typedef mesibo_int_t (*util_http_fn)(mesibo_host_http_t *req, void *cbdata);

typedef struct echo {
	int rev;
	void *mod;
	rev_message_fn msg_fn;
	rev_log_fn log_fn;
	rev_http_fn http_fn;       /* r2019: mesibo_http */
	util_http_fn util_http_fn; /* r2020: mesibo_util_http */
	long cleanup_rc;
} echo_t;

/* a revision-independent view of params */
typedef struct view {
	uint64_t aid, id, refid, groupid, flags, type, expiry, status;
	char *to, *from;
} view_t;

static void elog(const echo_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void elog(const echo_t *e, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (e->rev == REV_DOC)
		((mesibo_module_t *)e->mod)->log(e->mod, 0, "%s\n", buf);
	else
		e->log_fn(e->mod, 0, "%s\n", buf);
}

static void view_of(const echo_t *e, const void *params, view_t *v)
{
	memset(v, 0, sizeof *v);
	if (e->rev == REV_DOC) {
		const mesibo_message_params_t *p = params;
		*v = (view_t){p->aid, p->id, p->refid, p->groupid, p->flags, p->type, p->expiry, 0, p->to, p->from};
	} else if (e->rev == REV_R2019) {
		const r19_params_t *p = params;
		*v = (view_t){p->aid, p->id, p->refid, p->groupid, p->flags, p->type, p->expiry, 0, p->to, p->from};
	} else {
		const r20_params_t *p = params;
		*v = (view_t){p->aid, p->id, p->refid, p->groupid, p->flags, p->type, p->expiry, p->status, p->to, p->from};
	}
}

static int esend(const echo_t *e, const view_t *v, const char *text, size_t len)
{
	if (e->rev == REV_DOC) {
		mesibo_message_params_t p;
		memset(&p, 0, sizeof p);
		p.aid = v->aid; p.id = v->id; p.refid = v->refid; p.flags = v->flags; p.expiry = v->expiry;
		p.to = v->to;
		p.from = v->from;
		mesibo_module_t *m = e->mod;
		return (int)m->send_message(m, &p, text, len);
	}
	if (e->rev == REV_R2019) {
		r19_params_t p;
		memset(&p, 0, sizeof p);
		p.aid = v->aid; p.id = v->id; p.refid = v->refid; p.flags = v->flags; p.expiry = v->expiry;
		p.to = v->to;
		p.from = v->from;
		return (int)e->msg_fn(e->mod, &p, text, len);
	}
	r20_params_t p;
	memset(&p, 0, sizeof p);
	p.aid = v->aid; p.id = v->id; p.refid = v->refid; p.flags = v->flags; p.expiry = v->expiry;
	p.to = v->to;
	p.from = v->from;
	return (int)e->msg_fn(e->mod, &p, text, len);
}

/* ---- thread ---- */

typedef struct tjob {
	echo_t e; /* a copy: the thread never touches ctx */
	view_t v;
	char to[256];
} tjob_t;

static void *thread_main(void *arg)
{
	tjob_t *j = arg;
	for (int i = 1; i <= 3; i++) {
		view_t v = j->v;
		v.id += (uint64_t)i;
		v.to = j->to;
		v.from = "echo";
		char text[64];
		snprintf(text, sizeof text, "from thread %d", i);
		if (esend(&j->e, &v, text, strlen(text)) != 0)
			elog(&j->e, "thread send failed");
	}
	elog(&j->e, "thread done");
	free(j);
	return NULL;
}

/* ---- http ---- */

typedef struct hjob {
	echo_t *e;
	view_t v;
	char to[256];
	char *body;
	size_t n;
	int complete;
} hjob_t;

static int http_cb(void *cbdata, mesibo_int_t state, mesibo_int_t progress, const char *buffer,
                   mesibo_int_t size)
{
	hjob_t *j = cbdata;
	if (state == MODULE_HTTP_STATE_RESPBODY && progress > 0 && size > 0) {
		char *nb = realloc(j->body, j->n + (size_t)size + 1);
		if (!nb)
			return -1;
		j->body = nb;
		memcpy(j->body + j->n, buffer, (size_t)size);
		j->n += (size_t)size;
		j->body[j->n] = 0;
	}
	if (state == MODULE_HTTP_STATE_RESPBODY && progress == 100)
		j->complete = 1;
	if (progress < 0)
		elog(j->e, "http error state=%d: %.*s", (int)state, (int)size, buffer);
	if (state == MODULE_HTTP_STATE_DONE) {
		char *text = malloc(j->n + 64);
		if (text) {
			int k = snprintf(text, j->n + 64, "http %s progress=%d len=%zu %s",
			                 j->complete ? "ok" : "fail", (int)progress, j->n, j->body ? j->body : "");
			view_t v = j->v;
			v.to = j->to;
			v.from = "echo";
			esend(j->e, &v, text, (size_t)k);
			free(text);
		}
		free(j->body);
		free(j);
	}
	return 0;
}

/* ---- callbacks ---- */

static mesibo_int_t on_message_common(echo_t *e, void *params, const char *msg, mesibo_uint_t len)
{
	view_t in;
	view_of(e, params, &in);
	if (!in.to || strcmp(in.to, "echo") != 0 || !in.from)
		return MESIBO_RESULT_PASS;
	if (len == 7 && memcmp(msg, "garbage", 7) == 0)
		return 0x7777;
	if (len == 6 && memcmp(msg, "thread", 6) == 0) {
		tjob_t *j = calloc(1, sizeof *j);
		j->e = *e;
		j->v = in;
		j->v.refid = in.id;
		j->v.id = in.id + 2000;
		j->v.flags = 0;
		snprintf(j->to, sizeof j->to, "%s", in.from);
		pthread_t th;
		if (pthread_create(&th, NULL, thread_main, j) == 0)
			pthread_detach(th);
		else
			free(j);
		return MESIBO_RESULT_CONSUMED;
	}
	if (len > 5 && memcmp(msg, "http ", 5) == 0) {
		hjob_t *j = calloc(1, sizeof *j);
		j->e = e;
		j->v = in;
		j->v.refid = in.id;
		j->v.id = in.id + 3000;
		j->v.flags = 0;
		snprintf(j->to, sizeof j->to, "%s", in.from);
		char url[1024];
		snprintf(url, sizeof url, "%.*s", (int)(len - 5), msg + 5);
		mesibo_int_t rc;
		if (e->rev == REV_DOC) {
			mesibo_module_t *m = e->mod;
			rc = m->http(m, url, NULL, http_cb, j, NULL);
		} else if (e->rev == REV_R2019) {
			rc = e->http_fn(e->mod, url, NULL, http_cb, j, NULL);
		} else {
			mesibo_host_http_t req;
			memset(&req, 0, sizeof req);
			req.url = url;
			req.on_data = http_cb;
			req.mod = e->mod;
			rc = e->util_http_fn(&req, j);
		}
		if (rc != 0) {
			elog(e, "http start failed rc=%d", (int)rc);
			free(j);
		}
		return MESIBO_RESULT_CONSUMED;
	}
	view_t out = in;
	out.id = in.id + 1000;
	out.refid = in.id;
	out.flags = MESIBO_FLAG_DELIVERYRECEIPT | MESIBO_FLAG_READRECEIPT;
	out.groupid = 0;
	out.to = in.from;
	out.from = "echo";
	char *text = malloc(len + 7);
	memcpy(text, "echo: ", 6);
	memcpy(text + 6, msg, len);
	int rc = esend(e, &out, text, len + 6);
	free(text);
	if (rc != 0)
		elog(e, "send failed");
	return MESIBO_RESULT_CONSUMED;
}

static void status_common(echo_t *e, void *params, uint64_t status, int from_params)
{
	view_t v;
	view_of(e, params, &v);
	if (from_params)
		status = v.status;
	elog(e, "status id=%ju refid=%ju from=%s to=%s status=%ju", (uintmax_t)v.id,
	     (uintmax_t)v.refid, v.from ? v.from : "(null)", v.to ? v.to : "(null)", (uintmax_t)status);
}

static mesibo_int_t doc_on_message(mesibo_module_t *m, mesibo_message_params_t *p, const char *msg,
                                   mesibo_uint_t len)
{
	return on_message_common(m->ctx, p, msg, len);
}
static mesibo_int_t r19_on_message(r19_module_t *m, r19_params_t *p, char *msg, mesibo_uint_t len)
{
	return on_message_common(m->ctx, p, msg, len);
}
static mesibo_int_t r20_on_message(r20_module_t *m, r20_params_t *p, char *msg, mesibo_uint_t len)
{
	return on_message_common(m->ctx, p, msg, len);
}

static mesibo_int_t doc_status(mesibo_module_t *m, mesibo_message_params_t *p, mesibo_uint_t st)
{
	status_common(m->ctx, p, st, 0);
	return 0;
}
static mesibo_int_t r19_status(r19_module_t *m, r19_params_t *p, mesibo_uint_t st)
{
	status_common(m->ctx, p, st, 0);
	return 0;
}
static mesibo_int_t r20_status(r20_module_t *m, r20_params_t *p)
{
	status_common(m->ctx, p, 0, 1);
	return 0;
}

static mesibo_int_t doc_login(mesibo_module_t *m, mesibo_user_t *u)
{
	elog(m->ctx, "login %s online=%jd", u->address, (intmax_t)u->online);
	return 0;
}
static mesibo_int_t r19_login(r19_module_t *m, rev_user_t *u)
{
	elog(m->ctx, "login %s online=%jd", u->address, (intmax_t)u->online);
	return 0;
}
static mesibo_int_t r20_login(r20_module_t *m, rev_user_t *u)
{
	elog(m->ctx, "login %s online=%jd", u->address, (intmax_t)u->online);
	return 0;
}

static mesibo_int_t doc_call(mesibo_module_t *m) { (void)m; return 0; }
static mesibo_int_t r19_call(r19_module_t *m) { (void)m; return 0; }
static mesibo_int_t r20_call(r20_module_t *m) { (void)m; return 0; }
static mesibo_int_t doc_callst(mesibo_module_t *m) { (void)m; return 1; }
static mesibo_int_t r19_callst(r19_module_t *m) { (void)m; return 1; }
static mesibo_int_t r20_callst(r20_module_t *m) { (void)m; return 1; }

static mesibo_int_t release(void **ctx)
{
	echo_t *e = *ctx;
	long rc = e ? e->cleanup_rc : 0;
	if (e)
		elog(e, "cleanup");
	free(e);
	*ctx = NULL;
	return rc;
}
static mesibo_int_t doc_cleanup(mesibo_module_t *m) { return release(&m->ctx); }
static mesibo_int_t r19_cleanup(r19_module_t *m) { return release(&m->ctx); }
static mesibo_int_t r20_cleanup(r20_module_t *m) { return release(&m->ctx); }

static uint64_t word_at(const void *mod, size_t off)
{
	uint64_t v;
	memcpy(&v, (const char *)mod + off, sizeof v);
	return v;
}

EXPORT mesibo_int_t mesibo_module_echo_init(mesibo_int_t version, void *mod, mesibo_uint_t len,
                                           module_configs_t *doc_config)
{
	echo_t *e = calloc(1, sizeof *e);
	if (!e || !mod || version != MESIBO_MODULE_VERSION) {
		free(e);
		return -1;
	}
	e->mod = mod;
	if (len == 192 && word_at(mod, 112) == MESIBO_MODULE_SIGNATURE)
		e->rev = REV_R2020;
	else if (len == 176 && word_at(mod, 112) == MESIBO_MODULE_SIGNATURE)
		e->rev = REV_DOC;
	else if (len == 176 && word_at(mod, 96) == MESIBO_MODULE_SIGNATURE)
		e->rev = REV_R2019;
	else {
		free(e);
		return -1;
	}
	long init_rc = 0;
	const module_config_item_t *items = NULL;
	long count = 0;
	if (e->rev == REV_DOC) {
		if (doc_config) {
			items = doc_config->items;
			count = doc_config->count;
		}
	} else {
		e->msg_fn = (rev_message_fn)dlsym(RTLD_DEFAULT, "mesibo_message");
		e->log_fn = (rev_log_fn)dlsym(RTLD_DEFAULT, "mesibo_log");
		e->http_fn = (rev_http_fn)dlsym(RTLD_DEFAULT, "mesibo_http");
		e->util_http_fn = (util_http_fn)dlsym(RTLD_DEFAULT, "mesibo_util_http");
		if (!e->msg_fn || !e->log_fn || !e->http_fn || !e->util_http_fn) {
			free(e);
			return -1;
		}
		rev_config_t *c = ((r19_module_t *)mod)->config;
		if (c) {
			items = c->items;
			count = (long)c->count;
		}
	}
	static const char *revname[] = {"doc", "r2019", "r2020"};
	elog(e, "init abi=%s len=%ju items=%ld", revname[e->rev], (uintmax_t)len, count);
	for (long i = 0; i < count; i++) {
		if (strcmp(items[i].name, "init_rc") == 0)
			init_rc = strtol(items[i].value, NULL, 10);
		else if (strcmp(items[i].name, "cleanup_rc") == 0)
			e->cleanup_rc = strtol(items[i].value, NULL, 10);
		else
			elog(e, "config %s=%s", items[i].name, items[i].value);
	}
	if (e->rev != REV_DOC) {
		rev_getconfig_fn gc = (rev_getconfig_fn)dlsym(RTLD_DEFAULT, "mesibo_util_getconfig");
		const char *g = gc ? gc(mod, "greeting") : NULL;
		if (g)
			elog(e, "getconfig greeting=%s", g);
	}
	if (init_rc != 0) {
		free(e);
		return init_rc;
	}
	switch (e->rev) {
	case REV_DOC: {
		mesibo_module_t *m = mod;
		m->name = "echo";
		m->ctx = e;
		m->on_message = doc_on_message;
		m->on_message_status = doc_status;
		m->on_login = doc_login;
		m->on_call = doc_call;
		m->on_call_status = doc_callst;
		m->cleanup = doc_cleanup;
		break;
	}
	case REV_R2019: {
		r19_module_t *m = mod;
		m->name = "echo";
		m->ctx = e;
		m->on_message = r19_on_message;
		m->on_message_status = r19_status;
		m->on_login = r19_login;
		m->on_call = r19_call;
		m->on_call_status = r19_callst;
		m->on_cleanup = r19_cleanup;
		break;
	}
	default: {
		r20_module_t *m = mod;
		m->name = "echo";
		m->ctx = e;
		m->on_message = r20_on_message;
		m->on_message_status = r20_status;
		m->on_login = r20_login;
		m->on_call = r20_call;
		m->on_call_status = r20_callst;
		m->on_cleanup = r20_cleanup;
		break;
	}
	}
	return 0;
}
