/*
 * filter.c — mesibo_mod_filter.so, the specification's profanity filter as a
 * reference C module. It proves chaining: a message containing a blocked word
 * is CONSUMED (later modules and the recipient never see it), anything else
 * is PASSed on.
 *
 * Config (mesibo.conf):
 *   module filter {
 *     blocked_words = darn, heck, gosh   # comma separated, case-insensitive, whole words
 *     notify = 1                          # 1 (default): tell the sender; 0: silent
 *   }
 * Any other key fails init. blocked_words may be given more than once (the
 * lists are joined). A blocked "word" may contain spaces (a phrase).
 *
 * One binary serves the three ABI revisions; init tells them apart by len
 * and by where the host wrote the signature:
 *   len 192                          -> r2020
 *   len 176, signature at offset 112 -> doc   (host functions: mod->send_message, mod->log)
 *   len 176, signature at offset 96  -> r2019
 * r2019/r2020 reach the host through mesibo_message / mesibo_log, looked up
 * once with dlsym(RTLD_DEFAULT, ...). State lives in mod->ctx, so the module
 * may be loaded twice with different configuration.
 *
 * All callbacks only read the message; the buffer is never modified.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mesibo_revisions.h"
#include "../module.h"

#define EXPORT __attribute__((visibility("default")))

#define NOTICE "message blocked: contains a word not allowed here"
#define NOTICE_ID_BASE 1000000000u

enum { REV_DOC, REV_R2019, REV_R2020 };

typedef struct filter {
	int rev;
	void *mod;
	rev_message_fn msg_fn; /* r2019/r2020 */
	rev_log_fn log_fn;     /* r2019/r2020 */
	char **words;          /* lower case (ASCII), trimmed, non-empty */
	size_t *wlen;
	size_t nwords;
	int notify;
	uint64_t sent;
} filter_t;

/* ---- logging ---- */

static void flog(const filter_t *f, mesibo_uint_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void flog(const filter_t *f, mesibo_uint_t level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (f->rev == REV_DOC) {
		mesibo_module_t *m = f->mod;
		if (m && m->log) {
			m->log(m, level, "%s\n", buf);
			return;
		}
	} else if (f->log_fn) {
		f->log_fn(f->mod, level, "%s\n", buf);
		return;
	}
	fprintf(stderr, "%s\n", buf);
}

/* ---- configuration ---- */

static void words_free(filter_t *f)
{
	for (size_t i = 0; i < f->nwords; i++)
		free(f->words[i]);
	free(f->words);
	free(f->wlen);
	f->words = NULL;
	f->wlen = NULL;
	f->nwords = 0;
}

static int lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static int is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static int add_words(filter_t *f, const char *list)
{
	const char *p = list;
	while (*p) {
		const char *e = strchr(p, ',');
		if (!e)
			e = p + strlen(p);
		const char *b = p, *t = e;
		while (b < t && is_space((unsigned char)*b))
			b++;
		while (t > b && is_space((unsigned char)t[-1]))
			t--;
		if (t > b) {
			char **nw = realloc(f->words, (f->nwords + 1) * sizeof *nw);
			if (!nw)
				return -1;
			f->words = nw;
			size_t *nl = realloc(f->wlen, (f->nwords + 1) * sizeof *nl);
			if (!nl)
				return -1;
			f->wlen = nl;
			size_t n = (size_t)(t - b);
			char *w = malloc(n + 1);
			if (!w)
				return -1;
			for (size_t i = 0; i < n; i++)
				w[i] = (char)lower((unsigned char)b[i]);
			w[n] = 0;
			f->words[f->nwords] = w;
			f->wlen[f->nwords] = n;
			f->nwords++;
		}
		p = *e ? e + 1 : e;
	}
	return 0;
}

static int configure(filter_t *f, mesibo_int_t count, const module_config_item_t *items)
{
	f->notify = 1;
	if (count < 0 || (count > 0 && !items)) {
		flog(f, 0, "filter: bad configuration list (count %jd)", (intmax_t)count);
		return -1;
	}
	for (mesibo_int_t i = 0; i < count; i++) {
		const char *k = items[i].name, *v = items[i].value;
		if (!k || !v) {
			flog(f, 0, "filter: config item %jd has no name or value", (intmax_t)i);
			return -1;
		}
		if (strcmp(k, "blocked_words") == 0) {
			if (add_words(f, v) < 0) {
				flog(f, 0, "filter: out of memory");
				return -1;
			}
		} else if (strcmp(k, "notify") == 0) {
			if (strcmp(v, "1") == 0) {
				f->notify = 1;
			} else if (strcmp(v, "0") == 0) {
				f->notify = 0;
			} else {
				flog(f, 0, "filter: notify must be 1 or 0, not '%s'", v);
				return -1;
			}
		} else {
			flog(f, 0, "filter: unknown config item '%s' (known: blocked_words, notify)", k);
			return -1;
		}
	}
	return 0;
}

/* ---- matching ---- */

static int word_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c >= 0x80;
}

/* 1 if msg holds one of the blocked words as a whole word, case-insensitively */
static int blocked(const filter_t *f, const char *msg, size_t len)
{
	const unsigned char *m = (const unsigned char *)msg;
	if (!m)
		return 0;
	for (size_t w = 0; w < f->nwords; w++) {
		const char *word = f->words[w];
		size_t wl = f->wlen[w];
		if (wl > len)
			continue;
		for (size_t i = 0; i + wl <= len; i++) {
			if (i > 0 && word_char(m[i - 1]))
				continue;
			size_t k = 0;
			while (k < wl && lower(m[i + k]) == (unsigned char)word[k])
				k++;
			if (k < wl)
				continue;
			if (i + wl < len && word_char(m[i + wl]))
				continue;
			return 1;
		}
	}
	return 0;
}

/* ---- callbacks ---- */

static mesibo_int_t doc_on_message(mesibo_module_t *mod, mesibo_message_params_t *p,
                                   const char *message, mesibo_uint_t len)
{
	filter_t *f = mod->ctx;
	if (!f || !p || !blocked(f, message, len))
		return MESIBO_RESULT_PASS;
	flog(f, 2, "filter: consumed message %ju from %s", (uintmax_t)p->id, p->from ? p->from : "?");
	if (f->notify && p->from && p->to && mod->send_message) {
		mesibo_message_params_t np;
		memset(&np, 0, sizeof np);
		np.aid = p->aid;
		np.id = NOTICE_ID_BASE + ++f->sent;
		np.refid = p->id;
		np.expiry = 3600;
		np.to = p->from;
		np.from = p->to;
		if (mod->send_message(mod, &np, NOTICE, sizeof NOTICE - 1) != 0)
			flog(f, 0, "filter: send_message failed");
	}
	return MESIBO_RESULT_CONSUMED;
}

static mesibo_int_t r19_on_message(r19_module_t *mod, r19_params_t *p, char *message,
                                   mesibo_uint_t len)
{
	filter_t *f = mod->ctx;
	if (!f || !p || !blocked(f, message, len))
		return MESIBO_RESULT_PASS;
	flog(f, 2, "filter: consumed message %ju from %s", (uintmax_t)p->id, p->from ? p->from : "?");
	if (f->notify && p->from && p->to) {
		r19_params_t np;
		memset(&np, 0, sizeof np);
		np.aid = p->aid;
		np.id = NOTICE_ID_BASE + ++f->sent;
		np.refid = p->id;
		np.expiry = 3600;
		np.to = p->from;
		np.from = p->to;
		if (f->msg_fn(mod, &np, NOTICE, sizeof NOTICE - 1) != 0)
			flog(f, 0, "filter: mesibo_message failed");
	}
	return MESIBO_RESULT_CONSUMED;
}

static mesibo_int_t r20_on_message(r20_module_t *mod, r20_params_t *p, char *message,
                                   mesibo_uint_t len)
{
	filter_t *f = mod->ctx;
	if (!f || !p || !blocked(f, message, len))
		return MESIBO_RESULT_PASS;
	flog(f, 2, "filter: consumed message %ju from %s", (uintmax_t)p->id, p->from ? p->from : "?");
	if (f->notify && p->from && p->to) {
		r20_params_t np;
		memset(&np, 0, sizeof np);
		np.aid = p->aid;
		np.id = NOTICE_ID_BASE + ++f->sent;
		np.refid = p->id;
		np.expiry = 3600;
		np.to = p->from;
		np.from = p->to;
		if (f->msg_fn(mod, &np, NOTICE, sizeof NOTICE - 1) != 0)
			flog(f, 0, "filter: mesibo_message failed");
	}
	return MESIBO_RESULT_CONSUMED;
}

static mesibo_int_t release(void **ctx)
{
	filter_t *f = *ctx;
	if (f) {
		words_free(f);
		free(f);
		*ctx = NULL;
	}
	return MESIBO_RESULT_OK;
}

static mesibo_int_t doc_cleanup(mesibo_module_t *mod)
{
	return release(&mod->ctx);
}

static mesibo_int_t r19_cleanup(r19_module_t *mod)
{
	return release(&mod->ctx);
}

static mesibo_int_t r20_cleanup(r20_module_t *mod)
{
	return release(&mod->ctx);
}

/* ---- init ---- */

static uint64_t word_at(const void *mod, size_t off)
{
	uint64_t v;
	memcpy(&v, (const char *)mod + off, sizeof v);
	return v;
}

/* doc_config is only meaningful under the doc revision (4th argument); the
 * published revisions call init with three arguments. */
EXPORT mesibo_int_t mesibo_module_filter_init(mesibo_int_t version, void *mod, mesibo_uint_t len,
                                             module_configs_t *doc_config)
{
	filter_t tmp;
	memset(&tmp, 0, sizeof tmp);
	tmp.mod = mod;
	tmp.rev = -1;
	tmp.log_fn = (rev_log_fn)dlsym(RTLD_DEFAULT, "mesibo_log");

	if (!mod)
		return MESIBO_RESULT_FAIL;
	if (len == 192 && word_at(mod, 112) == MESIBO_MODULE_SIGNATURE)
		tmp.rev = REV_R2020;
	else if (len == 176 && word_at(mod, 112) == MESIBO_MODULE_SIGNATURE)
		tmp.rev = REV_DOC;
	else if (len == 176 && word_at(mod, 96) == MESIBO_MODULE_SIGNATURE)
		tmp.rev = REV_R2019;
	if (tmp.rev < 0) {
		flog(&tmp, 0, "filter: unknown module ABI (len %ju, no signature where expected); refusing",
		     (uintmax_t)len);
		return MESIBO_RESULT_FAIL;
	}
	if (tmp.rev != REV_DOC) {
		tmp.msg_fn = (rev_message_fn)dlsym(RTLD_DEFAULT, "mesibo_message");
		if (!tmp.msg_fn || !tmp.log_fn) {
			tmp.log_fn = NULL;
			flog(&tmp, 0, "filter: the host does not export mesibo_message/mesibo_log");
			return MESIBO_RESULT_FAIL;
		}
	}
	if (version != MESIBO_MODULE_VERSION) {
		flog(&tmp, 0, "filter: module API version %jd, expected %d", (intmax_t)version,
		     MESIBO_MODULE_VERSION);
		return MESIBO_RESULT_FAIL;
	}

	filter_t *f = calloc(1, sizeof *f);
	if (!f) {
		flog(&tmp, 0, "filter: out of memory");
		return MESIBO_RESULT_FAIL;
	}
	*f = tmp;

	int rc;
	if (f->rev == REV_DOC)
		rc = doc_config ? configure(f, doc_config->count, doc_config->items) : configure(f, 0, NULL);
	else {
		rev_config_t *c = ((r19_module_t *)mod)->config; /* offset 40 in both */
		rc = c ? configure(f, c->count, c->items) : configure(f, 0, NULL);
	}
	if (rc < 0) {
		words_free(f);
		free(f);
		return MESIBO_RESULT_FAIL;
	}

	switch (f->rev) {
	case REV_DOC: {
		mesibo_module_t *m = mod;
		m->version = MESIBO_MODULE_VERSION;
		m->flags = 0;
		m->name = "filter";
		m->ctx = f;
		m->on_message = doc_on_message;
		m->cleanup = doc_cleanup;
		break;
	}
	case REV_R2019: {
		r19_module_t *m = mod;
		m->version = MESIBO_MODULE_VERSION;
		m->flags = 0;
		m->name = "filter";
		m->description = "profanity filter (mesibo-iot reference module)";
		m->ctx = f;
		m->on_message = r19_on_message;
		m->on_cleanup = r19_cleanup;
		break;
	}
	default: {
		r20_module_t *m = mod;
		m->version = MESIBO_MODULE_VERSION;
		m->flags = 0;
		m->name = "filter";
		m->description = "profanity filter (mesibo-iot reference module)";
		m->ctx = f;
		m->on_message = r20_on_message;
		m->on_cleanup = r20_cleanup;
		break;
	}
	}
	static const char *revname[] = {"doc", "r2019", "r2020"};
	flog(f, 1, "filter: abi %s, %zu blocked word(s), notify=%d", revname[f->rev], f->nwords,
	     f->notify);
	return MESIBO_RESULT_OK;
}
