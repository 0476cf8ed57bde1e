/*
 * conf.c — mesibo.conf module declaration parser. See conf.h and docs/host.md.
 */
#include "conf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ST_TOP, ST_PENDING, ST_BLOCK };

typedef struct {
	const char *filename;
	char *err;
	size_t errlen;
} perr_t;

static int fail(perr_t *pe, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(perr_t *pe, int line, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (pe->err && pe->errlen > 0)
		snprintf(pe->err, pe->errlen, "%s:%d: %s", pe->filename, line, msg);
	return -1;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int is_key_char(char c)
{
	return is_name_char(c) || c == '.' || c == '-';
}

static char *dupn(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

/* Shorten a piece of a line for an error message (printable ASCII only). */
static void snippet(char *dst, size_t dstlen, const char *s, size_t n)
{
	size_t j = 0;
	for (size_t i = 0; i < n && j + 4 < dstlen; i++) {
		unsigned char c = (unsigned char)s[i];
		dst[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (n > 0 && j + 4 >= dstlen && dstlen >= 4) {
		dst[j++] = '.';
		dst[j++] = '.';
		dst[j++] = '.';
	}
	dst[j] = 0;
}

void conf_free(conf_t *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->nmodules; i++) {
		conf_module_t *m = &c->modules[i];
		for (int j = 0; j < m->nitems; j++) {
			free(m->items[j].name);
			free(m->items[j].value);
		}
		free(m->items);
		free(m->name);
	}
	memset(c, 0, sizeof *c);
}

/* Returns 0, or -1 after fail(). b..e is the trimmed text after '{'. */
static int open_block(perr_t *pe, int lineno, const char *b, const char *e, int *state)
{
	if (b == e) {
		*state = ST_BLOCK;
		return 0;
	}
	if (e - b == 1 && *b == '}') { /* "{}" or "{ }": empty block */
		*state = ST_TOP;
		return 0;
	}
	char sn[48];
	snippet(sn, sizeof sn, b, (size_t)(e - b));
	return fail(pe, lineno, "unexpected text after '{': '%s' (one 'key = value' per line)", sn);
}

int conf_parse(const char *text, size_t len, const char *filename, conf_t *out, char *err,
               size_t errlen)
{
	perr_t pe = {filename ? filename : "mesibo.conf", err, errlen};
	int state = ST_TOP;
	int lineno = 0;
	int block_line = 0;
	conf_module_t *cur = NULL;
	size_t pos = 0;

	if (err && errlen)
		err[0] = 0;
	if (!out)
		return -1;
	memset(out, 0, sizeof *out);
	if (!text && len)
		return fail(&pe, 0, "no text");

	while (pos < len) {
		const char *ls = text + pos;
		const char *nl = memchr(ls, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - ls) : len - pos;
		pos += ll + (nl ? 1 : 0);
		lineno++;

		if (ll > CONF_MAX_LINE) {
			fail(&pe, lineno, "line too long (%zu bytes, max %d)", ll, CONF_MAX_LINE);
			goto bad;
		}
		if (memchr(ls, 0, ll)) {
			fail(&pe, lineno, "NUL byte in line");
			goto bad;
		}
		const char *b = ls, *e = ls + ll;
		while (b < e && is_space(*b))
			b++;
		while (e > b && is_space(e[-1]))
			e--;
		if (b == e || *b == '#')
			continue;

		if (state == ST_PENDING) {
			if (*b == '{') {
				const char *r = b + 1;
				while (r < e && is_space(*r))
					r++;
				block_line = lineno;
				if (open_block(&pe, lineno, r, e, &state) < 0)
					goto bad;
				continue;
			}
			state = ST_TOP; /* no block: handle this line normally */
		}

		if (state == ST_BLOCK) {
			if (e - b == 1 && *b == '}') {
				state = ST_TOP;
				continue;
			}
			const char *k = b;
			while (k < e && is_key_char(*k))
				k++;
			const char *q = k;
			while (q < e && is_space(*q))
				q++;
			if (k == b || q == e || *q != '=') {
				char sn[48];
				snippet(sn, sizeof sn, b, (size_t)(e - b));
				fail(&pe, lineno, "expected 'key = value' or '}' in block of module '%s', got '%s'",
				     cur->name, sn);
				goto bad;
			}
			q++;
			while (q < e && is_space(*q))
				q++;
			if (cur->nitems >= CONF_MAX_ITEMS) {
				fail(&pe, lineno, "too many items in block of module '%s' (max %d)", cur->name,
				     CONF_MAX_ITEMS);
				goto bad;
			}
			if (!cur->items) {
				cur->items = calloc(CONF_MAX_ITEMS, sizeof *cur->items);
				if (!cur->items) {
					fail(&pe, lineno, "out of memory");
					goto bad;
				}
			}
			conf_item_t *it = &cur->items[cur->nitems];
			it->name = dupn(b, (size_t)(k - b));
			it->value = dupn(q, (size_t)(e - q));
			if (!it->name || !it->value) {
				free(it->name);
				free(it->value);
				it->name = it->value = NULL;
				fail(&pe, lineno, "out of memory");
				goto bad;
			}
			cur->nitems++;
			continue;
		}

		/* ST_TOP: only "module" declarations matter */
		if (e - b < 6 || memcmp(b, "module", 6) != 0)
			continue;
		const char *p = b + 6;
		if (p < e && !is_space(*p) && *p != '=')
			continue; /* e.g. "module_dir = ...": some other setting */
		while (p < e && is_space(*p))
			p++;
		if (p < e && *p == '=') {
			p++;
			while (p < e && is_space(*p))
				p++;
		}
		const char *n = p;
		while (p < e && is_name_char(*p))
			p++;
		if (p == n && (p == e || *p == '{')) {
			fail(&pe, lineno, "missing module name");
			goto bad;
		}
		if (p == n || (p < e && !is_space(*p) && *p != '{')) {
			const char *t = n;
			while (t < e && !is_space(*t) && *t != '{')
				t++;
			char sn[48];
			snippet(sn, sizeof sn, n, (size_t)(t - n));
			fail(&pe, lineno, "invalid module name '%s' (allowed: A-Z a-z 0-9 _)", sn);
			goto bad;
		}
		const char *ne = p;
		while (p < e && is_space(*p))
			p++;
		if (p < e && *p != '{') {
			char sn[48];
			snippet(sn, sizeof sn, p, (size_t)(e - p));
			fail(&pe, lineno, "unexpected text after module name: '%s'", sn);
			goto bad;
		}
		if (out->nmodules >= CONF_MAX_MODULES) {
			fail(&pe, lineno, "too many modules (max %d)", CONF_MAX_MODULES);
			goto bad;
		}
		cur = &out->modules[out->nmodules];
		cur->name = dupn(n, (size_t)(ne - n));
		if (!cur->name) {
			fail(&pe, lineno, "out of memory");
			goto bad;
		}
		cur->line = lineno;
		out->nmodules++;
		if (p == e) {
			state = ST_PENDING;
		} else {
			p++;
			while (p < e && is_space(*p))
				p++;
			block_line = lineno;
			if (open_block(&pe, lineno, p, e, &state) < 0)
				goto bad;
		}
	}

	if (state == ST_BLOCK) {
		fail(&pe, block_line, "unterminated block of module '%s' (no closing '}')", cur->name);
		goto bad;
	}
	return 0;

bad:
	conf_free(out);
	return -1;
}
