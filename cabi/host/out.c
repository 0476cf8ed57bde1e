/*
 * out.c — line output (one mutex, one line per write, fflush after each),
 * escaping, small allocation helpers.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host.h"

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static int out_closed;

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fputs("mesibo-host: out of memory\n", stderr);
		abort();
	}
	return p;
}

void *xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (!p) {
		fputs("mesibo-host: out of memory\n", stderr);
		abort();
	}
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sb_grow(sb_t *s, size_t extra)
{
	if (s->n + extra + 1 <= s->cap)
		return;
	size_t cap = s->cap ? s->cap : 128;
	while (cap < s->n + extra + 1)
		cap *= 2;
	char *b = realloc(s->b, cap);
	if (!b) {
		fputs("mesibo-host: out of memory\n", stderr);
		abort();
	}
	s->b = b;
	s->cap = cap;
}

void sb_add(sb_t *s, const char *p, size_t n)
{
	sb_grow(s, n);
	memcpy(s->b + s->n, p, n);
	s->n += n;
	s->b[s->n] = 0;
}

void sb_printf(sb_t *s, const char *fmt, ...)
{
	va_list ap, aq;
	va_start(ap, fmt);
	va_copy(aq, ap);
	char tmp[256];
	int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (k < 0) {
		va_end(aq);
		return;
	}
	if ((size_t)k < sizeof tmp) {
		sb_add(s, tmp, (size_t)k);
	} else {
		sb_grow(s, (size_t)k);
		vsnprintf(s->b + s->n, (size_t)k + 1, fmt, aq);
		s->n += (size_t)k;
	}
	va_end(aq);
}

void sb_esc(sb_t *s, const char *p, size_t n, int field)
{
	static const char hex[] = "0123456789abcdef";
	sb_grow(s, n);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		char e[4];
		size_t el = 0;
		switch (c) {
		case '\\': e[0] = '\\'; e[1] = '\\'; el = 2; break;
		case '\n': e[0] = '\\'; e[1] = 'n'; el = 2; break;
		case '\r': e[0] = '\\'; e[1] = 'r'; el = 2; break;
		case '\t': e[0] = '\\'; e[1] = 't'; el = 2; break;
		default:
			if (c < 0x20 || c == 0x7f || (field && c == ' ')) {
				e[0] = '\\';
				e[1] = 'x';
				e[2] = hex[c >> 4];
				e[3] = hex[c & 15];
				el = 4;
			}
		}
		if (el)
			sb_add(s, e, el);
		else
			sb_add(s, (const char *)&c, 1);
	}
}

void sb_field(sb_t *s, const char *str)
{
	if (!str) {
		sb_add(s, "(null)", 6);
		return;
	}
	sb_esc(s, str, strlen(str), 1);
}

void out_emit(sb_t *s)
{
	sb_add(s, "\n", 1);
	pthread_mutex_lock(&out_mu);
	if (!out_closed) {
		fwrite(s->b, 1, s->n, stdout);
		fflush(stdout);
	}
	pthread_mutex_unlock(&out_mu);
	free(s->b);
	s->b = NULL;
	s->n = s->cap = 0;
}

void out_line(const char *fmt, ...)
{
	sb_t s = {0};
	va_list ap;
	va_start(ap, fmt);
	char tmp[512];
	int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (k < 0)
		return;
	if ((size_t)k < sizeof tmp) {
		sb_add(&s, tmp, (size_t)k);
	} else {
		char *big = xmalloc((size_t)k + 1);
		va_start(ap, fmt);
		vsnprintf(big, (size_t)k + 1, fmt, ap);
		va_end(ap);
		sb_add(&s, big, (size_t)k);
		free(big);
	}
	out_emit(&s);
}

void out_close(void)
{
	pthread_mutex_lock(&out_mu);
	fflush(stdout);
	out_closed = 1;
	pthread_mutex_unlock(&out_mu);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t text_unescape(char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '\\' && i + 1 < n) {
			char d = s[i + 1];
			if (d == 'n') { s[o++] = '\n'; i++; continue; }
			if (d == 't') { s[o++] = '\t'; i++; continue; }
			if (d == 'r') { s[o++] = '\r'; i++; continue; }
			if (d == '\\') { s[o++] = '\\'; i++; continue; }
			if (d == 'x' && i + 3 < n && hexval(s[i + 2]) >= 0 && hexval(s[i + 3]) >= 0) {
				s[o++] = (char)(hexval(s[i + 2]) * 16 + hexval(s[i + 3]));
				i += 3;
				continue;
			}
		}
		s[o++] = c; /* anything else is kept as written */
	}
	return o;
}
