/*
 * trampoline.h — the neutral form between mesibo's three ABI revisions and Go.
 *
 * The C side (trampoline.c) owns everything revision-specific: it tells the
 * revisions apart at init, installs the right callbacks, translates each
 * revision's params/user structs into iot_params_t before calling Go, and
 * builds the revision's params struct when Go sends. Go never sees a mesibo
 * struct and C never holds a Go pointer: mod->ctx is the C instance below,
 * whose handle is a slot number in the Go side's instance table (1..64).
 * on_message is decided in C (fastpath.h): only the module's own messages
 * reach Go, through a per-instance inbox a Go goroutine drains.
 */
#ifndef MESIBO_IOT_TRAMPOLINE_H
#define MESIBO_IOT_TRAMPOLINE_H

#include <stddef.h>
#include <stdint.h>

#include "fastpath.h"

enum iot_rev { IOT_REV_DOC = 1, IOT_REV_2019 = 2, IOT_REV_2020 = 3 };

/* One loaded instance, allocated in C at init (never moves, freed at cleanup). */
typedef struct iot_instance {
	int rev;
	void *mod;       /* the host's module struct, of revision rev */
	void *msg_fn;    /* r2019/r2020: host's exported mesibo_message */
	void *log_fn;    /* r2019/r2020: host's exported mesibo_log */
	uintptr_t handle; /* the Go instance's slot number (exports.go); 0 before init completes */
	iot_fastpath_t fp; /* the C side of on_message (fastpath.h) */
} iot_instance_t;

/* Message parameters in one neutral form. Strings belong to the host and are
 * valid only during the callback; lengths are computed in C. */
typedef struct iot_params {
	uint64_t aid, id, refid, groupid, flags, type, expiry, status;
	const char *to, *from;
	uint64_t tolen, fromlen;
} iot_params_t;

/* Called from Go. All pointers are only read during the call; the host copies
 * what it keeps (to, from and message must be NUL-terminated). */
int64_t iot_send(iot_instance_t *inst, uint64_t aid, uint64_t id, uint64_t refid,
                 uint64_t groupid, uint64_t flags, uint64_t type, uint64_t expiry,
                 const char *to, const char *from, const char *msg, uint64_t len);
int64_t iot_log(iot_instance_t *inst, uint64_t level, const char *text);
/* Frees the instance and what its fast path holds (iot_fp_destroy). */
void iot_free_instance(iot_instance_t *inst);

#endif
