/*
 * trampoline.c — mesibo_module_iot_init and the per-revision callbacks.
 *
 * One .so serves all three ABI revisions (docs/abi.md):
 *   doc   : len 176, signature at 112, host reached through struct pointers,
 *           config as the 4th init argument
 *   r2019 : len 176, signature at 96, host functions exported by the executable
 *   r2020 : len 192, signature at 112, exported host functions,
 *           on_message_status(mod, params) with params->status
 * Anything else is refused with a log line saying what was found.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesibo_revisions.h"
#include "module.h"
#include "trampoline.h"
#include "_cgo_export.h"

#define SIG MESIBO_MODULE_SIGNATURE

static uint64_t at_offset(const void *mod, size_t off) {
	uint64_t v;
	memcpy(&v, (const char *)mod + off, sizeof v);
	return v;
}

static uint64_t slen(const char *s) { return s ? (uint64_t)strlen(s) : 0; }

/* ---- Go → host ------------------------------------------------------- */

int64_t iot_send(iot_instance_t *inst, uint64_t aid, uint64_t id, uint64_t refid,
                 uint64_t groupid, uint64_t flags, uint64_t type, uint64_t expiry,
                 const char *to, const char *from, const char *msg, uint64_t len) {
	if (!inst || !inst->mod) return -1;
	switch (inst->rev) {
	case IOT_REV_DOC: {
		mesibo_module_t *m = inst->mod;
		if (!m->send_message) return -1;
		mesibo_message_params_t p;
		memset(&p, 0, sizeof p);
		p.aid = aid; p.id = id; p.refid = refid; p.groupid = groupid;
		p.flags = flags; p.type = type; p.expiry = expiry;
		p.to = (char *)to; p.from = (char *)from;
		return m->send_message(m, &p, msg, len);
	}
	case IOT_REV_2019: {
		if (!inst->msg_fn) return -1;
		r19_params_t p;
		memset(&p, 0, sizeof p);
		p.aid = aid; p.id = id; p.refid = refid; p.groupid = groupid;
		p.flags = flags; p.type = type; p.expiry = expiry;
		p.to = (char *)to; p.from = (char *)from;
		return ((rev_message_fn)inst->msg_fn)(inst->mod, &p, msg, len);
	}
	case IOT_REV_2020: {
		if (!inst->msg_fn) return -1;
		r20_params_t p;
		memset(&p, 0, sizeof p);
		p.aid = aid; p.id = id; p.refid = refid; p.groupid = groupid;
		p.flags = flags; p.type = type; p.expiry = expiry;
		p.to = (char *)to; p.from = (char *)from;
		return ((rev_message_fn)inst->msg_fn)(inst->mod, &p, msg, len);
	}
	}
	return -1;
}

/* Variadic host log functions are always called with a "%s" format: user
 * data is never a format string. */
int64_t iot_log(iot_instance_t *inst, uint64_t level, const char *text) {
	if (!inst || !inst->mod || !text) return -1;
	if (inst->rev == IOT_REV_DOC) {
		mesibo_module_t *m = inst->mod;
		if (!m->log) return -1;
		return m->log(m, level, "%s\n", text);
	}
	if (!inst->log_fn) return -1;
	return ((rev_log_fn)inst->log_fn)(inst->mod, level, "%s\n", text);
}

/* ---- host → Go: doc revision ------------------------------------------ */

static uintptr_t ctx_handle(void *ctx) { return ((iot_instance_t *)ctx)->handle; }

/* cleanup: the fast path stops queueing (and PASSes everything) before Go
 * tears the instance down; Go frees the instance (iot_free_instance). */
static mesibo_int_t iot_cleanup(iot_instance_t *inst) {
	iot_fp_close(inst);
	return mesibo_iot_go_cleanup(inst->handle);
}

#define FILL_COMMON(np, p)                                                           \
	do {                                                                         \
		(np).aid = (p)->aid; (np).id = (p)->id; (np).refid = (p)->refid;     \
		(np).groupid = (p)->groupid; (np).flags = (p)->flags;                \
		(np).type = (p)->type; (np).expiry = (p)->expiry;                    \
		(np).to = (p)->to ? (p)->to : ""; (np).from = (p)->from ? (p)->from : ""; \
		(np).tolen = slen((p)->to); (np).fromlen = slen((p)->from);          \
	} while (0)

/* on_message: the lengths are left to the fast path, which needs none to
 * PASS a message that is not the module's (it hashes `to` as it reads it). */
#define FILL_FAST(np, p)                                                             \
	do {                                                                         \
		(np).aid = (p)->aid; (np).id = (p)->id; (np).refid = (p)->refid;     \
		(np).groupid = (p)->groupid; (np).flags = (p)->flags;                \
		(np).type = (p)->type; (np).expiry = (p)->expiry; (np).status = 0;   \
		(np).to = (p)->to ? (p)->to : ""; (np).from = (p)->from ? (p)->from : ""; \
		(np).tolen = 0; (np).fromlen = 0;                                    \
	} while (0)

static mesibo_int_t doc_on_message(mesibo_module_t *mod, mesibo_message_params_t *p,
                                   const char *msg, mesibo_uint_t len) {
	if (!mod || !p || !mod->ctx) return MESIBO_RESULT_PASS;
	iot_params_t np;
	FILL_FAST(np, p);
	return iot_fp_on_message(mod->ctx, &np, msg, len);
}

static mesibo_int_t doc_on_message_status(mesibo_module_t *mod, mesibo_message_params_t *p,
                                          mesibo_uint_t status) {
	if (!mod || !p || !mod->ctx) return MESIBO_RESULT_PASS;
	iot_params_t np;
	FILL_COMMON(np, p);
	np.status = status;
	return mesibo_iot_go_on_status(ctx_handle(mod->ctx), &np);
}

static mesibo_int_t doc_on_login(mesibo_module_t *mod, mesibo_login_params_t *u) {
	if (!mod || !u || !mod->ctx) return MESIBO_RESULT_OK;
	return mesibo_iot_go_on_login(ctx_handle(mod->ctx), u->address ? u->address : "",
	                              slen(u->address), u->online);
}

static mesibo_int_t doc_cleanup(mesibo_module_t *mod) {
	if (!mod || !mod->ctx) return MESIBO_RESULT_OK;
	iot_instance_t *inst = mod->ctx;
	mod->ctx = NULL;
	return iot_cleanup(inst);
}

/* ---- host → Go: r2019 --------------------------------------------------- */

static mesibo_int_t r19_on_message(r19_module_t *mod, r19_params_t *p, char *msg,
                                   mesibo_uint_t len) {
	if (!mod || !p || !mod->ctx) return MESIBO_RESULT_PASS;
	iot_params_t np;
	FILL_FAST(np, p);
	return iot_fp_on_message(mod->ctx, &np, msg, len);
}

static mesibo_int_t r19_on_message_status(r19_module_t *mod, r19_params_t *p,
                                          mesibo_uint_t status) {
	if (!mod || !p || !mod->ctx) return MESIBO_RESULT_PASS;
	iot_params_t np;
	FILL_COMMON(np, p);
	np.status = status;
	return mesibo_iot_go_on_status(ctx_handle(mod->ctx), &np);
}

static mesibo_int_t r19_on_login(r19_module_t *mod, rev_user_t *u) {
	if (!mod || !u || !mod->ctx) return MESIBO_RESULT_OK;
	return mesibo_iot_go_on_login(ctx_handle(mod->ctx), u->address ? u->address : "",
	                              slen(u->address), u->online);
}

static mesibo_int_t r19_cleanup(r19_module_t *mod) {
	if (!mod || !mod->ctx) return MESIBO_RESULT_OK;
	iot_instance_t *inst = mod->ctx;
	mod->ctx = NULL;
	return iot_cleanup(inst);
}

/* ---- host → Go: r2020 --------------------------------------------------- */

static mesibo_int_t r20_on_message(r20_module_t *mod, r20_params_t *p, char *msg,
                                   mesibo_uint_t len) {
	if (!mod || !p || !mod->ctx) return MESIBO_RESULT_PASS;
	iot_params_t np;
	FILL_FAST(np, p);
	return iot_fp_on_message(mod->ctx, &np, msg, len);
}

static mesibo_int_t r20_on_message_status(r20_module_t *mod, r20_params_t *p) {
	if (!mod || !p || !mod->ctx) return MESIBO_RESULT_PASS;
	iot_params_t np;
	FILL_COMMON(np, p);
	np.status = p->status;
	return mesibo_iot_go_on_status(ctx_handle(mod->ctx), &np);
}

static mesibo_int_t r20_on_login(r20_module_t *mod, rev_user_t *u) {
	if (!mod || !u || !mod->ctx) return MESIBO_RESULT_OK;
	return mesibo_iot_go_on_login(ctx_handle(mod->ctx), u->address ? u->address : "",
	                              slen(u->address), u->online);
}

static mesibo_int_t r20_cleanup(r20_module_t *mod) {
	if (!mod || !mod->ctx) return MESIBO_RESULT_OK;
	iot_instance_t *inst = mod->ctx;
	mod->ctx = NULL;
	return iot_cleanup(inst);
}

/* ---- init ---------------------------------------------------------------- */

static const char *rev_name(int rev) {
	switch (rev) {
	case IOT_REV_DOC: return "doc";
	case IOT_REV_2019: return "r2019";
	case IOT_REV_2020: return "r2020";
	}
	return "unknown";
}

/* Logs before the revision is known: the exported mesibo_log if the host has
 * one (every r2019/r2020 host), else the doc struct's log pointer when the
 * struct is at least the doc size and carries the doc signature. */
static void early_log(void *mod, mesibo_uint_t len, const char *text) {
	rev_log_fn fn = (rev_log_fn)dlsym(RTLD_DEFAULT, "mesibo_log");
	if (fn) {
		fn(mod, 0, "%s\n", text);
		return;
	}
	if (mod && len >= sizeof(mesibo_module_t) && at_offset(mod, 112) == SIG) {
		mesibo_module_t *m = mod;
		if (m->log) m->log(m, 0, "%s\n", text);
	}
}

/* mesibo_module_iot_init is the module's entry point. Hosts of the published
 * revisions call it with three arguments; doc_config is read only when the
 * struct is recognised as the document's revision. */
mesibo_int_t mesibo_module_iot_init(mesibo_int_t version, void *mod, mesibo_uint_t len,
                                    module_configs_t *doc_config) {
	char buf[256];
	if (!mod) return MESIBO_RESULT_FAIL;
	if (version != MESIBO_MODULE_VERSION) {
		snprintf(buf, sizeof buf,
		         "iot: refusing to load: module API version %ld, this module speaks %d",
		         (long)version, MESIBO_MODULE_VERSION);
		early_log(mod, len, buf);
		return MESIBO_RESULT_FAIL;
	}
	int rev = 0;
	if (len == sizeof(r20_module_t)) {
		if (at_offset(mod, offsetof(r20_module_t, signature)) == SIG) rev = IOT_REV_2020;
	} else if (len == sizeof(mesibo_module_t)) {
		if (at_offset(mod, offsetof(mesibo_module_t, signature)) == SIG)
			rev = IOT_REV_DOC;
		else if (at_offset(mod, offsetof(r19_module_t, signature)) == SIG)
			rev = IOT_REV_2019;
	}
	if (!rev) {
		uint64_t s96 = len > 96 + 8 ? at_offset(mod, 96) : 0;
		uint64_t s112 = len > 112 + 8 ? at_offset(mod, 112) : 0;
		snprintf(buf, sizeof buf,
		         "iot: refusing to load: unknown module struct (len %lu, word@96 0x%llx, "
		         "word@112 0x%llx); known: doc len 176 sig@112, r2019 len 176 sig@96, "
		         "r2020 len 192 sig@112, signature 0x%llx",
		         (unsigned long)len, (unsigned long long)s96, (unsigned long long)s112,
		         (unsigned long long)SIG);
		early_log(mod, len, buf);
		return MESIBO_RESULT_FAIL;
	}

	iot_instance_t *inst = calloc(1, sizeof *inst);
	if (!inst) return MESIBO_RESULT_FAIL;
	inst->rev = rev;
	inst->mod = mod;

	/* configuration items, in one neutral form */
	int64_t n = 0;
	module_config_item_t *items = NULL;
	if (rev == IOT_REV_DOC) {
		if (doc_config && doc_config->count > 0) {
			n = doc_config->count;
			items = doc_config->items;
		}
	} else {
		rev_config_t *c = ((r19_module_t *)mod)->config; /* offset 40 in both */
		if (c && c->count > 0) {
			n = c->count;
			items = c->items;
		}
	}
	if (n > 4096) n = 4096;
	char **names = calloc((size_t)n + 1, sizeof(char *));
	char **values = calloc((size_t)n + 1, sizeof(char *));
	if (!names || !values) {
		free(names); free(values); free(inst);
		return MESIBO_RESULT_FAIL;
	}
	for (int64_t i = 0; i < n; i++) {
		names[i] = items[i].name ? items[i].name : "";
		values[i] = items[i].value ? items[i].value : "";
	}

	if (rev != IOT_REV_DOC) {
		inst->msg_fn = dlsym(RTLD_DEFAULT, "mesibo_message");
		inst->log_fn = dlsym(RTLD_DEFAULT, "mesibo_log");
		if (!inst->msg_fn || !inst->log_fn) {
			snprintf(buf, sizeof buf,
			         "iot: refusing to load: %s host does not export mesibo_message/mesibo_log",
			         rev_name(rev));
			early_log(mod, len, buf);
			free(names); free(values); free(inst);
			return MESIBO_RESULT_FAIL;
		}
	}

	uintptr_t h = mesibo_iot_go_init(rev, inst, n, names, values);
	free(names);
	free(values);
	if (!h) {
		iot_free_instance(inst); /* Go logged why */
		return MESIBO_RESULT_FAIL;
	}
	inst->handle = h;

	switch (rev) {
	case IOT_REV_DOC: {
		mesibo_module_t *m = mod;
		m->version = MESIBO_MODULE_VERSION;
		m->flags = 0;
		m->name = "iot";
		m->ctx = inst;
		m->cleanup = doc_cleanup;
		m->on_message = doc_on_message;
		m->on_message_status = doc_on_message_status;
		m->on_login = doc_on_login;
		break;
	}
	case IOT_REV_2019: {
		r19_module_t *m = mod;
		m->version = MESIBO_MODULE_VERSION;
		m->flags = 0;
		m->name = "iot";
		m->description = "mesibo-iot: chat with robots and IoT devices";
		m->ctx = inst;
		m->on_cleanup = r19_cleanup;
		m->on_message = r19_on_message;
		m->on_message_status = r19_on_message_status;
		m->on_login = r19_on_login;
		break;
	}
	case IOT_REV_2020: {
		r20_module_t *m = mod;
		m->version = MESIBO_MODULE_VERSION;
		m->flags = 0;
		m->name = "iot";
		m->description = "mesibo-iot: chat with robots and IoT devices";
		m->ctx = inst;
		m->on_cleanup = r20_cleanup;
		m->on_message = r20_on_message;
		m->on_message_status = r20_on_message_status;
		m->on_login = r20_on_login;
		break;
	}
	}
	return MESIBO_RESULT_OK;
}

void iot_free_instance(iot_instance_t *inst) {
	if (!inst) return;
	iot_fp_destroy(inst);
	free(inst);
}
