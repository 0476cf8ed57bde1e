/*
 * main.c — mesibo-host: a mesibo-compatible host for loadable modules, driven
 * by a line protocol on stdin/stdout (docs/host.md).
 *
 * Threads:
 *   main loop  — the only thread that calls into modules (init, on_message,
 *                on_message_status, on_login, on_call, on_call_status,
 *                cleanup, http callbacks); owns users, groups, queues.
 *   reader     — reads stdin, handles `sleep`, enqueues every other line.
 *   http       — one detached libcurl worker per request (http.c).
 *   modules    — may call the host API from any thread (api.c); those calls
 *                copy their arguments and enqueue events.
 * Two queues feed the main loop: internal events (module sends, http data)
 * always go before the next stdin command, so `sync` is printed only after
 * everything the earlier commands caused has been processed.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host.h"

#define DEFAULT_EXPIRY 3600u
#define MAX_EXPIRY (10ull * 365 * 24 * 3600)
#define MAX_CMD_LINE (16u * 1024u * 1024u)
#define MAX_CONF_FILE (16u * 1024u * 1024u)

hmod_t g_mods[CONF_MAX_MODULES];
_Atomic int g_nmods;
int g_abi = ABI_DOC;
uint64_t g_loglevel = 2;
int g_interactive;
int g_stamp; /* --stamp: monotonic timestamps on decision and send lines */

static const char *abi_names[] = {"doc", "r2019", "r2020"};

/* ------------------------------------------------------------------ */
/* event queue                                                         */

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cv;
static event_t *qi_head, *qi_tail; /* internal: module sends, http */
static event_t *qc_head, *qc_tail; /* stdin commands */

static void push_locked(event_t **h, event_t **t, event_t *ev)
{
	ev->next = NULL;
	pthread_mutex_lock(&q_mu);
	if (*t)
		(*t)->next = ev;
	else
		*h = ev;
	*t = ev;
	pthread_cond_signal(&q_cv);
	pthread_mutex_unlock(&q_mu);
}

void evq_push_internal(event_t *ev)
{
	push_locked(&qi_head, &qi_tail, ev);
}

void evq_push_cmd(event_t *ev)
{
	push_locked(&qc_head, &qc_tail, ev);
}

static event_t *pop_locked(void)
{
	event_t *ev = NULL;
	if (qi_head) {
		ev = qi_head;
		qi_head = ev->next;
		if (!qi_head)
			qi_tail = NULL;
	} else if (qc_head) {
		ev = qc_head;
		qc_head = ev->next;
		if (!qc_head)
			qc_tail = NULL;
	}
	return ev;
}

static void push_line(const char *line)
{
	event_t *ev = xcalloc(1, sizeof *ev);
	ev->kind = EV_LINE;
	ev->line = line ? xstrdup(line) : NULL;
	evq_push_cmd(ev);
}

/* ------------------------------------------------------------------ */
/* main-loop state: users, groups, queued messages, read receipts      */

typedef struct strvec {
	char **v;
	size_t n, cap;
} strvec_t;

static strvec_t online;

typedef struct group {
	struct group *next;
	uint64_t gid;
	strvec_t members;
} group_t;

static group_t *groups;
static hmsg_t *pend_head, *pend_tail; /* queued for offline users, arrival order */

typedef struct rrec {
	struct rrec *next;
	hmsg_t *m; /* delivered module message with READRECEIPT; m->rcpt is the reader */
} rrec_t;

static rrec_t *rrecs;

static void sv_add(strvec_t *s, const char *str)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		char **v = realloc(s->v, s->cap * sizeof *v);
		if (!v)
			abort();
		s->v = v;
	}
	s->v[s->n++] = xstrdup(str);
}

static long sv_find(const strvec_t *s, const char *str)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], str) == 0)
			return (long)i;
	return -1;
}

static void sv_del(strvec_t *s, size_t i)
{
	free(s->v[i]);
	s->v[i] = s->v[--s->n];
}

static void sv_clear(strvec_t *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	s->n = 0;
}

static int is_online(const char *u)
{
	return u && sv_find(&online, u) >= 0;
}

static group_t *group_find(uint64_t gid)
{
	for (group_t *g = groups; g; g = g->next)
		if (g->gid == gid)
			return g;
	return NULL;
}

static void hmsg_free(hmsg_t *m)
{
	if (!m)
		return;
	free(m->to);
	free(m->from);
	free(m->rcpt);
	free(m->data);
	free(m);
}

static hmsg_t *hmsg_clone(const hmsg_t *m)
{
	hmsg_t *c = xcalloc(1, sizeof *c);
	*c = *m;
	c->next = NULL;
	c->to = xstrdup(m->to);
	c->from = xstrdup(m->from);
	c->rcpt = m->rcpt ? xstrdup(m->rcpt) : NULL;
	c->data = xmalloc(m->len + 1);
	memcpy(c->data, m->data, m->len);
	c->data[m->len] = 0;
	return c;
}

/* ------------------------------------------------------------------ */
/* calling modules (main loop only)                                    */

typedef union pbuf {
	mesibo_message_params_t d;
	r19_params_t r19;
	r20_params_t r20;
} pbuf_t;

static void params_fill(pbuf_t *pb, const nparams_t *np, char *to, char *from)
{
	memset(pb, 0, sizeof *pb);
	switch (g_abi) {
	case ABI_DOC: {
		mesibo_message_params_t *p = &pb->d;
		p->aid = np->aid; p->id = np->id; p->refid = np->refid; p->groupid = np->groupid;
		p->flags = np->flags; p->type = np->type; p->expiry = np->expiry;
		p->to_online = np->to_online;
		p->to = to;
		p->from = from;
		break;
	}
	case ABI_R2019: {
		r19_params_t *p = &pb->r19;
		p->aid = np->aid; p->id = np->id; p->refid = np->refid; p->groupid = np->groupid;
		p->flags = np->flags; p->type = np->type; p->expiry = np->expiry;
		p->to_online = np->to_online;
		p->to = to;
		p->from = from;
		break;
	}
	default: {
		r20_params_t *p = &pb->r20;
		p->aid = np->aid; p->id = np->id; p->refid = np->refid; p->groupid = np->groupid;
		p->flags = np->flags; p->type = np->type; p->expiry = np->expiry;
		p->uflags = np->uflags; p->status = np->status; p->sid = np->sid; p->device = np->device;
		p->to = to;
		p->from = from;
		break;
	}
	}
}

/* Return values are read as a C int (the low 32 bits): the document's own
 * init example is declared `int`, and a module built that way leaves the
 * upper half of the register undefined in general. */
static int rc32(mesibo_int_t v)
{
	return (int)(int32_t)(uint32_t)(uint64_t)v;
}

static int mod_active(int i)
{
	return atomic_load(&g_mods[i].state) == MOD_ACTIVE;
}

static void sb_result(sb_t *s, int rc)
{
	if (rc == MESIBO_RESULT_PASS)
		sb_add(s, "PASS", 4);
	else if (rc == MESIBO_RESULT_CONSUMED)
		sb_add(s, "CONSUMED", 8);
	else
		sb_printf(s, "%d", rc);
}

/* on_message; returns 0 when the module has no on_message */
static int call_on_message(int i, hmsg_t *m, int *rc)
{
	void *mem = g_mods[i].mem;
	pbuf_t pb;
	params_fill(&pb, &m->p, m->to, m->from);
	/* each module gets its own copy: a module that edits the buffer in place
	 * (mesibo's skeleton sample does) cannot change what others see */
	char *buf = xmalloc(m->len + 1);
	memcpy(buf, m->data, m->len);
	buf[m->len] = 0;
	int called = 1;
	switch (g_abi) {
	case ABI_DOC: {
		mesibo_module_t *mm = mem;
		if (mm->on_message)
			*rc = rc32(mm->on_message(mm, &pb.d, buf, m->len));
		else
			called = 0;
		break;
	}
	case ABI_R2019: {
		r19_module_t *mm = mem;
		if (mm->on_message)
			*rc = rc32(mm->on_message(mm, &pb.r19, buf, m->len));
		else
			called = 0;
		break;
	}
	default: {
		r20_module_t *mm = mem;
		if (mm->on_message)
			*rc = rc32(mm->on_message(mm, &pb.r20, buf, m->len));
		else
			called = 0;
		break;
	}
	}
	free(buf);
	return called;
}

static void call_status(hmsg_t *m, uint64_t status)
{
	int i = m->mod;
	if (i < 0 || !mod_active(i))
		return;
	void *mem = g_mods[i].mem;
	pbuf_t pb;
	nparams_t np = m->p;
	np.status = status;
	params_fill(&pb, &np, m->to, m->from);
	int rc = 0;
	switch (g_abi) {
	case ABI_DOC: {
		mesibo_module_t *mm = mem;
		if (!mm->on_message_status)
			return;
		rc = rc32(mm->on_message_status(mm, &pb.d, status));
		break;
	}
	case ABI_R2019: {
		r19_module_t *mm = mem;
		if (!mm->on_message_status)
			return;
		rc = rc32(mm->on_message_status(mm, &pb.r19, status));
		break;
	}
	default: {
		r20_module_t *mm = mem;
		if (!mm->on_message_status)
			return;
		rc = rc32(mm->on_message_status(mm, &pb.r20));
		break;
	}
	}
	sb_t s = {0};
	sb_add(&s, "status ", 7);
	sb_field(&s, g_mods[i].name);
	sb_printf(&s, " id=%ju from=", (uintmax_t)m->p.id);
	sb_field(&s, m->from);
	sb_add(&s, " to=", 4);
	sb_field(&s, m->to);
	sb_printf(&s, " status=%ju result=%d", (uintmax_t)status, rc);
	out_emit(&s);
}

static void call_login(const char *user, int on)
{
	int n = atomic_load(&g_nmods);
	for (int i = 0; i < n; i++) {
		if (!mod_active(i))
			continue;
		char *addr = xstrdup(user);
		if (g_abi == ABI_DOC) {
			mesibo_module_t *mm = g_mods[i].mem;
			mesibo_user_t u = {0};
			u.flags = 0;
			u.address = addr;
			u.online = on;
			if (mm->on_login)
				(void)mm->on_login(mm, &u);
		} else {
			rev_user_t u = {0};
			u.flags = 0;
			u.online = on;
			u.address = addr;
			if (g_abi == ABI_R2019) {
				r19_module_t *mm = g_mods[i].mem;
				if (mm->on_login)
					(void)mm->on_login(mm, &u);
			} else {
				r20_module_t *mm = g_mods[i].mem;
				if (mm->on_login)
					(void)mm->on_login(mm, &u);
			}
		}
		free(addr);
	}
}

static void call_call(const char *what, int status, const char *from, const char *to)
{
	int n = atomic_load(&g_nmods);
	for (int i = 0; i < n; i++) {
		if (!mod_active(i))
			continue;
		void *mem = g_mods[i].mem;
		int rc;
		switch (g_abi) {
		case ABI_DOC: {
			mesibo_module_t *mm = mem;
			mesibo_int_t (*fn)(mesibo_module_t *) = status ? mm->on_call_status : mm->on_call;
			if (!fn)
				continue;
			rc = rc32(fn(mm));
			break;
		}
		case ABI_R2019: {
			r19_module_t *mm = mem;
			mesibo_int_t (*fn)(r19_module_t *) = status ? mm->on_call_status : mm->on_call;
			if (!fn)
				continue;
			rc = rc32(fn(mm));
			break;
		}
		default: {
			r20_module_t *mm = mem;
			mesibo_int_t (*fn)(r20_module_t *) = status ? mm->on_call_status : mm->on_call;
			if (!fn)
				continue;
			rc = rc32(fn(mm));
			break;
		}
		}
		sb_t s = {0};
		sb_printf(&s, "%s ", what);
		sb_field(&s, g_mods[i].name);
		sb_add(&s, " from=", 6);
		sb_field(&s, from);
		sb_add(&s, " to=", 4);
		sb_field(&s, to);
		sb_add(&s, " result=", 8);
		sb_result(&s, rc);
		out_emit(&s);
	}
}

/* ------------------------------------------------------------------ */
/* routing                                                             */

static void sb_msgfields(sb_t *s, const hmsg_t *m)
{
	sb_printf(s, " refid=%ju group=%ju flags=%ju type=%ju expiry=%ju len=%zu -- ",
	          (uintmax_t)m->p.refid, (uintmax_t)m->p.groupid, (uintmax_t)m->p.flags,
	          (uintmax_t)m->p.type, (uintmax_t)m->p.expiry, m->len);
	sb_esc(s, m->data, m->len, 0);
}

static void print_deliver(const hmsg_t *m)
{
	sb_t s = {0};
	if (g_interactive) {
		sb_field(&s, m->from);
		sb_add(&s, " \xe2\x86\x92 ", 5);
		sb_field(&s, m->rcpt);
		if (m->p.groupid)
			sb_printf(&s, " (group %ju)", (uintmax_t)m->p.groupid);
		sb_add(&s, ": ", 2);
		sb_esc(&s, m->data, m->len, 0);
		sb_printf(&s, "   [id %ju]", (uintmax_t)m->p.id);
		out_emit(&s);
		return;
	}
	sb_add(&s, "deliver ", 8);
	sb_field(&s, m->rcpt);
	sb_add(&s, " from=", 6);
	sb_field(&s, m->from);
	sb_printf(&s, " id=%ju", (uintmax_t)m->p.id);
	sb_msgfields(&s, m);
	out_emit(&s);
}

static void print_short(const char *ev, const hmsg_t *m)
{
	sb_t s = {0};
	sb_printf(&s, "%s ", ev);
	sb_field(&s, m->rcpt);
	sb_printf(&s, " id=%ju from=", (uintmax_t)m->p.id);
	sb_field(&s, m->from);
	out_emit(&s);
}

static void after_delivered(hmsg_t *m)
{
	if (m->mod < 0)
		return;
	if (m->p.flags & MESIBO_FLAG_DELIVERYRECEIPT)
		call_status(m, MESIBO_MSGSTATUS_DELIVERED);
	if (m->p.flags & MESIBO_FLAG_READRECEIPT) {
		rrec_t *r = xcalloc(1, sizeof *r);
		r->m = hmsg_clone(m);
		r->next = rrecs;
		rrecs = r;
	}
}

/* m->rcpt is set; takes ownership of m */
static void deliver_to(hmsg_t *m)
{
	if (is_online(m->rcpt)) {
		print_deliver(m);
		after_delivered(m);
		hmsg_free(m);
		return;
	}
	uint64_t exp = m->p.expiry ? m->p.expiry : DEFAULT_EXPIRY;
	if (exp > MAX_EXPIRY)
		exp = MAX_EXPIRY;
	m->deadline_ms = now_ms() + exp * 1000u;
	m->next = NULL;
	if (pend_tail)
		pend_tail->next = m;
	else
		pend_head = m;
	pend_tail = m;
	print_short("queued", m);
}

/* to one user, or to the members of a group (except the sender); takes ownership */
static void dispatch(hmsg_t *m)
{
	if (m->p.groupid == 0) {
		free(m->rcpt);
		m->rcpt = xstrdup(m->to);
		deliver_to(m);
		return;
	}
	group_t *g = group_find(m->p.groupid);
	if (!g || g->members.n == 0) {
		out_line("error group %ju has no members", (uintmax_t)m->p.groupid);
		hmsg_free(m);
		return;
	}
	for (size_t k = 0; k < g->members.n; k++) {
		if (strcmp(g->members.v[k], m->from) == 0)
			continue;
		hmsg_t *c = hmsg_clone(m);
		free(c->rcpt);
		c->rcpt = xstrdup(g->members.v[k]);
		deliver_to(c);
	}
	hmsg_free(m);
}

/* a message from a user: through the module chain, then dispatch */
static void route_user_message(hmsg_t *m)
{
	if (m->p.groupid == 0 && is_online(m->to)) {
		m->p.to_online = 1;
		m->p.uflags |= 0x1; /* r2020 DESTONLINE */
	}
	int n = atomic_load(&g_nmods);
	for (int i = 0; i < n; i++) {
		if (!mod_active(i))
			continue;
		int rc = 0;
		uint64_t t0 = g_stamp ? host_now_ns() : 0;
		if (!call_on_message(i, m, &rc))
			continue;
		uint64_t t1 = g_stamp ? host_now_ns() : 0;
		sb_t s = {0};
		sb_add(&s, "decision ", 9);
		sb_field(&s, g_mods[i].name);
		sb_printf(&s, " id=%ju from=", (uintmax_t)m->p.id);
		sb_field(&s, m->from);
		sb_add(&s, " to=", 4);
		sb_field(&s, m->to);
		sb_add(&s, " result=", 8);
		sb_result(&s, rc);
		if (g_stamp)
			sb_printf(&s, " t=%ju dt=%ju", (uintmax_t)t0, (uintmax_t)(t1 - t0));
		out_emit(&s);
		if (rc == MESIBO_RESULT_CONSUMED) {
			hmsg_free(m);
			return;
		}
	}
	m->p.to_online = 0;
	m->p.uflags = 0;
	dispatch(m);
}

static void handle_send(hmsg_t *m)
{
	sb_t s = {0};
	sb_add(&s, "send ", 5);
	sb_field(&s, g_mods[m->mod].name);
	sb_add(&s, " from=", 6);
	sb_field(&s, m->from);
	sb_add(&s, " to=", 4);
	sb_field(&s, m->to);
	sb_printf(&s, " id=%ju", (uintmax_t)m->p.id);
	if (g_stamp)
		sb_printf(&s, " t=%ju", (uintmax_t)m->t_ns);
	sb_msgfields(&s, m);
	out_emit(&s);
	dispatch(m);
}

static void expire_due(void)
{
	uint64_t now = now_ms();
	hmsg_t **pp = &pend_head, *prev = NULL;
	while (*pp) {
		hmsg_t *m = *pp;
		if (m->deadline_ms > now) {
			prev = m;
			pp = &m->next;
			continue;
		}
		*pp = m->next;
		if (pend_tail == m)
			pend_tail = prev;
		print_short("expired", m);
		if (m->mod >= 0 && (m->p.flags & (MESIBO_FLAG_DELIVERYRECEIPT | MESIBO_FLAG_READRECEIPT)))
			call_status(m, MESIBO_MSGSTATUS_FAIL);
		hmsg_free(m);
	}
}

static uint64_t next_deadline(void)
{
	uint64_t d = UINT64_MAX;
	for (hmsg_t *m = pend_head; m; m = m->next)
		if (m->deadline_ms < d)
			d = m->deadline_ms;
	return d;
}

static void deliver_pending(const char *user)
{
	hmsg_t *mine = NULL, **mt = &mine;
	hmsg_t **pp = &pend_head, *prev = NULL;
	while (*pp) {
		hmsg_t *m = *pp;
		if (strcmp(m->rcpt, user) != 0) {
			prev = m;
			pp = &m->next;
			continue;
		}
		*pp = m->next;
		if (pend_tail == m)
			pend_tail = prev;
		m->next = NULL;
		*mt = m;
		mt = &m->next;
	}
	while (mine) {
		hmsg_t *m = mine;
		mine = m->next;
		m->next = NULL;
		deliver_to(m);
	}
}

/* ------------------------------------------------------------------ */
/* commands                                                            */

static int parse_u64(const char *s, uint64_t *v)
{
	if (!s || !*s)
		return -1;
	int base = 10;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		if (!*s)
			return -1;
	}
	uint64_t r = 0;
	for (; *s; s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return -1;
		if (r > (UINT64_MAX - d) / (uint64_t)base)
			return -1;
		r = r * (uint64_t)base + d;
	}
	*v = r;
	return 0;
}

#define MAX_TOKENS 4096

/* splits s in place at runs of spaces */
static int tokenize(char *s, char **tok, int max)
{
	int n = 0;
	while (*s) {
		while (*s == ' ')
			s++;
		if (!*s)
			break;
		if (n == max)
			return -1;
		tok[n++] = s;
		while (*s && *s != ' ')
			s++;
		if (*s)
			*s++ = 0;
	}
	return n;
}

static void cmd_msg(char **tok, int nt, char *text, size_t tlen)
{
	uint64_t id;
	if (nt < 4) {
		out_line("error usage: msg <from> <to> <id> [aid=N] [group=N] [expiry=S] [flags=N] "
		         "[type=N] [refid=N] -- <text>");
		return;
	}
	if (parse_u64(tok[3], &id) < 0) {
		out_line("error msg: bad id '%s'", tok[3]);
		return;
	}
	hmsg_t *m = xcalloc(1, sizeof *m);
	m->mod = -1;
	m->p.id = id;
	for (int i = 4; i < nt; i++) {
		char *eq = strchr(tok[i], '=');
		uint64_t v;
		if (!eq || parse_u64(eq + 1, &v) < 0) {
			out_line("error msg: bad option '%s'", tok[i]);
			free(m);
			return;
		}
		*eq = 0;
		const char *k = tok[i];
		if (!strcmp(k, "aid"))
			m->p.aid = v;
		else if (!strcmp(k, "group"))
			m->p.groupid = v;
		else if (!strcmp(k, "expiry"))
			m->p.expiry = v;
		else if (!strcmp(k, "flags"))
			m->p.flags = v;
		else if (!strcmp(k, "type"))
			m->p.type = v;
		else if (!strcmp(k, "refid"))
			m->p.refid = v;
		else {
			out_line("error msg: unknown option '%s'", k);
			free(m);
			return;
		}
	}
	m->from = xstrdup(tok[1]);
	m->to = xstrdup(tok[2]);
	m->len = text_unescape(text, tlen);
	m->data = xstrndup(text, m->len);
	route_user_message(m);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* module-provided heap allocation counter (Go modules export it), or NULL */
typedef uint64_t (*allocs_fn)(void);

static allocs_fn module_allocs(void)
{
	int n = atomic_load(&g_nmods);
	for (int i = 0; i < n; i++) {
		if (!g_mods[i].handle)
			continue;
		allocs_fn f = (allocs_fn)dlsym(g_mods[i].handle, "mesibo_module_debug_allocs");
		if (f)
			return f;
	}
	return NULL;
}

/* debug: for each loaded module that exports mesibo_module_debug_goroutines
 * or mesibo_module_debug_heap_bytes (Go modules do; each Go module has its own
 * runtime), one line "debug <module> goroutines=<n>|na heap_bytes=<n>|na";
 * "debug none" when no module exports either. Called from the main loop, so
 * no callback runs at the same time. */
typedef uint64_t (*debug_fn)(void);

static void cmd_debug(void)
{
	int n = atomic_load(&g_nmods), shown = 0;
	for (int i = 0; i < n; i++) {
		if (!g_mods[i].handle || atomic_load(&g_mods[i].state) != MOD_ACTIVE)
			continue;
		debug_fn gr = (debug_fn)dlsym(g_mods[i].handle, "mesibo_module_debug_goroutines");
		debug_fn hb = (debug_fn)dlsym(g_mods[i].handle, "mesibo_module_debug_heap_bytes");
		if (!gr && !hb)
			continue;
		sb_t s = {0};
		sb_add(&s, "debug ", 6);
		sb_field(&s, g_mods[i].name);
		if (gr)
			sb_printf(&s, " goroutines=%ju", (uintmax_t)gr());
		else
			sb_add(&s, " goroutines=na", 14);
		if (hb)
			sb_printf(&s, " heap_bytes=%ju", (uintmax_t)hb());
		else
			sb_add(&s, " heap_bytes=na", 14);
		out_emit(&s);
		shown++;
	}
	if (!shown)
		out_line("debug none");
}

/* bench <n> <from> <to> [options] -- <text>: calls the module chain's
 * on_message n times with one message (a fresh id each time) and reports the
 * time per message, measured here around the calls only; nothing is
 * delivered or printed per message. Options:
 *   lat       time every call on its own and print percentiles
 *   rate=R    pace the calls at R per second (the waits are not timed)
 *   nfrom=K   the sender of call k (from 0) is <from><k mod K + 1>
 *   nto=K     the recipient of call k is <to><k mod K + 1>
 *   id0=N     message ids are N+1, N+2, ... (default 1, 2, ...) */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static char **bench_names(const char *base, uint64_t k)
{
	char **v = xcalloc(k, sizeof *v);
	size_t bl = strlen(base);
	for (uint64_t i = 0; i < k; i++) {
		v[i] = xmalloc(bl + 24);
		snprintf(v[i], bl + 24, "%s%ju", base, (uintmax_t)(i + 1));
	}
	return v;
}

static void bench_free_names(char **v, uint64_t k)
{
	for (uint64_t i = 0; v && i < k; i++)
		free(v[i]);
	free(v);
}

static void sleep_until_ns(uint64_t t)
{
	struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void cmd_bench(char **tok, int nt, char *text, size_t tlen)
{
	uint64_t n, nfrom = 0, nto = 0, id0 = 0, rate = 0;
	int lat = 0, bad = nt < 4 || parse_u64(tok[1], &n) < 0 || n == 0 || n > 100000000u;
	for (int i = 4; i < nt && !bad; i++) {
		char *eq = strchr(tok[i], '=');
		uint64_t v = 0;
		if (!strcmp(tok[i], "lat"))
			lat = 1;
		else if (!eq || parse_u64(eq + 1, &v) < 0)
			bad = 1;
		else if (!strncmp(tok[i], "nfrom=", 6) && v >= 1 && v <= 100000)
			nfrom = v;
		else if (!strncmp(tok[i], "nto=", 4) && v >= 1 && v <= 100000)
			nto = v;
		else if (!strncmp(tok[i], "id0=", 4) && v < UINT64_MAX - n)
			id0 = v;
		else if (!strncmp(tok[i], "rate=", 5) && v >= 1 && v <= 100000000u)
			rate = v;
		else
			bad = 1;
	}
	if (bad) {
		out_line("error usage: bench <n 1..1e8> <from> <to> [lat] [rate=R] [nfrom=K] [nto=K] [id0=N] -- <text>");
		return;
	}
	size_t len = text_unescape(text, tlen);
	char *buf = xstrndup(text, len);
	nparams_t np;
	memset(&np, 0, sizeof np);
	pbuf_t pb;
	params_fill(&pb, &np, tok[3], tok[2]);
	char **froms = nfrom ? bench_names(tok[2], nfrom) : NULL;
	char **tos = nto ? bench_names(tok[3], nto) : NULL;
	uint64_t *lats = lat ? xcalloc(n, sizeof *lats) : NULL;
	int timed_each = lat || rate;
	uint64_t gap = rate ? 1000000000u / rate : 0, busy = 0;
	int nm = atomic_load(&g_nmods);
	uint64_t pass = 0, consumed = 0;
	allocs_fn allocs = module_allocs();
	uint64_t a0 = allocs ? allocs() : 0;
	uint64_t t0 = now_ns();
	for (uint64_t k = 0; k < n; k++) {
		pb.d.id = pb.r19.id = pb.r20.id = id0 + k + 1;
		if (froms)
			pb.d.from = pb.r19.from = pb.r20.from = froms[k % nfrom];
		if (tos)
			pb.d.to = pb.r19.to = pb.r20.to = tos[k % nto];
		if (rate)
			sleep_until_ns(t0 + k * gap);
		uint64_t c0 = timed_each ? now_ns() : 0;
		int rc = MESIBO_RESULT_PASS;
		for (int i = 0; i < nm && rc != MESIBO_RESULT_CONSUMED; i++) {
			if (!mod_active(i))
				continue;
			void *mem = g_mods[i].mem;
			switch (g_abi) {
			case ABI_DOC: {
				mesibo_module_t *mm = mem;
				if (mm->on_message)
					rc = rc32(mm->on_message(mm, &pb.d, buf, len));
				break;
			}
			case ABI_R2019: {
				r19_module_t *mm = mem;
				if (mm->on_message)
					rc = rc32(mm->on_message(mm, &pb.r19, buf, len));
				break;
			}
			default: {
				r20_module_t *mm = mem;
				if (mm->on_message)
					rc = rc32(mm->on_message(mm, &pb.r20, buf, len));
				break;
			}
			}
		}
		if (timed_each) {
			uint64_t d = now_ns() - c0;
			busy += d;
			if (lats)
				lats[k] = d;
		}
		if (rc == MESIBO_RESULT_CONSUMED)
			consumed++;
		else
			pass++;
	}
	uint64_t t1 = now_ns();
	uint64_t a1 = allocs ? allocs() : 0;
	free(buf);
	bench_free_names(froms, nfrom);
	bench_free_names(tos, nto);
	double per = (double)(timed_each ? busy : t1 - t0) / (double)n;
	sb_t s = {0};
	sb_printf(&s, "bench n=%ju ns_per_msg=%.2f", (uintmax_t)n, per);
	if (allocs)
		sb_printf(&s, " allocs_per_msg=%.4f", (double)(a1 - a0) / (double)n);
	else
		sb_add(&s, " allocs_per_msg=na", 18);
	sb_printf(&s, " pass=%ju consumed=%ju", (uintmax_t)pass, (uintmax_t)consumed);
	if (lats) {
		qsort(lats, n, sizeof *lats, cmp_u64);
#define PCT(q) lats[(uint64_t)((double)(n - 1) * (q))]
		sb_printf(&s, " p50_ns=%ju p90_ns=%ju p99_ns=%ju p999_ns=%ju max_ns=%ju", (uintmax_t)PCT(0.50),
		          (uintmax_t)PCT(0.90), (uintmax_t)PCT(0.99), (uintmax_t)PCT(0.999), (uintmax_t)lats[n - 1]);
#undef PCT
		free(lats);
	}
	if (rate)
		sb_printf(&s, " seconds=%.3f", (double)(t1 - t0) / 1e9);
	out_emit(&s);
}

static void cmd_login(const char *user, int on)
{
	long k = sv_find(&online, user);
	if (on && k < 0)
		sv_add(&online, user);
	if (!on && k >= 0)
		sv_del(&online, (size_t)k);
	out_line("login %s online=%d", user, on);
	call_login(user, on);
	if (on)
		deliver_pending(user);
}

static void cmd_group(char **tok, int nt)
{
	uint64_t gid;
	if (nt < 2 || parse_u64(tok[1], &gid) < 0 || gid == 0) {
		out_line("error usage: group <gid (not 0)> <user> [<user> ...]");
		return;
	}
	group_t *g = group_find(gid);
	if (!g) {
		g = xcalloc(1, sizeof *g);
		g->gid = gid;
		g->next = groups;
		groups = g;
	}
	sv_clear(&g->members);
	for (int i = 2; i < nt; i++)
		if (sv_find(&g->members, tok[i]) < 0)
			sv_add(&g->members, tok[i]);
}

static void cmd_read(const char *user, const char *ids)
{
	uint64_t id;
	if (parse_u64(ids, &id) < 0) {
		out_line("error read: bad id '%s'", ids);
		return;
	}
	rrec_t **pp = &rrecs;
	rrec_t *found = NULL, **ft = &found;
	while (*pp) {
		rrec_t *r = *pp;
		if (r->m->p.id == id && strcmp(r->m->rcpt, user) == 0) {
			*pp = r->next;
			r->next = NULL;
			*ft = r;
			ft = &r->next;
		} else {
			pp = &r->next;
		}
	}
	/* oldest first (the list is newest first) */
	rrec_t *rev = NULL;
	while (found) {
		rrec_t *r = found;
		found = r->next;
		r->next = rev;
		rev = r;
	}
	while (rev) {
		rrec_t *r = rev;
		rev = r->next;
		call_status(r->m, MESIBO_MSGSTATUS_READ);
		hmsg_free(r->m);
		free(r);
	}
}

static void do_quit(void) __attribute__((noreturn));

static void do_quit(void)
{
	int n = atomic_load(&g_nmods);
	for (int i = n - 1; i >= 0; i--) {
		if (!mod_active(i))
			continue;
		void *mem = g_mods[i].mem;
		int rc = 0;
		switch (g_abi) {
		case ABI_DOC: {
			mesibo_module_t *mm = mem;
			if (mm->cleanup)
				rc = rc32(mm->cleanup(mm));
			break;
		}
		case ABI_R2019: {
			r19_module_t *mm = mem;
			if (mm->on_cleanup)
				rc = rc32(mm->on_cleanup(mm));
			break;
		}
		default: {
			r20_module_t *mm = mem;
			if (mm->on_cleanup)
				rc = rc32(mm->on_cleanup(mm));
			break;
		}
		}
		atomic_store(&g_mods[i].state, MOD_CLEANED);
		sb_t s = {0};
		sb_add(&s, "cleanup ", 8);
		sb_field(&s, g_mods[i].name);
		sb_printf(&s, " rc=%d", rc);
		out_emit(&s);
	}
	out_line("bye");
	out_close();
	fflush(stderr);
	/* no dlclose (Go libraries cannot be unloaded), no exit(): module threads
	 * may still run, and atexit handlers would race with them */
	_exit(0);
}

static void exec_line(char *line)
{
	if (!line) {
		out_line("error line too long (max %u bytes)", MAX_CMD_LINE);
		return;
	}
	size_t ll = strlen(line);
	while (ll > 0 && (line[ll - 1] == '\r' || line[ll - 1] == '\n'))
		line[--ll] = 0;
	const char *p = line;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p || *p == '#')
		return;

	static char empty[1];
	char *text = empty;
	size_t tlen = 0;
	empty[0] = 0;
	if (strncmp(p, "msg ", 4) == 0 || strncmp(p, "bench ", 6) == 0) {
		char *sep = strstr(line, " -- ");
		if (sep) {
			*sep = 0;
			text = sep + 4;
			tlen = strlen(text);
		} else if (ll >= 3 && strcmp(line + ll - 3, " --") == 0) {
			line[ll - 3] = 0;
		}
	}

	static char *tok[MAX_TOKENS];
	int nt = tokenize(line, tok, MAX_TOKENS);
	if (nt < 0) {
		out_line("error too many fields (max %d)", MAX_TOKENS);
		return;
	}
	if (nt == 0)
		return;
	const char *c = tok[0];

	if (!strcmp(c, "msg")) {
		cmd_msg(tok, nt, text, tlen);
	} else if (!strcmp(c, "bench")) {
		cmd_bench(tok, nt, text ? text : "", text ? tlen : 0);
	} else if (!strcmp(c, "login") || !strcmp(c, "logout")) {
		if (nt != 2)
			out_line("error usage: %s <user>", c);
		else
			cmd_login(tok[1], c[3] == 'i');
	} else if (!strcmp(c, "group")) {
		cmd_group(tok, nt);
	} else if (!strcmp(c, "read")) {
		if (nt != 3)
			out_line("error usage: read <user> <id>");
		else
			cmd_read(tok[1], tok[2]);
	} else if (!strcmp(c, "call") || !strcmp(c, "callstatus")) {
		if (nt != 3)
			out_line("error usage: %s <from> <to>", c);
		else
			call_call(c, c[4] == 's', tok[1], tok[2]);
	} else if (!strcmp(c, "sync")) {
		if (nt != 2) {
			out_line("error usage: sync <token>");
		} else {
			sb_t s = {0};
			sb_add(&s, "sync ", 5);
			sb_esc(&s, tok[1], strlen(tok[1]), 1);
			out_emit(&s);
		}
	} else if (!strcmp(c, "debug")) {
		if (nt != 1)
			out_line("error usage: debug");
		else
			cmd_debug();
	} else if (!strcmp(c, "sleep")) {
		out_line("error usage: sleep <ms> (0..600000)"); /* valid ones never reach here */
	} else if (!strcmp(c, "quit")) {
		if (nt != 1)
			out_line("error usage: quit");
		else
			do_quit();
	} else {
		sb_t s = {0};
		sb_add(&s, "error unknown command '", 23);
		sb_esc(&s, c, strlen(c), 0);
		sb_add(&s, "'", 1);
		out_emit(&s);
	}
}

/* ------------------------------------------------------------------ */
/* stdin reader thread                                                 */

static int try_sleep(const char *line)
{
	uint64_t ms;
	if (strncmp(line, "sleep ", 6) != 0)
		return 0;
	const char *a = line + 6;
	while (*a == ' ')
		a++;
	char buf[32];
	size_t n = strlen(a);
	while (n > 0 && a[n - 1] == ' ')
		n--;
	if (n == 0 || n >= sizeof buf)
		return 0;
	memcpy(buf, a, n);
	buf[n] = 0;
	if (parse_u64(buf, &ms) < 0 || ms > 600000)
		return 0;
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
	return 1;
}

/* interactive mode: turns a typed line into a protocol line; NULL if handled here */
static char *interactive_translate(const char *line)
{
	static char *cur_user, *cur_to;
	static uint64_t auto_id = 1;
	sb_t s = {0};
	char a[4096];

	if (line[0] == '!') /* raw protocol command */
		return xstrdup(line + 1);
	if (line[0] == '/') {
		if (sscanf(line, "/as %4095s", a) == 1) {
			free(cur_user);
			cur_user = xstrdup(a);
			sb_printf(&s, "login %s", a);
			return s.b;
		}
		if (sscanf(line, "/to %4095s", a) == 1) {
			free(cur_to);
			cur_to = xstrdup(a);
			out_line("# now talking to %s", a);
			return NULL;
		}
		if (sscanf(line, "/read %4095s", a) == 1) {
			if (!cur_user) {
				out_line("# use /as <user> first");
				return NULL;
			}
			sb_printf(&s, "read %s %s", cur_user, a);
			return s.b;
		}
		if (sscanf(line, "/login %4095s", a) == 1) {
			sb_printf(&s, "login %s", a);
			return s.b;
		}
		if (sscanf(line, "/logout %4095s", a) == 1) {
			sb_printf(&s, "logout %s", a);
			return s.b;
		}
		if (strcmp(line, "/quit") == 0)
			return xstrdup("quit");
		out_line("# commands: /as <user>  /to <address>  /read <id>  /login <u>  /logout <u>  "
		         "/quit  !<protocol command>  anything else: a message");
		return NULL;
	}
	if (!*line)
		return NULL;
	if (!cur_user || !cur_to) {
		out_line("# use /as <user> and /to <address> first");
		return NULL;
	}
	sb_printf(&s, "msg %s %s %ju -- ", cur_user, cur_to, (uintmax_t)auto_id++);
	for (const char *p = line; *p; p++) {
		if (*p == '\\')
			sb_add(&s, "\\\\", 2);
		else
			sb_add(&s, p, 1);
	}
	return s.b;
}

static void *reader_main(void *arg)
{
	(void)arg;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) >= 0) {
		if ((size_t)n > MAX_CMD_LINE) {
			push_line(NULL);
			continue;
		}
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = 0;
		if (g_interactive) {
			char *t = interactive_translate(line);
			if (!t)
				continue;
			int q = strcmp(t, "quit") == 0;
			if (!try_sleep(t))
				push_line(t);
			free(t);
			if (q)
				break;
			continue;
		}
		if (try_sleep(line))
			continue;
		push_line(line);
		if (strcmp(line, "quit") == 0)
			break;
	}
	free(line);
	if (n < 0) {
		event_t *ev = xcalloc(1, sizeof *ev);
		ev->kind = EV_QUIT;
		evq_push_cmd(ev);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* loading                                                             */

static void print_load_fail_text(const char *name, const char *text)
{
	sb_t s = {0};
	sb_add(&s, "load ", 5);
	sb_field(&s, name);
	sb_add(&s, " fail ", 6);
	sb_esc(&s, text, strlen(text), 0);
	out_emit(&s);
}

static void load_modules(const conf_t *conf, const char *dir)
{
	for (int i = 0; i < conf->nmodules; i++) {
		const conf_module_t *cm = &conf->modules[i];
		hmod_t *hm = &g_mods[i];
		hm->name = cm->name;
		hm->conf = cm;
		atomic_store(&hm->state, MOD_FAILED);

		size_t plen = strlen(dir) + strlen(cm->name) + 32;
		char *path = xmalloc(plen);
		snprintf(path, plen, "%s/mesibo_mod_%s.so", dir, cm->name);
		void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		free(path);
		if (!h) {
			const char *e = dlerror();
			print_load_fail_text(cm->name, e ? e : "dlopen failed");
			atomic_store(&g_nmods, i + 1);
			continue;
		}
		hm->handle = h;
		size_t slen = strlen(cm->name) + 32;
		char *sym = xmalloc(slen);
		snprintf(sym, slen, "mesibo_module_%s_init", cm->name);
		dlerror();
		void *fn = dlsym(h, sym);
		free(sym);
		if (!fn) {
			const char *e = dlerror();
			print_load_fail_text(cm->name, e ? e : "init symbol is NULL");
			atomic_store(&g_nmods, i + 1);
			continue;
		}

		void *mem = xcalloc(1, HOST_MOD_ALLOC);
		mesibo_uint_t len;
		int n = cm->nitems;
		if (g_abi == ABI_DOC) {
			mesibo_module_t *m = mem;
			m->signature = MESIBO_MODULE_SIGNATURE;
			host_install_doc_pointers(m);
			module_configs_t *c =
			    xcalloc(1, sizeof(module_configs_t) + (size_t)n * sizeof(module_config_item_t));
			c->count = n;
			for (int k = 0; k < n; k++) {
				c->items[k].name = cm->items[k].name;
				c->items[k].value = cm->items[k].value;
			}
			hm->cfg = c;
			len = sizeof(mesibo_module_t);
		} else {
			rev_config_t *c =
			    xcalloc(1, sizeof(rev_config_t) + (size_t)n * sizeof(module_config_item_t));
			c->count = n;
			for (int k = 0; k < n; k++) {
				c->items[k].name = cm->items[k].name;
				c->items[k].value = cm->items[k].value;
			}
			hm->cfg = c;
			if (g_abi == ABI_R2019) {
				r19_module_t *m = mem;
				m->signature = MESIBO_MODULE_SIGNATURE;
				m->config = c;
				len = sizeof(r19_module_t);
			} else {
				r20_module_t *m = mem;
				m->signature = MESIBO_MODULE_SIGNATURE;
				m->config = c;
				len = sizeof(r20_module_t);
			}
		}
		hm->mem = mem;
		atomic_store(&hm->state, MOD_LOADING);
		atomic_store(&g_nmods, i + 1); /* now the API recognises mem */

		int rc;
		if (g_abi == ABI_DOC) {
			mesibo_module_init_fn_doc init;
			memcpy(&init, &fn, sizeof init);
			rc = rc32(init(MESIBO_MODULE_VERSION, (mesibo_module_t *)mem, len,
			               (module_configs_t *)hm->cfg));
		} else {
			mesibo_module_init_fn_rev init;
			memcpy(&init, &fn, sizeof init);
			rc = rc32(init(MESIBO_MODULE_VERSION, mem, (mesibo_int_t)len));
		}
		if (rc != 0) {
			atomic_store(&hm->state, MOD_FAILED);
			out_line("load %s fail rc=%d", cm->name, rc);
		} else {
			atomic_store(&hm->state, MOD_ACTIVE);
			out_line("load %s ok", cm->name);
		}
	}
}

/* ------------------------------------------------------------------ */

static void usage(const char *msg)
{
	if (msg)
		fprintf(stderr, "mesibo-host: %s\n", msg);
	fprintf(stderr, "usage: mesibo-host --conf FILE [--modules DIR] [--abi doc|r2019|r2020] "
	                "[--log-level N] [--interactive] [--stamp]\n");
	exit(2);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *b = xmalloc(cap);
	for (;;) {
		if (n == cap) {
			if (cap >= MAX_CONF_FILE) {
				fclose(f);
				free(b);
				errno = EFBIG;
				return NULL;
			}
			cap *= 2;
			char *nb = realloc(b, cap);
			if (!nb)
				abort();
			b = nb;
		}
		size_t k = fread(b + n, 1, cap - n, f);
		n += k;
		if (k == 0)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		free(b);
		errno = EIO;
		return NULL;
	}
	*len = n;
	return b;
}

int main(int argc, char **argv)
{
	const char *conf_path = NULL, *dir = "/usr/lib64/mesibo";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = NULL;
		const char *eq = strchr(a, '=');
		char key[32];
		if (strncmp(a, "--", 2) == 0 && eq && (size_t)(eq - a) < sizeof key) {
			memcpy(key, a, (size_t)(eq - a));
			key[eq - a] = 0;
			v = eq + 1;
			a = key;
		}
		if (!strcmp(a, "--interactive") && !v) {
			g_interactive = 1;
			continue;
		}
		if (!strcmp(a, "--stamp") && !v) {
			g_stamp = 1;
			continue;
		}
		if (!strcmp(a, "--help") || !strcmp(a, "-h"))
			usage(NULL);
		if (strcmp(a, "--conf") && strcmp(a, "--modules") && strcmp(a, "--abi") &&
		    strcmp(a, "--log-level")) {
			fprintf(stderr, "mesibo-host: unknown argument '%s'\n", argv[i]);
			usage(NULL);
		}
		if (!v) {
			if (i + 1 >= argc) {
				fprintf(stderr, "mesibo-host: %s needs a value\n", a);
				usage(NULL);
			}
			v = argv[++i];
		}
		if (!strcmp(a, "--conf")) {
			conf_path = v;
		} else if (!strcmp(a, "--modules")) {
			dir = v;
		} else if (!strcmp(a, "--abi")) {
			if (!strcmp(v, "doc"))
				g_abi = ABI_DOC;
			else if (!strcmp(v, "r2019"))
				g_abi = ABI_R2019;
			else if (!strcmp(v, "r2020"))
				g_abi = ABI_R2020;
			else
				usage("--abi must be doc, r2019 or r2020");
		} else {
			if (parse_u64(v, &g_loglevel) < 0)
				usage("--log-level needs a non-negative integer");
		}
	}
	if (!conf_path)
		usage("--conf FILE is required");

	setvbuf(stdout, NULL, _IOLBF, 0);

	size_t clen = 0;
	char *ctext = read_file(conf_path, &clen);
	if (!ctext) {
		int e = errno;
		fprintf(stderr, "mesibo-host: cannot read %s: %s\n", conf_path, strerror(e));
		printf("error cannot read %s: %s\n", conf_path, strerror(e));
		fflush(stdout);
		return 2;
	}
	static conf_t conf; /* lives for the whole process: modules keep pointers into it */
	char err[512];
	if (conf_parse(ctext, clen, conf_path, &conf, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		printf("error %s\n", err);
		fflush(stdout);
		free(ctext);
		return 2;
	}
	free(ctext);

	/* Go requires SA_ONSTACK on handlers the host installs */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sa.sa_flags = SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);

	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q_cv, &ca);
	pthread_condattr_destroy(&ca);

	http_global_init();
	load_modules(&conf, dir);

	sb_t s = {0};
	sb_printf(&s, "ready abi=%s modules=", abi_names[g_abi]);
	int first = 1;
	for (int i = 0; i < atomic_load(&g_nmods); i++) {
		if (!mod_active(i))
			continue;
		if (!first)
			sb_add(&s, ",", 1);
		sb_field(&s, g_mods[i].name);
		first = 0;
	}
	out_emit(&s);
	if (g_interactive)
		out_line("# interactive: /as <user>, /to <address>, then type messages; /quit to end");

	pthread_t rd;
	if (pthread_create(&rd, NULL, reader_main, NULL) != 0) {
		fprintf(stderr, "mesibo-host: cannot start the stdin reader\n");
		return 1;
	}
	pthread_detach(rd);

	for (;;) {
		event_t *ev;
		pthread_mutex_lock(&q_mu);
		while (!(ev = pop_locked())) {
			uint64_t dl = next_deadline();
			if (dl == UINT64_MAX) {
				pthread_cond_wait(&q_cv, &q_mu);
				continue;
			}
			if (now_ms() >= dl)
				break;
			struct timespec ts = {(time_t)(dl / 1000), (long)(dl % 1000) * 1000000L};
			pthread_cond_timedwait(&q_cv, &q_mu, &ts);
		}
		pthread_mutex_unlock(&q_mu);
		expire_due();
		if (!ev)
			continue;
		switch (ev->kind) {
		case EV_LINE:
			exec_line(ev->line);
			break;
		case EV_QUIT:
			do_quit();
		case EV_SEND:
			handle_send(ev->msg);
			break;
		case EV_HTTP:
			http_dispatch(ev);
			break;
		}
		free(ev->line);
		free(ev->buf);
		free(ev);
	}
}
