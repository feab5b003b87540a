/*
 * h_topics.c - topic administration: create or update, read with per
 * queue offsets, delete, list. (The group list is in h_groups.c.)
 *
 * Owns nothing across requests. A PUT leaves what the body does not name
 * as it was (or at the defaults for a new topic), so it is idempotent.
 */
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/xmalloc.h"
#include "codec/codec.h"
#include "http/http.h"
#include "http/reply.h"

static void
write_topic(struct fm_json *j, const struct fm_topic_conf *tc)
{
	fm_json_str(j, "topic", tc->name);
	fm_json_u64(j, "queues", tc->queues);
	fm_json_str(j, "perm", fm_codec_perm_name(tc->perm));
	fm_json_i64(j, "createdTimestamp", tc->created_ms);
}

static void
reply_topic(struct fm_req *r, unsigned status, const struct fm_topic_conf *tc)
{
	struct fm_json j;

	fm_reply_json(r, status, &j);
	fm_json_obj(&j, NULL);
	write_topic(&j, tc);
	fm_json_arr(&j, "queueOffsets");
	for (uint32_t q = 0; q < tc->queues; q++) {
		uint64_t min = 0, max = 0;

		fm_broker_queue_range(r->h->b, tc->name, q, &min, &max);
		fm_json_obj(&j, NULL);
		fm_json_u64(&j, "queueId", q);
		fm_json_u64(&j, "minOffset", min);
		fm_json_u64(&j, "maxOffset", max);
		fm_json_obj_end(&j);
	}
	fm_json_arr_end(&j);
	fm_json_obj_end(&j);
}

/* ?cluster=NAME: only this node's own cluster until the name server
 * can fan a creation out to other masters. */
static int
check_cluster(struct fm_req *r)
{
	const char *cluster = fm_req_arg(r, "cluster");
	const char *own = r->h->cfg->broker_cluster_name;

	if (cluster == NULL || strcmp(cluster, own) == 0)
		return 0;
	fm_reply_error(r, FM_HC_INVALID_ARGUMENT,
	    "cluster: '%s' is not this node's cluster '%s'", cluster, own);
	return -1;
}

int
fm_h_topic_put(struct fm_req *r)
{
	const char *topic = fm_arg_topic(r);
	struct fm_topic_conf tc;
	uint32_t queues, perm;
	char *cause = NULL;
	int created = 0, err;

	if (topic == NULL || check_cluster(r) != 0)
		return FM_H_DONE;
	err = fm_codec_parse_topic_put(r->body.data != NULL ? r->body.data : "",
	    r->body.len, &queues, &perm, &cause);
	if (err != 0) {
		fm_reply_error(r, FM_HC_BAD_REQUEST, "%s", cause);
		free(cause);
		return FM_H_DONE;
	}
	if (fm_broker_topic_get(r->h->b, topic, &tc, NULL) != 0) {
		tc.queues = (uint32_t)r->h->cfg->default_topic_queue_nums;
		tc.perm = FM_PERM_READ | FM_PERM_WRITE;
	}
	err = fm_broker_topic_put(r->h->b, topic, queues ? queues : tc.queues,
	    perm ? perm : tc.perm, &created, &cause);
	if (err == 0)
		err = fm_broker_topic_get(r->h->b, topic, &tc, &cause);
	if (err != 0) {
		fm_reply_err(r, err, cause, FM_HC_TOPIC_NOT_FOUND);
		return FM_H_DONE;
	}
	reply_topic(r, created ? MHD_HTTP_CREATED : MHD_HTTP_OK, &tc);
	return FM_H_DONE;
}

int
fm_h_topic_get(struct fm_req *r)
{
	const char *topic = fm_arg_topic(r);
	struct fm_topic_conf tc;
	char *cause = NULL;
	int err;

	if (topic == NULL)
		return FM_H_DONE;
	err = fm_broker_topic_get(r->h->b, topic, &tc, &cause);
	if (err != 0)
		fm_reply_err(r, err, cause, FM_HC_TOPIC_NOT_FOUND);
	else
		reply_topic(r, MHD_HTTP_OK, &tc);
	return FM_H_DONE;
}

int
fm_h_topic_delete(struct fm_req *r)
{
	const char *topic = fm_arg_topic(r);
	char *cause = NULL;
	int err;

	if (topic == NULL)
		return FM_H_DONE;
	err = fm_broker_topic_delete(r->h->b, topic, &cause);
	if (err != 0) {
		fm_reply_err(r, err, cause, FM_HC_TOPIC_NOT_FOUND);
		return FM_H_DONE;
	}
	r->status = MHD_HTTP_NO_CONTENT;
	r->ctype = NULL;
	return FM_H_DONE;
}

int
fm_h_topic_list(struct fm_req *r)
{
	struct fm_topic_conf *tcs = NULL;
	size_t n = 0;
	struct fm_json j;
	int err;

	err = fm_broker_topic_list(r->h->b, &tcs, &n);
	if (err != 0) {
		fm_reply_err(r, err, NULL, FM_HC_NOT_FOUND);
		return FM_H_DONE;
	}
	fm_reply_json(r, MHD_HTTP_OK, &j);
	fm_json_obj(&j, NULL);
	fm_json_arr(&j, "topics");
	for (size_t i = 0; i < n; i++) {
		fm_json_obj(&j, NULL);
		write_topic(&j, &tcs[i]);
		fm_json_obj_end(&j);
	}
	fm_json_arr_end(&j);
	fm_json_obj_end(&j);
	free(tcs);
	return FM_H_DONE;
}
