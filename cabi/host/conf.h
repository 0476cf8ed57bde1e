/*
 * conf.h — parser for the module declarations of a mesibo.conf file.
 *
 * Grammar (line based, see docs/host.md):
 *   module NAME            module = NAME            module=NAME
 *   each optionally followed by a block, the '{' on the same line or on the
 *   next non-blank, non-comment line:
 *   {
 *     key = value          (value: rest of the line, trimmed; may hold spaces, ',' and '=')
 *   }
 *   Whole-line '#' comments and blank lines anywhere. Other top-level lines
 *   (mesibo's other settings) are ignored.
 *
 * conf_parse is pure: no I/O, no globals; it can be fuzzed.
 */
#ifndef MESIBO_HOST_CONF_H
#define MESIBO_HOST_CONF_H

#include <stddef.h>

#define CONF_MAX_MODULES 64
#define CONF_MAX_ITEMS 256
#define CONF_MAX_LINE 4096 /* bytes, not counting the line end */

typedef struct conf_item {
	char *name;
	char *value;
} conf_item_t;

typedef struct conf_module {
	char *name;  /* [A-Za-z0-9_]+ */
	int line;    /* line of the declaration */
	int nitems;
	conf_item_t *items; /* nitems entries (NULL when 0) */
} conf_module_t;

typedef struct conf {
	int nmodules;
	conf_module_t modules[CONF_MAX_MODULES];
} conf_t;

/*
 * Parses len bytes of text. On success returns 0 and fills *out (release it
 * with conf_free). On error returns -1, leaves *out empty (nothing to free)
 * and writes "filename:line: message" into err (always NUL-terminated when
 * errlen > 0). filename may be NULL ("mesibo.conf" is used).
 */
int conf_parse(const char *text, size_t len, const char *filename, conf_t *out, char *err,
               size_t errlen);

void conf_free(conf_t *c);

#endif
