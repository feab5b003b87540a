/*
 * broker.c - the broker object: open and close, wiring the store's notify
 * hook to the waiters, node info and metrics, and the shared cause helper.
 *
 * Owns struct fm_broker's lifetime and the order of start and stop:
 *   open:  waiters (the store may notify while it recovers), store, topic
 *          cache, groups, the timer service (it re-appends into topics).
 *   close: fire every waiter with FM_WAKE_SHUTDOWN, stop the timer's
 *          thread (no more re-appends), close groups and the store (its
 *          dispatcher, the only notifier, stops; group rows still queued
 *          are committed and their done called), free the timer and the
 *          waiters.
 * Does not own the policy of topics, publishing or reading (topics.c,
 * publish.c, query.c, watch.c, namesrv.c).
 */
#include "config.h" /* first: it defines _GNU_SOURCE */

#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "broker/internal.h"

int
fm_broker_fail(char **cause, int err, const char *fmt, ...)
{
	va_list ap, ap2;
	int len;

	if (cause == NULL)
		return err;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	len = vsnprintf(NULL, 0, fmt, ap);
	if (len < 0) {
		*cause = xstrdup(fm_err_msg(err));
	} else {
		*cause = xmalloc((size_t)len + 1);
		vsnprintf(*cause, (size_t)len + 1, fmt, ap2);
	}
	va_end(ap2);
	va_end(ap);
	return err;
}

static void
on_notify(void *arg, const char *topic, uint32_t queue_id, uint64_t max_offset)
{
	struct fm_broker *b = arg;

	fm_waiters_notify(b->ws, topic, queue_id, max_offset);
	fm_groups_notify(b->groups, topic, queue_id, max_offset);
	fm_timer_notify(b->timer, topic, queue_id, max_offset);
}

/* brokerIP1 as an IPv4 address (msgIds carry 4 bytes): a literal, or the
 * first IPv4 address the name resolves to. */
static int
resolve_ip(const char *host, uint32_t *ip, char **cause)
{
	struct addrinfo hints, *res = NULL;
	int rc;

	if (fm_msgid_parse_ip(host, ip) == 0)
		return 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	if (host == NULL || getaddrinfo(host, NULL, &hints, &res) != 0 ||
	    res == NULL) {
		rc = fm_broker_fail(cause, -FM_E_INVALID,
		    "brokerIP1: '%s' is not an IPv4 address or a name that "
		    "resolves to one",
		    host ? host : "");
		goto out;
	}
	*ip = ntohl(
	    ((struct sockaddr_in *)(void *)res->ai_addr)->sin_addr.s_addr);
	rc = 0;
out:
	if (res)
		freeaddrinfo(res);
	return rc;
}

/* Publishes hold the read lock across a (possibly syncing) append; with
 * glibc's default reader preference a topic create or delete could wait
 * for ever under steady traffic. Writers first: they wait for the appends
 * in flight, no longer. No thread takes the read lock twice. */
static void
topics_lock_init(pthread_rwlock_t *lock)
{
	pthread_rwlockattr_t attr;

	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(
	    &attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(lock, &attr);
	pthread_rwlockattr_destroy(&attr);
}

static void
store_options(struct fm_broker *b, struct fm_store_options *o)
{
	const struct fm_config *cfg = b->cfg;

	memset(o, 0, sizeof(*o));
	o->root = cfg->store_path_root_dir;
	o->segment_size = cfg->mapped_file_size_commit_log;
	o->sync_flush = cfg->flush_disk_type == FM_FLUSH_SYNC;
	o->flush_interval_ms = cfg->flush_interval_commit_log;
	o->file_reserved_hours = cfg->file_reserved_time;
	o->delete_when_hour = 4;
	o->housekeeping_ms = cfg->clean_resource_interval;
	o->disk_warning_ratio = cfg->disk_space_warning_level_ratio;
	o->notify = on_notify;
	o->notify_arg = b;
	/* retention keeps what the timer has yet to deliver (a slave runs
	 * no timer: its marks never move) */
	o->timer_topic =
	    cfg->broker_role != FM_ROLE_SLAVE ? FM_TIMER_TOPIC : NULL;
}

int
fm_broker_open(
    const struct fm_config *cfg, struct fm_broker **out, char **cause)
{
	struct fm_broker *b = xcalloc(1, sizeof(*b));
	struct fm_store_options o;
	int rc;

	b->cfg = cfg;
	b->started_ms = fm_now_ms();
	topics_lock_init(&b->topics_lock);
	atomic_init(&b->published_msgs, 0);
	atomic_init(&b->published_bytes, 0);
	atomic_init(&b->publish_errors, 0);
	atomic_init(&b->pulled_msgs, 0);
	if ((rc = resolve_ip(cfg->broker_ip1, &b->self.ip, cause)) < 0)
		goto fail;
	b->self.port = (uint32_t)cfg->listen_port;
	snprintf(b->addr, sizeof(b->addr), "http://%s:%d", cfg->broker_ip1,
	    cfg->listen_port);
	if ((rc = fm_waiters_new(&b->ws)) < 0) {
		rc = fm_broker_fail(cause, rc, "cannot start the waiter timer");
		goto fail;
	}
	store_options(b, &o);
	if ((rc = fm_store_open(&o, &b->st)) < 0) {
		b->st = NULL;
		rc = fm_broker_fail(cause, rc,
		    "cannot open the store in '%s': %s",
		    cfg->store_path_root_dir, fm_err_msg(rc));
		goto fail;
	}
	if ((rc = fm_topics_load(b)) < 0) {
		rc = fm_broker_fail(
		    cause, rc, "cannot load topics: %s", fm_err_msg(rc));
		goto fail;
	}
	if ((rc = fm_groups_open(b, &b->groups)) < 0) {
		b->groups = NULL;
		rc = fm_broker_fail(cause, rc,
		    "cannot load consumer groups: %s", fm_err_msg(rc));
		goto fail;
	}
	/* a slave copies its master's log, re-appends included */
	if (cfg->broker_role != FM_ROLE_SLAVE &&
	    (rc = fm_timer_start(b, &b->timer)) < 0) {
		b->timer = NULL;
		rc = fm_broker_fail(cause, rc,
		    "cannot start the timer of delayed messages: %s",
		    fm_err_msg(rc));
		goto fail;
	}
	fm_info("broker %s (%s) open: %zu topics, store in %s",
	    cfg->broker_name, b->addr, b->ntopics, cfg->store_path_root_dir);
	*out = b;
	return 0;
fail:
	fm_broker_close(b);
	return rc;
}

void
fm_broker_close(struct fm_broker *b)
{
	if (b == NULL)
		return;
	if (b->ws)
		fm_waiters_shutdown(b->ws);
	fm_timer_stop(b->timer);
	fm_groups_close(b->groups);
	if (b->st)
		fm_store_close(b->st);
	fm_timer_free(b->timer);
	fm_waiters_free(b->ws);
	fm_topics_free(b);
	pthread_rwlock_destroy(&b->topics_lock);
	free(b);
}

void
fm_broker_queue_range(struct fm_broker *b, const char *topic, uint32_t queue_id,
    uint64_t *min, uint64_t *max)
{
	fm_store_queue_range(b->st, topic, queue_id, min, max);
}

void
fm_broker_info(struct fm_broker *b, struct fm_broker_info *out)
{
	const struct fm_config *cfg = b->cfg;

	memset(out, 0, sizeof(*out));
	out->cluster = cfg->broker_cluster_name;
	out->name = cfg->broker_name;
	out->id = cfg->broker_id;
	out->role = fm_role_name(cfg->broker_role);
	out->flush = fm_flush_name(cfg->flush_disk_type);
	out->version = PACKAGE_VERSION;
	snprintf(out->addr, sizeof(out->addr), "%s", b->addr);
	out->started_ms = b->started_ms;
	fm_store_stats(b->st, &out->store);
}

void
fm_broker_metrics(struct fm_broker *b, struct fm_broker_metrics *out)
{
	memset(out, 0, sizeof(*out));
	out->published_msgs = atomic_load(&b->published_msgs);
	out->published_bytes = atomic_load(&b->published_bytes);
	out->publish_errors = atomic_load(&b->publish_errors);
	out->pulled_msgs = atomic_load(&b->pulled_msgs);
	out->waiters = fm_waiters_parked(b->ws);
	pthread_rwlock_rdlock(&b->topics_lock);
	out->topics = b->ntopics;
	pthread_rwlock_unlock(&b->topics_lock);
}
