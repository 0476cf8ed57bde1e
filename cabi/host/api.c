/*
 * api.c — what modules call: the document revision's function pointers
 * (send_message, http, log) and the functions the host exports for the
 * published revisions (mesibo_message, mesibo_log, mesibo_vlog, mesibo_http,
 * mesibo_util_http, mesibo_util_getconfig, mesibo_util_usec).
 *
 * All of these may be called from any thread. They only read the module
 * table (fixed once a module is registered), copy their arguments, print
 * (log) or enqueue an event for the main loop; none calls into a module.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host.h"

#define HOST_MAX_MSG (64u * 1024u * 1024u)

int mod_lookup(const void *mod)
{
	if (!mod)
		return -1;
	int n = atomic_load(&g_nmods);
	for (int i = 0; i < n; i++)
		if (g_mods[i].mem == mod)
			return i;
	return -1;
}

int mod_usable(int idx)
{
	if (idx < 0 || idx >= atomic_load(&g_nmods))
		return 0;
	int st = atomic_load(&g_mods[idx].state);
	return st == MOD_LOADING || st == MOD_ACTIVE;
}

void params_from_module(const void *params, nparams_t *np, char **to, char **from)
{
	memset(np, 0, sizeof *np);
	switch (g_abi) {
	case ABI_DOC: {
		const mesibo_message_params_t *p = params;
		np->aid = p->aid; np->id = p->id; np->refid = p->refid; np->groupid = p->groupid;
		np->flags = p->flags; np->type = p->type; np->expiry = p->expiry;
		np->to_online = p->to_online;
		*to = p->to;
		*from = p->from;
		break;
	}
	case ABI_R2019: {
		const r19_params_t *p = params;
		np->aid = p->aid; np->id = p->id; np->refid = p->refid; np->groupid = p->groupid;
		np->flags = p->flags; np->type = p->type; np->expiry = p->expiry;
		np->to_online = p->to_online;
		*to = p->to;
		*from = p->from;
		break;
	}
	default: {
		const r20_params_t *p = params;
		np->aid = p->aid; np->id = p->id; np->refid = p->refid; np->groupid = p->groupid;
		np->flags = p->flags; np->type = p->type; np->expiry = p->expiry;
		np->uflags = p->uflags; np->status = p->status; np->sid = p->sid; np->device = p->device;
		*to = p->to;
		*from = p->from;
		break;
	}
	}
}

static mesibo_int_t host_send(int idx, const void *params, const char *message, mesibo_uint_t len)
{
	if (!mod_usable(idx) || !params || (!message && len) || len > HOST_MAX_MSG)
		return -1;
	nparams_t np;
	char *to, *from;
	params_from_module(params, &np, &to, &from);
	if (!to || !from)
		return -1;
	uint64_t t = host_now_ns();
	hmsg_t *m = xcalloc(1, sizeof *m);
	m->t_ns = t;
	m->mod = idx;
	m->p = np;
	m->to = xstrdup(to);
	m->from = xstrdup(from);
	m->data = xmalloc(len + 1);
	if (len)
		memcpy(m->data, message, len);
	m->data[len] = 0;
	m->len = len;
	event_t *ev = xcalloc(1, sizeof *ev);
	ev->kind = EV_SEND;
	ev->msg = m;
	evq_push_internal(ev);
	return 0;
}

int host_vlog(int idx, mesibo_uint_t level, const char *fmt, va_list ap)
{
	if (idx < 0) {
		out_line("error log call with an unknown module pointer");
		return -1;
	}
	if (!fmt)
		return -1;
	if (level > g_loglevel)
		return 0;
	char tmp[1024];
	char *text = tmp;
	va_list aq;
	va_copy(aq, ap);
	int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
	if (k < 0) {
		va_end(aq);
		return -1;
	}
	if ((size_t)k >= sizeof tmp) {
		text = xmalloc((size_t)k + 1);
		vsnprintf(text, (size_t)k + 1, fmt, aq);
	}
	va_end(aq);
	size_t n = (size_t)k;
	if (n > 0 && text[n - 1] == '\n')
		n--;
	sb_t s = {0};
	sb_add(&s, "log ", 4);
	sb_field(&s, g_mods[idx].name);
	sb_printf(&s, " %ju -- ", (uintmax_t)level);
	sb_esc(&s, text, n, 0);
	out_emit(&s);
	if (text != tmp)
		free(text);
	return 0;
}

/* ---- document revision: function pointers in the struct ---- */

static mesibo_int_t doc_send_message(mesibo_module_t *mod, mesibo_message_params_t *params,
                                     const char *message, mesibo_uint_t len)
{
	return host_send(mod_lookup(mod), params, message, len);
}

static mesibo_int_t doc_http(mesibo_module_t *mod, const char *url, const char *post,
                             mesibo_module_http_data_callback_t cb, void *cbdata,
                             module_http_option_t *opt)
{
	int idx = mod_lookup(mod);
	if (!mod_usable(idx))
		return -1;
	return http_start(idx, url, post, cb, cbdata, opt);
}

static mesibo_int_t doc_log(mesibo_module_t *mod, mesibo_uint_t level, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static mesibo_int_t doc_log(mesibo_module_t *mod, mesibo_uint_t level, const char *format, ...)
{
	va_list ap;
	va_start(ap, format);
	int rc = host_vlog(mod_lookup(mod), level, format, ap);
	va_end(ap);
	return rc;
}

void host_install_doc_pointers(mesibo_module_t *m)
{
	m->send_message = doc_send_message;
	m->http = doc_http;
	m->log = doc_log;
}

/* ---- exported for the published revisions ---- */

MESIBO_HOST_API mesibo_int_t mesibo_message(void *mod, void *params, const char *message,
                                            mesibo_uint_t len)
{
	return host_send(mod_lookup(mod), params, message, len);
}

MESIBO_HOST_API mesibo_int_t mesibo_vlog(void *mod, mesibo_uint_t level, const char *format,
                                         va_list args)
{
	return host_vlog(mod_lookup(mod), level, format, args);
}

MESIBO_HOST_API mesibo_int_t mesibo_log(void *mod, mesibo_uint_t level, const char *format, ...)
{
	va_list ap;
	va_start(ap, format);
	int rc = host_vlog(mod_lookup(mod), level, format, ap);
	va_end(ap);
	return rc;
}

MESIBO_HOST_API mesibo_int_t mesibo_http(void *mod, const char *url, const char *post,
                                         mesibo_module_http_data_callback_t cb, void *cbdata,
                                         module_http_option_t *opt)
{
	int idx = mod_lookup(mod);
	if (!mod_usable(idx))
		return -1;
	return http_start(idx, url, post, cb, cbdata, opt);
}

MESIBO_HOST_API mesibo_int_t mesibo_util_http(mesibo_host_http_t *req, void *cbdata)
{
	if (!req)
		return -1;
	int idx = -1;
	if (req->mod) {
		idx = mod_lookup(req->mod);
		if (!mod_usable(idx))
			return -1;
	}
	return http_start(idx, req->url, req->post, req->on_data, cbdata, req->opt);
}

MESIBO_HOST_API const char *mesibo_util_getconfig(void *mod, const char *name)
{
	int idx = mod_lookup(mod);
	if (idx < 0 || !name)
		return NULL;
	const conf_module_t *c = g_mods[idx].conf;
	for (int i = 0; i < c->nitems; i++)
		if (strcmp(c->items[i].name, name) == 0)
			return c->items[i].value;
	return NULL;
}

MESIBO_HOST_API mesibo_uint_t mesibo_util_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (mesibo_uint_t)ts.tv_sec * 1000000u + (mesibo_uint_t)ts.tv_nsec / 1000u;
}
