/*
 * namesrv.c - this node's name server view: the brokers it knows and
 * RocketMQ's TopicRouteData for a topic.
 *
 * Standalone for now: the only broker known is this one, always alive,
 * heard from now. Registration and heartbeats from namesrvAddr peers
 * (the cluster work) will add entries here without changing the calls.
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/xmalloc.h"
#include "broker/internal.h"

static void
self_route(struct fm_broker *b, struct fm_route_broker *rb)
{
	snprintf(rb->cluster, sizeof(rb->cluster), "%s",
	    b->cfg->broker_cluster_name);
	snprintf(rb->name, sizeof(rb->name), "%s", b->cfg->broker_name);
	rb->naddrs = 1;
	rb->addrs[0].broker_id = b->cfg->broker_id;
	snprintf(rb->addrs[0].addr, sizeof(rb->addrs[0].addr), "%s", b->addr);
	rb->addrs[0].last_heartbeat_ms = fm_now_ms();
	rb->addrs[0].alive = 1;
}

int
fm_broker_routes(struct fm_broker *b, struct fm_route_broker **out, size_t *n)
{
	struct fm_route_broker *rb = xcalloc(1, sizeof(*rb));

	self_route(b, rb);
	*out = rb;
	*n = 1;
	return 0;
}

int
fm_broker_topic_route(struct fm_broker *b, const char *topic,
    struct fm_route_broker **brokers, size_t *nbrokers,
    struct fm_route_queue **queues, size_t *nqueues, char **cause)
{
	struct fm_topic_conf tc;
	struct fm_route_broker *rb;
	struct fm_route_queue *rq;

	*brokers = NULL;
	*queues = NULL;
	*nbrokers = *nqueues = 0;
	if (fm_topics_conf(b, topic, &tc, NULL) < 0)
		return fm_broker_fail(
		    cause, -FM_E_NOT_FOUND, "no route for topic '%s'", topic);
	rb = xcalloc(1, sizeof(*rb));
	rq = xcalloc(1, sizeof(*rq));
	self_route(b, rb);
	snprintf(rq->broker_name, sizeof(rq->broker_name), "%s",
	    b->cfg->broker_name);
	rq->read_queues = tc.queues;
	rq->write_queues = tc.queues;
	rq->perm = tc.perm;
	*brokers = rb;
	*nbrokers = 1;
	*queues = rq;
	*nqueues = 1;
	return 0;
}
