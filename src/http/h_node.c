/*
 * h_node.c - the node's own routes: /v1/broker, /healthz, /metrics
 * (Prometheus text format 0.0.4) and the name server's /routes and
 * /routes/{topic}.
 *
 * Owns the metrics table: each metric's name, type and help line, so
 * HELP/TYPE can never be missing. Everything shown comes from
 * fm_broker_info, fm_broker_metrics and the route calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "codec/codec.h"
#include "http/http.h"
#include "http/reply.h"

int
fm_h_healthz(struct fm_req *r)
{
	struct fm_json j;

	fm_reply_json(r, MHD_HTTP_OK, &j);
	fm_json_obj(&j, NULL);
	fm_json_str(&j, "status", "ok");
	fm_json_obj_end(&j);
	return FM_H_DONE;
}

static void
write_commitlog(struct fm_json *j, const struct fm_store_stats *st)
{
	fm_json_obj(j, "commitLog");
	fm_json_u64(j, "minOffset", st->min_offset);
	fm_json_u64(j, "writeOffset", st->write_offset);
	fm_json_u64(j, "flushedOffset", st->flushed_offset);
	fm_json_u64(j, "dispatchedOffset", st->dispatched_offset);
	fm_json_u64(j, "indexedOffset", st->indexed_offset);
	fm_json_u64(j, "segments", st->segments);
	fm_json_u64(j, "bytes", st->log_bytes);
	fm_json_obj_end(j);
	fm_json_obj(j, "disk");
	fm_json_dbl(j, "usedRatio", st->disk_used_ratio);
	fm_json_bool(j, "writable", st->writable);
	fm_json_obj_end(j);
}

/* "http://host:port" -> "ws://host:port". */
static const char *
ws_url(const char *addr, char *out, size_t n)
{
	const char *rest = strncmp(addr, "http://", 7) == 0 ? addr + 7 : addr;

	snprintf(out, n, "ws://%s", rest);
	return out;
}

int
fm_h_broker(struct fm_req *r)
{
	struct fm_broker_info bi;
	char url[sizeof(bi.addr) + 128];
	struct fm_json j;

	fm_broker_info(r->h->b, &bi);
	fm_reply_json(r, MHD_HTTP_OK, &j);
	fm_json_obj(&j, NULL);
	fm_json_str(&j, "name", bi.name);
	fm_json_str(&j, "cluster", bi.cluster);
	fm_json_i64(&j, "brokerId", bi.id);
	fm_json_str(&j, "role", bi.role);
	fm_json_str(&j, "flushDiskType", bi.flush);
	fm_json_str(&j, "version", bi.version);
	fm_json_str(&j, "addr", bi.addr);
	fm_json_i64(&j, "startedAt", bi.started_ms);
	write_commitlog(&j, &bi.store);
	fm_json_obj(&j, "replication");
	fm_json_str(&j, "role", bi.role);
	fm_json_arr(&j, "slaves");
	fm_json_arr_end(&j);
	fm_json_obj_end(&j);
	/* WebSocket is served on the HTTP port (see http/server.c) */
	fm_json_str(&j, "wsUrl", ws_url(bi.addr, url, sizeof(url)));
	fm_json_obj_end(&j);
	return FM_H_DONE;
}

/* ---- /metrics ---- */

struct metric {
	const char *name;
	const char *type; /* "counter" or "gauge" */
	const char *help;
};

enum {
	M_PUB_MSGS,
	M_PUB_BYTES,
	M_PUB_ERRORS,
	M_PULLED,
	M_WRITE_OFF,
	M_FLUSHED_OFF,
	M_DISK,
	M_WAITERS,
	M_TOPICS,
	M__COUNT
};

static const struct metric metrics[M__COUNT] = {
    [M_PUB_MSGS] = {"ferrymq_published_messages_total", "counter",
        "Messages stored by publish requests since start."},
    [M_PUB_BYTES] = {"ferrymq_published_bytes_total", "counter",
        "Body bytes of the messages stored since start."},
    [M_PUB_ERRORS] = {"ferrymq_publish_errors_total", "counter",
        "Publish requests refused or failed since start."},
    [M_PULLED] = {"ferrymq_pulled_messages_total", "counter",
        "Messages returned by pulls since start."},
    [M_WRITE_OFF] = {"ferrymq_commitlog_write_offset_bytes", "gauge",
        "Commit log offset up to which records are written."},
    [M_FLUSHED_OFF] = {"ferrymq_commitlog_flushed_offset_bytes", "gauge",
        "Commit log offset up to which records are on disk."},
    [M_DISK] = {"ferrymq_disk_used_ratio", "gauge",
        "Used fraction of the file system holding the store."},
    [M_WAITERS] = {"ferrymq_parked_waiters", "gauge",
        "Long-poll requests waiting for messages."},
    [M_TOPICS] = {"ferrymq_topics", "gauge", "Topics on this broker."},
};

static void
metric_head(struct fm_buf *out, int m)
{
	fm_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", metrics[m].name,
	    metrics[m].help, metrics[m].name, metrics[m].type);
}

static void
metric_u64(struct fm_buf *out, int m, uint64_t v)
{
	metric_head(out, m);
	fm_buf_printf(out, "%s %llu\n", metrics[m].name, (unsigned long long)v);
}

int
fm_h_metrics(struct fm_req *r)
{
	struct fm_broker_metrics bm;
	struct fm_broker_info bi;

	fm_broker_metrics(r->h->b, &bm);
	fm_broker_info(r->h->b, &bi);
	r->status = MHD_HTTP_OK;
	r->ctype = "text/plain; version=0.0.4; charset=utf-8";
	fm_buf_reset(&r->out);
	metric_u64(&r->out, M_PUB_MSGS, bm.published_msgs);
	metric_u64(&r->out, M_PUB_BYTES, bm.published_bytes);
	metric_u64(&r->out, M_PUB_ERRORS, bm.publish_errors);
	metric_u64(&r->out, M_PULLED, bm.pulled_msgs);
	metric_u64(&r->out, M_WRITE_OFF, bi.store.write_offset);
	metric_u64(&r->out, M_FLUSHED_OFF, bi.store.flushed_offset);
	metric_head(&r->out, M_DISK);
	fm_buf_printf(&r->out, "%s %.6f\n", metrics[M_DISK].name,
	    bi.store.disk_used_ratio);
	metric_u64(&r->out, M_WAITERS, bm.waiters);
	metric_u64(&r->out, M_TOPICS, bm.topics);
	return FM_H_DONE;
}

/* ---- the name server ---- */

static void
write_addrs(struct fm_json *j, const struct fm_route_broker *rb)
{
	char id[24];

	fm_json_obj(j, "addrs");
	for (size_t k = 0; k < rb->naddrs; k++) {
		snprintf(id, sizeof(id), "%ld", rb->addrs[k].broker_id);
		fm_json_str(j, id, rb->addrs[k].addr);
	}
	fm_json_obj_end(j);
}

static void
write_route_broker(
    struct fm_json *j, const struct fm_route_broker *rb, int details)
{
	fm_json_obj(j, NULL);
	fm_json_str(j, "cluster", rb->cluster);
	fm_json_str(j, "brokerName", rb->name);
	write_addrs(j, rb);
	if (details) {
		fm_json_arr(j, "nodes");
		for (size_t k = 0; k < rb->naddrs; k++) {
			fm_json_obj(j, NULL);
			fm_json_i64(j, "brokerId", rb->addrs[k].broker_id);
			fm_json_str(j, "addr", rb->addrs[k].addr);
			fm_json_i64(
			    j, "lastHeartbeat", rb->addrs[k].last_heartbeat_ms);
			fm_json_bool(j, "alive", rb->addrs[k].alive);
			fm_json_obj_end(j);
		}
		fm_json_arr_end(j);
	}
	fm_json_obj_end(j);
}

/* "clusters": {"name": ["broker", ...]}, brokers in the order given. */
static void
write_clusters(struct fm_json *j, const struct fm_route_broker *rb, size_t n)
{
	fm_json_obj(j, "clusters");
	for (size_t i = 0; i < n; i++) {
		size_t k;

		for (k = 0; k < i; k++)
			if (strcmp(rb[k].cluster, rb[i].cluster) == 0)
				break;
		if (k < i)
			continue;
		fm_json_arr(j, rb[i].cluster);
		for (k = i; k < n; k++)
			if (strcmp(rb[k].cluster, rb[i].cluster) == 0)
				fm_json_str(j, NULL, rb[k].name);
		fm_json_arr_end(j);
	}
	fm_json_obj_end(j);
}

int
fm_h_routes(struct fm_req *r)
{
	struct fm_route_broker *rb = NULL;
	size_t n = 0;
	struct fm_json j;
	int err;

	err = fm_broker_routes(r->h->b, &rb, &n);
	if (err != 0) {
		fm_reply_err(r, err, NULL, FM_HC_NOT_FOUND);
		return FM_H_DONE;
	}
	fm_reply_json(r, MHD_HTTP_OK, &j);
	fm_json_obj(&j, NULL);
	write_clusters(&j, rb, n);
	fm_json_arr(&j, "brokers");
	for (size_t i = 0; i < n; i++)
		write_route_broker(&j, &rb[i], 1);
	fm_json_arr_end(&j);
	fm_json_obj_end(&j);
	free(rb);
	return FM_H_DONE;
}

int
fm_h_topic_route(struct fm_req *r)
{
	struct fm_route_broker *rb = NULL;
	struct fm_route_queue *rq = NULL;
	size_t nb = 0, nq = 0;
	const char *topic = fm_arg_topic(r);
	char *cause = NULL;
	struct fm_json j;
	int err;

	if (topic == NULL)
		return FM_H_DONE;
	err = fm_broker_topic_route(r->h->b, topic, &rb, &nb, &rq, &nq, &cause);
	if (err != 0) {
		fm_reply_err(r, err, cause, FM_HC_TOPIC_NOT_FOUND);
		return FM_H_DONE;
	}
	fm_reply_json(r, MHD_HTTP_OK, &j);
	fm_json_obj(&j, NULL);
	fm_json_str(&j, "topic", topic);
	fm_json_arr(&j, "brokers");
	for (size_t i = 0; i < nb; i++)
		write_route_broker(&j, &rb[i], 0);
	fm_json_arr_end(&j);
	fm_json_arr(&j, "queues");
	for (size_t i = 0; i < nq; i++) {
		fm_json_obj(&j, NULL);
		fm_json_str(&j, "brokerName", rq[i].broker_name);
		fm_json_u64(&j, "readQueueNums", rq[i].read_queues);
		fm_json_u64(&j, "writeQueueNums", rq[i].write_queues);
		fm_json_u64(&j, "perm", rq[i].perm);
		fm_json_obj_end(&j);
	}
	fm_json_arr_end(&j);
	fm_json_obj_end(&j);
	free(rb);
	free(rq);
	return FM_H_DONE;
}
