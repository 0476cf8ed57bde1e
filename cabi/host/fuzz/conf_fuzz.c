/*
 * conf_fuzz.c — libFuzzer target for conf_parse() (cabi/host/conf.c), the
 * host's mesibo.conf parser: the file it reads is untrusted input for the
 * host. Built with clang -fsanitize=fuzzer,address,undefined by run.sh;
 * every input must parse or fail cleanly (no crash, no leak, no undefined
 * behaviour), and what parses must obey docs/host.md:
 *   - at most CONF_MAX_MODULES modules, CONF_MAX_ITEMS items each;
 *   - module names [A-Za-z0-9_]+, item keys [A-Za-z0-9_.-]+;
 *   - values without NUL or line end, trimmed; declaration lines increasing;
 *   - an error is "fuzz.conf:LINE: message", NUL-terminated, within errlen,
 *     and leaves the result empty.
 */
#include "../conf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                         \
	do {                                                                                \
		if (!(cond)) {                                                              \
			fprintf(stderr, "conf_fuzz: check failed: %s (%s:%d)\n", #cond, __FILE__, \
			        __LINE__);                                                  \
			abort();                                                            \
		}                                                                           \
	} while (0)

static int name_ok(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
			return 0;
	}
	return 1;
}

static int key_ok(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

static int blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	conf_t c;
	char err[200];
	memset(err, 'x', sizeof err);
	/* a small err buffer now and then: the message must be truncated, not overflow */
	size_t errlen = (size > 0 && data[0] == '!') ? 7 : sizeof err;
	int rc = conf_parse((const char *)data, size, "fuzz.conf", &c, err, errlen);
	if (rc != 0) {
		CHECK(rc == -1);
		CHECK(memchr(err, 0, errlen) != NULL);
		CHECK(strncmp(err, "fuzz.conf:", errlen - 1 < 10 ? errlen - 1 : 10) == 0);
		CHECK(c.nmodules == 0);
		return 0;
	}
	CHECK(c.nmodules >= 0 && c.nmodules <= CONF_MAX_MODULES);
	int last = 0;
	for (int i = 0; i < c.nmodules; i++) {
		conf_module_t *m = &c.modules[i];
		CHECK(name_ok(m->name));
		CHECK(m->line > last);
		last = m->line;
		CHECK(m->nitems >= 0 && m->nitems <= CONF_MAX_ITEMS);
		CHECK(m->nitems == 0 || m->items != NULL);
		for (int j = 0; j < m->nitems; j++) {
			const char *v = m->items[j].value;
			CHECK(key_ok(m->items[j].name));
			CHECK(v != NULL);
			size_t n = strlen(v);
			CHECK(n <= CONF_MAX_LINE);
			CHECK(strchr(v, '\n') == NULL);
			CHECK(n == 0 || (!blank(v[0]) && !blank(v[n - 1])));
		}
	}
	conf_free(&c);
	CHECK(c.nmodules == 0);
	return 0;
}
