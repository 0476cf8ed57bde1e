/*
 * fastpath.h — on_message without entering Go (issue #8).
 *
 * Each instance keeps, in C:
 *   - a copy of the routing decision Module.Passes makes (the bridge's and
 *     the devices' addresses, the device groups' ids) as an immutable hash
 *     table. Go publishes a new one at init and at every reload
 *     (iot_fp_publish); readers on mesibo's threads hold a read lock on the
 *     instance's rwlock while they look up, the publisher swaps the pointer
 *     under the write lock and frees the old table after it, so a table is
 *     never freed while a reader holds it;
 *   - a bounded FIFO (the inbox, inbox_size messages, mutex-protected ring)
 *     of the messages that are the module's, each copied into one malloc'd
 *     block (iot_msg_t) before on_message returns CONSUMED. A Go goroutine
 *     (the drainer, cabi/fastpath.go) pops them in batches (iot_fp_next) and
 *     frees them. When the inbox is empty it naps on a timer for up to
 *     2 ms, then sleeps on an eventfd that a producer writes only when the
 *     drainer said it was going to sleep (iot_fp_idle, fastpath.c: a
 *     wake-up costs the producer a system call).
 * A message that is not the module's returns PASS in C; one that is, when
 * the inbox is full, is answered "busy" by Go (mesibo_iot_go_busy), not
 * queued. Before the first table is published (or when building one failed)
 * on_message goes to Go as before (mesibo_iot_go_on_message).
 */
#ifndef MESIBO_IOT_FASTPATH_H
#define MESIBO_IOT_FASTPATH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct iot_routes iot_routes_t;

/* One queued message: this header, then to NUL from NUL body NUL, all in one
 * malloc'd block (iot_msg_data). Freed by iot_fp_next / iot_fp_free_msgs. */
typedef struct iot_msg {
	uint64_t aid, id, refid, groupid, flags, type, expiry;
	uint64_t cb_ns; /* time on_message spent on it up to queueing */
	uint32_t tolen, fromlen, bodylen, toolong;
} iot_msg_t;

static inline char *iot_msg_data(iot_msg_t *m) { return (char *)(m + 1); }

typedef struct iot_fastpath {
	int ready;             /* iot_fp_start succeeded: the fields below are set up */
	pthread_rwlock_t lock; /* guards table */
	iot_routes_t *table;   /* NULL: no table, on_message asks Go */
	pthread_mutex_t mu;    /* guards ring, head, count, closed, waiting */
	iot_msg_t **ring;
	uint32_t cap, head, count;
	int closed;  /* cleanup began: nothing more is queued, everything PASSes */
	int waiting; /* the drainer found the ring empty and is going to sleep */
	int naps;    /* the drainer's own: naps since it last found a message */
	uint32_t max_message;
	int efd; /* eventfd the producers write and the drainer waits on */
} iot_fastpath_t;

struct iot_instance;
struct iot_params;

/* Called from the per-revision callbacks: np has every field but tolen and
 * fromlen set (to and from never NULL). Returns PASS or CONSUMED. */
int64_t iot_fp_on_message(struct iot_instance *inst, struct iot_params *np, const char *msg,
                          uint64_t len);

/* Called from Go. */
int iot_fp_start(struct iot_instance *inst, uint32_t cap, uint32_t max_message);
void iot_fp_idle(struct iot_instance *inst);
void iot_fp_wake(struct iot_instance *inst);
int iot_fp_thread_batch(void);
int iot_fp_publish(struct iot_instance *inst, const void *buf, size_t len);
uint32_t iot_fp_next(struct iot_instance *inst, iot_msg_t **done, uint32_t ndone, iot_msg_t **out,
                     uint32_t max);
void iot_fp_free_msgs(iot_msg_t **msgs, uint32_t n);
/* Called from the cleanup callbacks before Go tears the instance down. */
void iot_fp_close(struct iot_instance *inst);
/* Frees whatever is still queued, the table, the ring; closes the eventfd. */
void iot_fp_destroy(struct iot_instance *inst);

#endif
