/*
 * http.c — HTTP requests for modules (doc mod->http, mesibo_http,
 * mesibo_util_http) with libcurl, one detached worker thread per request.
 *
 * The worker never calls the module: every piece of the response is copied
 * into an EV_HTTP event for the main loop, which calls the module's callback
 * (see http_dispatch). Callback sequence, per docs/host.md:
 *   RESPHEADER (one per header line, progress 0)
 *   RESPBODY   (one per received chunk, progress 1..99)
 *   RESPBODY   (size 0, progress 100)  then  DONE (size 0, progress 100)
 * or, on an error: <current state> with progress -1 and the error text,
 * then DONE with progress -1. A callback that returns a negative value gets
 * no further callbacks for that request (not even DONE).
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

#define HTTP_MAX_ACTIVE 32
#define HTTP_MAX_RESPONSE (64u * 1024u * 1024u)

struct http_req {
	int modidx;
	char *url, *post;
	char *proxy, *content_type, *extra_header, *user_agent, *referrer, *origin, *cookie,
	    *encoding, *cache_control, *accept, *etag;
	uint64_t ims, maxredirects, conn_timeout, total_timeout;
	mesibo_module_http_data_callback_t cb;
	void *cbdata;
	_Atomic int aborted;
	/* worker only */
	CURL *curl;
	int state;
	size_t received;
	char errmsg[CURL_ERROR_SIZE];
};

static _Atomic int http_active;

void http_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *dup_opt(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void req_free(http_req_t *r)
{
	free(r->url);
	free(r->post);
	free(r->proxy);
	free(r->content_type);
	free(r->extra_header);
	free(r->user_agent);
	free(r->referrer);
	free(r->origin);
	free(r->cookie);
	free(r->encoding);
	free(r->cache_control);
	free(r->accept);
	free(r->etag);
	free(r);
}

static void push(http_req_t *r, int state, int64_t progress, const char *buf, size_t n, int final)
{
	event_t *ev = xcalloc(1, sizeof *ev);
	ev->kind = EV_HTTP;
	ev->req = r;
	ev->state = state;
	ev->progress = progress;
	ev->buf = xstrndup(buf ? buf : "", buf ? n : 0);
	ev->size = buf ? n : 0;
	ev->final = final;
	evq_push_internal(ev);
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
	http_req_t *r = ud;
	size_t n = size * nmemb;
	if (atomic_load(&r->aborted))
		return 0;
	r->state = MODULE_HTTP_STATE_RESPHEADER;
	size_t k = n;
	while (k > 0 && (p[k - 1] == '\n' || p[k - 1] == '\r'))
		k--;
	if (k > 0)
		push(r, MODULE_HTTP_STATE_RESPHEADER, 0, p, k, 0);
	return n;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	http_req_t *r = ud;
	size_t n = size * nmemb;
	if (atomic_load(&r->aborted))
		return 0;
	if (r->received + n > HTTP_MAX_RESPONSE) {
		snprintf(r->errmsg, sizeof r->errmsg, "response larger than %u bytes", HTTP_MAX_RESPONSE);
		return 0;
	}
	r->state = MODULE_HTTP_STATE_RESPBODY;
	r->received += n;
	curl_off_t total = -1;
	int64_t progress = 1;
	if (curl_easy_getinfo(r->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &total) == CURLE_OK &&
	    total > 0) {
		progress = (int64_t)((double)r->received * 100.0 / (double)total);
		if (progress < 1)
			progress = 1;
		if (progress > 99)
			progress = 99;
	}
	if (n > 0)
		push(r, MODULE_HTTP_STATE_RESPBODY, progress, p, n, 0);
	return n;
}

static struct curl_slist *add_header(struct curl_slist *l, const char *name, const char *v)
{
	if (!v || !*v)
		return l;
	size_t n = strlen(name) + strlen(v) + 3;
	char *h = xmalloc(n);
	snprintf(h, n, "%s: %s", name, v);
	struct curl_slist *nl = curl_slist_append(l, h);
	free(h);
	return nl ? nl : l;
}

static void *worker(void *arg)
{
	http_req_t *r = arg;
	struct curl_slist *hdrs = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURLcode res = CURLE_FAILED_INIT;
	CURL *c = curl_easy_init();

	r->state = MODULE_HTTP_STATE_REQUEST;
	if (c) {
		r->curl = c;
		curl_easy_setopt(c, CURLOPT_URL, r->url);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
		curl_easy_setopt(c, CURLOPT_USERAGENT, r->user_agent ? r->user_agent : "mesibo-host/1");
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)(r->conn_timeout ? r->conn_timeout : 10));
		curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)(r->total_timeout ? r->total_timeout : 60));
		if (r->maxredirects) {
			curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
			curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)r->maxredirects);
		}
		if (r->post) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(r->post));
			curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, r->post);
		}
		if (r->proxy)
			curl_easy_setopt(c, CURLOPT_PROXY, r->proxy);
		if (r->referrer)
			curl_easy_setopt(c, CURLOPT_REFERER, r->referrer);
		if (r->cookie)
			curl_easy_setopt(c, CURLOPT_COOKIE, r->cookie);
		if (r->encoding)
			curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, r->encoding);
		if (r->ims) {
			curl_easy_setopt(c, CURLOPT_TIMECONDITION, (long)CURL_TIMECOND_IFMODSINCE);
			curl_easy_setopt(c, CURLOPT_TIMEVALUE_LARGE, (curl_off_t)r->ims);
		}
		hdrs = add_header(hdrs, "Content-Type", r->content_type);
		hdrs = add_header(hdrs, "Origin", r->origin);
		hdrs = add_header(hdrs, "Cache-Control", r->cache_control);
		hdrs = add_header(hdrs, "Accept", r->accept);
		hdrs = add_header(hdrs, "If-None-Match", r->etag);
		if (r->extra_header) { /* one or more "Name: value" lines */
			char *save = NULL;
			for (char *t = strtok_r(r->extra_header, "\r\n", &save); t;
			     t = strtok_r(NULL, "\r\n", &save)) {
				struct curl_slist *nl = curl_slist_append(hdrs, t);
				if (nl)
					hdrs = nl;
			}
		}
		if (hdrs)
			curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
		res = curl_easy_perform(c);
		curl_easy_cleanup(c);
		r->curl = NULL;
	}
	curl_slist_free_all(hdrs);

	/* after these two pushes the worker must not touch r: the main loop frees it */
	int state = r->state;
	if (res == CURLE_OK && !atomic_load(&r->aborted)) {
		push(r, MODULE_HTTP_STATE_RESPBODY, 100, "", 0, 0);
		push(r, MODULE_HTTP_STATE_DONE, 100, "", 0, 1);
	} else {
		const char *msg = r->errmsg[0] ? r->errmsg : errbuf[0] ? errbuf : curl_easy_strerror(res);
		char copy[CURL_ERROR_SIZE + 64];
		snprintf(copy, sizeof copy, "%s", msg);
		push(r, state, -1, copy, strlen(copy), 0);
		push(r, MODULE_HTTP_STATE_DONE, -1, "", 0, 1);
	}
	atomic_fetch_sub(&http_active, 1);
	return NULL;
}

mesibo_int_t http_start(int modidx, const char *url, const char *post,
                        mesibo_module_http_data_callback_t cb, void *cbdata,
                        const module_http_option_t *opt)
{
	if (!url || !*url)
		return -1;
	if (atomic_fetch_add(&http_active, 1) >= HTTP_MAX_ACTIVE) {
		atomic_fetch_sub(&http_active, 1);
		return -1;
	}
	http_req_t *r = xcalloc(1, sizeof *r);
	r->modidx = modidx;
	r->url = xstrdup(url);
	r->post = dup_opt(post);
	r->cb = cb;
	r->cbdata = cbdata;
	if (opt) {
		r->proxy = dup_opt(opt->proxy);
		r->content_type = dup_opt(opt->content_type);
		r->extra_header = dup_opt(opt->extra_header);
		r->user_agent = dup_opt(opt->user_agent);
		r->referrer = dup_opt(opt->referrer);
		r->origin = dup_opt(opt->origin);
		r->cookie = dup_opt(opt->cookie);
		r->encoding = dup_opt(opt->encoding);
		r->cache_control = dup_opt(opt->cache_control);
		r->accept = dup_opt(opt->accept);
		r->etag = dup_opt(opt->etag);
		r->ims = opt->ims;
		r->maxredirects = opt->maxredirects;
		r->conn_timeout = opt->conn_timeout;
		r->total_timeout = opt->total_timeout;
	}
	pthread_attr_t attr;
	pthread_t th;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int err = pthread_create(&th, &attr, worker, r);
	pthread_attr_destroy(&attr);
	if (err) {
		req_free(r);
		atomic_fetch_sub(&http_active, 1);
		return -1;
	}
	return 0;
}

void http_dispatch(event_t *ev)
{
	http_req_t *r = ev->req;
	int alive = r->modidx < 0 || atomic_load(&g_mods[r->modidx].state) == MOD_ACTIVE;
	if (alive && !atomic_load(&r->aborted)) {
		sb_t s = {0};
		sb_add(&s, "http ", 5);
		sb_field(&s, r->modidx < 0 ? "-" : g_mods[r->modidx].name);
		sb_add(&s, " ", 1);
		sb_field(&s, r->url);
		sb_printf(&s, " state=%d progress=%jd size=%zu", ev->state, (intmax_t)ev->progress, ev->size);
		out_emit(&s);
		if (r->cb) {
			int rc = r->cb(r->cbdata, ev->state, (mesibo_int_t)ev->progress, ev->buf,
			               (mesibo_int_t)ev->size);
			if (rc < 0)
				atomic_store(&r->aborted, 1);
		}
	}
	if (ev->final)
		req_free(r);
}
