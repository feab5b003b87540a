/*
 * topics.c - the topic cache and the topic admin calls.
 *
 * Owns b->topics (see internal.h, invariants 1 and 2). state.db, through
 * fm_store_topic_*, is the truth: every change is written there first and
 * mirrored in the cache only once the store said yes, so a failed write
 * leaves the cache as it was. Does not own what a topic holds (queues,
 * records): the store does.
 */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/xmalloc.h"
#include "broker/internal.h"

#define QUEUES_MAX 1024u

/* Slot of name in the sorted cache, or where it would go. Lock held. */
static size_t
find_slot(struct fm_broker *b, const char *name, int *found)
{
	size_t lo = 0, hi = b->ntopics;

	*found = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(b->topics[mid]->conf.name, name);

		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct fm_btopic *
fm_topics_find(struct fm_broker *b, const char *name)
{
	int found;
	size_t i = find_slot(b, name, &found);

	return found ? b->topics[i] : NULL;
}

/* Insert or update the cache entry for tc. Write lock held. */
static void
cache_put(struct fm_broker *b, const struct fm_topic_conf *tc)
{
	int found;
	size_t i = find_slot(b, tc->name, &found);
	struct fm_btopic *t;

	if (found) {
		b->topics[i]->conf = *tc;
		return;
	}
	if (b->ntopics == b->topics_cap) {
		b->topics_cap = b->topics_cap ? b->topics_cap * 2 : 16;
		b->topics =
		    xreallocarray(b->topics, b->topics_cap, sizeof(*b->topics));
	}
	t = xcalloc(1, sizeof(*t));
	t->conf = *tc;
	atomic_init(&t->rr, 0);
	memmove(&b->topics[i + 1], &b->topics[i],
	    (b->ntopics - i) * sizeof(*b->topics));
	b->topics[i] = t;
	b->ntopics++;
}

static void
cache_del(struct fm_broker *b, const char *name)
{
	int found;
	size_t i = find_slot(b, name, &found);

	if (!found)
		return;
	free(b->topics[i]);
	memmove(&b->topics[i], &b->topics[i + 1],
	    (b->ntopics - i - 1) * sizeof(*b->topics));
	b->ntopics--;
}

int
fm_topics_load(struct fm_broker *b)
{
	struct fm_topic_conf *list = NULL;
	size_t n = 0;
	int rc = fm_store_topic_list(b->st, &list, &n);

	if (rc < 0)
		return rc;
	pthread_rwlock_wrlock(&b->topics_lock);
	for (size_t i = 0; i < n; i++) {
		cache_put(b, &list[i]);
		if (list[i].created_ms > b->last_created_ms)
			b->last_created_ms = list[i].created_ms;
	}
	pthread_rwlock_unlock(&b->topics_lock);
	free(list);
	return 0;
}

void
fm_topics_free(struct fm_broker *b)
{
	for (size_t i = 0; i < b->ntopics; i++)
		free(b->topics[i]);
	free(b->topics);
	b->topics = NULL;
	b->ntopics = b->topics_cap = 0;
}

const char *
fm_perm_name(uint32_t perm)
{
	static const char *const names[] = {"-", "w", "r", "rw"};

	return names[((perm & FM_PERM_READ) ? 2 : 0) |
	    ((perm & FM_PERM_WRITE) ? 1 : 0)];
}

static int
not_found(const char *name, char **cause)
{
	return fm_broker_fail(
	    cause, -FM_E_NOT_FOUND, "topic '%s' does not exist", name);
}

int
fm_broker_check_topic_name(const char *name, char **cause)
{
	size_t len;

	if (name == NULL || name[0] == '\0')
		return fm_broker_fail(
		    cause, -FM_E_INVALID, "topic name is empty");
	len = strlen(name);
	if (len > FM_REC_MAX_TOPIC)
		return fm_broker_fail(cause, -FM_E_INVALID,
		    "topic name is %zu characters long (at most %u)", len,
		    FM_REC_MAX_TOPIC);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '%' ||
		    c == '|' || c == '-')
			continue;
		return fm_broker_fail(cause, -FM_E_INVALID,
		    "topic name '%s' has a character outside "
		    "[A-Za-z0-9_%%|-]",
		    name);
	}
	return 0;
}

static int
check_conf(uint32_t queues, uint32_t perm, char **cause)
{
	if (queues < 1 || queues > QUEUES_MAX)
		return fm_broker_fail(cause, -FM_E_INVALID,
		    "queues must be 1..%u (got %u)", QUEUES_MAX, queues);
	if (perm & ~(FM_PERM_READ | FM_PERM_WRITE))
		return fm_broker_fail(cause, -FM_E_INVALID,
		    "perm %u has bits other than read (4) and write (2)", perm);
	return 0;
}

/* Write tc to state.db, then the cache. Write lock held. */
static int
put_locked(struct fm_broker *b, const struct fm_topic_conf *tc, char **cause)
{
	int rc = fm_store_topic_put(b->st, tc);

	if (rc < 0)
		return fm_broker_fail(cause, rc, "cannot save topic '%s': %s",
		    tc->name, fm_err_msg(rc));
	cache_put(b, tc);
	return 0;
}

/* topics_lock held for writing. */
static void
new_conf(struct fm_broker *b, struct fm_topic_conf *tc, const char *name,
    uint32_t queues, uint32_t perm)
{
	int64_t now = fm_now_ms();

	memset(tc, 0, sizeof(*tc));
	memcpy(tc->name, name, strlen(name) + 1);
	tc->queues = queues;
	tc->perm = perm;
	tc->created_ms =
	    now > b->last_created_ms ? now : b->last_created_ms + 1;
	b->last_created_ms = tc->created_ms;
}

int
fm_topics_check_user_name(const char *name, char **cause)
{
	int rc = fm_broker_check_topic_name(name, cause);

	if (rc == 0 && strcmp(name, FM_TIMER_TOPIC) == 0)
		rc = fm_broker_fail(cause, -FM_E_INVALID,
		    "topic '%s' is reserved for delayed messages", name);
	return rc;
}

int
fm_broker_topic_put(struct fm_broker *b, const char *name, uint32_t queues,
    uint32_t perm, int *created, char **cause)
{
	struct fm_topic_conf tc;
	struct fm_btopic *t;
	int rc;

	if (created)
		*created = 0;
	if ((rc = fm_topics_check_user_name(name, cause)) < 0)
		return rc;
	if ((rc = check_conf(queues, perm, cause)) < 0)
		return rc;
	pthread_rwlock_wrlock(&b->topics_lock);
	t = fm_topics_find(b, name);
	if (t && t->conf.queues == queues && t->conf.perm == perm)
		goto out;
	if (t) {
		tc = t->conf;
		tc.queues = queues;
		tc.perm = perm;
	} else {
		new_conf(b, &tc, name, queues, perm);
	}
	if ((rc = put_locked(b, &tc, cause)) < 0)
		goto out;
	if (created && t == NULL)
		*created = 1;
out:
	pthread_rwlock_unlock(&b->topics_lock);
	return rc;
}

int
fm_topics_conf(struct fm_broker *b, const char *name, struct fm_topic_conf *out,
    char **cause)
{
	struct fm_btopic *t;

	pthread_rwlock_rdlock(&b->topics_lock);
	t = fm_topics_find(b, name);
	if (t)
		*out = t->conf;
	pthread_rwlock_unlock(&b->topics_lock);
	return t ? 0 : not_found(name, cause);
}

int
fm_broker_topic_get(struct fm_broker *b, const char *name,
    struct fm_topic_conf *out, char **cause)
{
	return fm_topics_conf(b, name, out, cause);
}

int
fm_broker_topic_list(struct fm_broker *b, struct fm_topic_conf **out, size_t *n)
{
	struct fm_topic_conf *list;

	pthread_rwlock_rdlock(&b->topics_lock);
	list = xcalloc(b->ntopics ? b->ntopics : 1, sizeof(*list));
	for (size_t i = 0; i < b->ntopics; i++)
		list[i] = b->topics[i]->conf;
	*n = b->ntopics;
	pthread_rwlock_unlock(&b->topics_lock);
	*out = list;
	return 0;
}

int
fm_broker_topic_delete(struct fm_broker *b, const char *name, char **cause)
{
	int rc;

	pthread_rwlock_wrlock(&b->topics_lock);
	if (fm_topics_find(b, name) == NULL) {
		rc = not_found(name, cause);
		goto out;
	}
	rc = fm_store_topic_delete(b->st, name);
	if (rc < 0) {
		rc = fm_broker_fail(cause, rc, "cannot delete topic '%s': %s",
		    name, fm_err_msg(rc));
		goto out;
	}
	cache_del(b, name);
out:
	pthread_rwlock_unlock(&b->topics_lock);
	/* streams, long polls and group receivers parked on it learn it is
	 * gone now */
	if (rc == 0) {
		fm_waiters_notify(b->ws, name, FM_ANY_QUEUE, UINT64_MAX);
		fm_groups_notify(b->groups, name, FM_ANY_QUEUE, UINT64_MAX);
	}
	return rc;
}

/* Create name with the default queue count when allowed. Takes and drops
 * the write lock itself; another thread may have created it meanwhile. */
static int
auto_create(struct fm_broker *b, const char *name, char **cause)
{
	struct fm_topic_conf tc;
	int rc = 0;

	if (!b->cfg->auto_create_topic_enable)
		return not_found(name, cause);
	pthread_rwlock_wrlock(&b->topics_lock);
	if (fm_topics_find(b, name) == NULL) {
		new_conf(b, &tc, name,
		    (uint32_t)b->cfg->default_topic_queue_nums,
		    FM_PERM_READ | FM_PERM_WRITE);
		rc = put_locked(b, &tc, cause);
	}
	pthread_rwlock_unlock(&b->topics_lock);
	return rc;
}

int
fm_topics_acquire(
    struct fm_broker *b, const char *name, struct fm_btopic **out, char **cause)
{
	int rc;

	/* A delete can slip in between auto-create and the read lock; try
	 * again a few times rather than loop for ever against an admin. */
	for (int tries = 0; tries < 3; tries++) {
		pthread_rwlock_rdlock(&b->topics_lock);
		*out = fm_topics_find(b, name);
		if (*out)
			return 0;
		pthread_rwlock_unlock(&b->topics_lock);
		if ((rc = auto_create(b, name, cause)) < 0)
			return rc;
	}
	return fm_broker_fail(cause, -FM_E_BUSY,
	    "topic '%s' is being deleted and created concurrently", name);
}

void
fm_topics_release(struct fm_broker *b)
{
	pthread_rwlock_unlock(&b->topics_lock);
}
