/*
 * test_index.c - index.db, state.db and the consume queue encoding, alone
 * (no commit log): chunk blobs round-trip, rows survive close and reopen,
 * meta.applied moves only together with the rows it covers, topics and
 * tombstones persist, and the in-memory queue table keeps its invariants.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/err.h"
#include "store/cq.h"
#include "store/index.h"
#include "store/state.h"

struct fixture {
	char dir[64];
	char path[128];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	const char *tmp = getenv("TMPDIR");

	snprintf(f->dir, sizeof f->dir, "%s/fmidx.XXXXXX", tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/index.db", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[160];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void
test_pack_roundtrip(void **state)
{
	struct fm_cq_entry in[3] = {{0, 0, 0}, {1ull << 40, 77, UINT64_MAX},
	    {123456789, 4096, 0x0102030405060708ull}};
	unsigned char blob[3 * FM_CQ_ENTRY_SIZE];
	struct fm_cq_entry out;

	fm_cq_pack(in, 3, blob);
	/* little-endian, fixed offsets: the layout drawn in cq.c */
	assert_int_equal(blob[20 + 5], 1);
	assert_int_equal(blob[20 + 8], 77);
	assert_int_equal(blob[40 + 12], 0x08);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(fm_cq_unpack(blob, sizeof blob, i, &out), 0);
		assert_true(out.log_offset == in[i].log_offset);
		assert_int_equal(out.size, in[i].size);
		assert_true(out.tag_hash == in[i].tag_hash);
	}
	assert_int_equal(
	    fm_cq_unpack(blob, sizeof blob, 3, &out), -FM_E_NOT_FOUND);
	(void)state;
}

static void
put_one(struct fm_index *ix, const char *topic, uint32_t q, uint64_t chunk,
    uint64_t log)
{
	struct fm_cq_entry e = {log, 100, 7};
	unsigned char blob[FM_CQ_ENTRY_SIZE];
	struct fm_index_chunk c = {
	    topic, q, chunk, 1000, 2000, log, blob, sizeof blob};

	fm_cq_pack(&e, 1, blob);
	assert_int_equal(fm_index_put_chunk(ix, &c), 0);
}

static int
count_queues(void *arg, const char *topic, uint32_t q, uint64_t lo, uint64_t hi)
{
	(*(int *)arg)++;
	return 0;
}

static void
test_commit_reopen(void **state)
{
	struct fixture *f = *state;
	struct fm_index *ix;
	struct fm_buf blob = FM_BUF_INIT;
	struct fm_index_chunk c;
	struct fm_cq_entry e;
	uint64_t offs[4], applied;
	size_t n;
	int present, nq = 0;

	assert_int_equal(fm_index_open(f->path, 2, &ix), 0);
	assert_int_equal(fm_index_applied(ix, &applied, &present), 0);
	assert_int_equal(present, 0);
	assert_int_equal(fm_index_begin(ix), 0);
	put_one(ix, "a", 0, 0, 10);
	put_one(ix, "a", 0, 1, 500);
	put_one(ix, "b", 3, 0, 20);
	assert_int_equal(fm_index_put_key(ix, "a", "k", 10), 0);
	assert_int_equal(fm_index_put_key(ix, "a", "k", 500), 0);
	assert_int_equal(fm_index_put_key(ix, "b", "k", 20), 0);
	assert_int_equal(fm_index_set_applied(ix, 600), 0);
	assert_int_equal(fm_index_commit(ix), 0);
	fm_index_close(ix);

	assert_int_equal(fm_index_open(f->path, 2, &ix), 0);
	assert_int_equal(fm_index_applied(ix, &applied, &present), 0);
	assert_int_equal(present, 1);
	assert_true(applied == 600);
	assert_int_equal(fm_index_read_chunk(ix, "a", 0, 1, &blob, &c), 0);
	assert_int_equal(fm_cq_unpack(c.entries, c.len, 0, &e), 0);
	assert_true(e.log_offset == 500);
	assert_true(c.first_ts == 1000 && c.last_ts == 2000);
	assert_int_equal(
	    fm_index_read_chunk(ix, "a", 1, 0, &blob, &c), -FM_E_NOT_FOUND);
	assert_int_equal(
	    fm_index_find_key(ix, "a", "k", 0, 1000, offs, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_true(offs[0] == 500 && offs[1] == 10);
	assert_int_equal(
	    fm_index_find_key(ix, "a", "k", 0, 500, offs, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(fm_index_chunk_at_ts(ix, "b", 3, 1500, &blob, &c), 0);
	assert_true(c.chunk == 0);
	assert_int_equal(
	    fm_index_chunk_at_ts(ix, "b", 3, 2001, &blob, &c), -FM_E_NOT_FOUND);
	assert_int_equal(fm_index_queues(ix, count_queues, &nq), 0);
	assert_int_equal(nq, 2);

	/* deleting rows of one topic leaves the other */
	assert_int_equal(fm_index_begin(ix), 0);
	assert_int_equal(fm_index_delete_tombstoned(ix, "a", 100), 0);
	assert_int_equal(fm_index_commit(ix), 0);
	assert_int_equal(
	    fm_index_read_chunk(ix, "a", 0, 0, &blob, &c), -FM_E_NOT_FOUND);
	assert_int_equal(fm_index_read_chunk(ix, "a", 0, 1, &blob, &c), 0);
	assert_int_equal(fm_index_begin(ix), 0);
	assert_int_equal(fm_index_delete_topic(ix, "a"), 0);
	assert_int_equal(fm_index_commit(ix), 0);
	assert_int_equal(
	    fm_index_find_key(ix, "a", "k", 0, 1000, offs, 4, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(fm_index_read_chunk(ix, "b", 3, 0, &blob, &c), 0);
	fm_index_close(ix);
	fm_buf_free(&blob);
}

static void
test_applied_atomic(void **state)
{
	struct fixture *f = *state;
	struct fm_index *ix;
	struct fm_buf blob = FM_BUF_INIT;
	struct fm_index_chunk c;
	uint64_t applied;
	int present;

	assert_int_equal(fm_index_open(f->path, 1, &ix), 0);
	assert_int_equal(fm_index_begin(ix), 0);
	put_one(ix, "t", 0, 0, 0);
	assert_int_equal(fm_index_set_applied(ix, 100), 0);
	assert_int_equal(fm_index_commit(ix), 0);

	/* rows and applied of an unfinished transaction vanish together */
	assert_int_equal(fm_index_begin(ix), 0);
	put_one(ix, "t", 0, 1, 100);
	assert_int_equal(fm_index_set_applied(ix, 200), 0);
	fm_index_rollback(ix);
	fm_index_close(ix);

	assert_int_equal(fm_index_open(f->path, 1, &ix), 0);
	assert_int_equal(fm_index_applied(ix, &applied, &present), 0);
	assert_true(applied == 100);
	assert_int_equal(
	    fm_index_read_chunk(ix, "t", 0, 1, &blob, &c), -FM_E_NOT_FOUND);
	assert_int_equal(fm_index_begin(ix), 0);
	assert_int_equal(fm_index_wipe(ix), 0);
	assert_int_equal(fm_index_commit(ix), 0);
	assert_int_equal(fm_index_applied(ix, &applied, &present), 0);
	assert_int_equal(present, 0);
	fm_index_close(ix);
	fm_buf_free(&blob);
}

static void
test_state(void **state)
{
	struct fixture *f = *state;
	char path[160];
	struct fm_state *s;
	struct fm_topic_conf tc = {"orders", 8, 6, 42}, got, *list;
	struct fm_tombstone *tombs;
	size_t n;
	int existed;

	snprintf(path, sizeof path, "%s/state.db", f->dir);
	assert_int_equal(fm_state_open(path, &s), 0);
	assert_int_equal(fm_state_topic_put(s, &tc), 0);
	strcpy(tc.name, "a");
	assert_int_equal(fm_state_topic_put(s, &tc), 0);
	assert_int_equal(fm_state_topic_delete(s, "a", 99, &existed), 0);
	assert_int_equal(existed, 1);
	assert_int_equal(fm_state_topic_delete(s, "zz", 120, &existed), 0);
	assert_int_equal(existed, 0);
	fm_state_close(s);

	assert_int_equal(fm_state_open(path, &s), 0);
	assert_int_equal(fm_state_topic_get(s, "orders", &got), 0);
	assert_int_equal(got.queues, 8);
	assert_int_equal(got.perm, 6);
	assert_true(got.created_ms == 42);
	assert_int_equal(fm_state_topic_get(s, "a", &got), -FM_E_NOT_FOUND);
	assert_int_equal(fm_state_topic_list(s, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].name, "orders");
	free(list);
	assert_int_equal(fm_state_tombstones(s, &tombs, &n), 0);
	assert_int_equal(n, 2);
	free(tombs);
	assert_int_equal(fm_state_tombstones_prune(s, 100), 0);
	assert_int_equal(fm_state_tombstones(s, &tombs, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(tombs[0].topic, "zz");
	free(tombs);
	fm_state_close(s);
}

static void
test_cq_table(void **state)
{
	struct fm_cq_table *t = fm_cq_table_new();
	struct fm_cq_mem m = {{0, 10, 0}, 5};
	struct fm_cq *q;
	char name[16];

	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof name, "t%d", i % 30);
		q = fm_cq_get(t, name, strlen(name), (uint32_t)(i / 30));
		assert_non_null(q);
		assert_ptr_equal(
		    fm_cq_find(t, name, strlen(name), (uint32_t)(i / 30)), q);
	}
	assert_null(fm_cq_find(t, "t1", 1, 0));
	assert_int_equal(fm_cq_remove_topic(t, "t7"), 10);
	assert_null(fm_cq_find(t, "t7", 2, 0));

	q = fm_cq_get(t, "t1", 2, 0);
	fm_cq_reset(q, FM_CQ_CHUNK + 5);
	assert_true(q->mem_base == FM_CQ_CHUNK && q->max == FM_CQ_CHUNK + 5);
	assert_int_equal(fm_cq_at(q, FM_CQ_CHUNK)->e.size, 0);
	for (uint64_t i = 0; i < 2 * FM_CQ_CHUNK; i++) {
		m.e.log_offset = i;
		fm_cq_push(q, &m);
	}
	fm_cq_set_committed(q, 2 * FM_CQ_CHUNK + 10);
	assert_true(q->mem_base == 2 * FM_CQ_CHUNK);
	assert_true(
	    fm_cq_at(q, 2 * FM_CQ_CHUNK)->e.log_offset == FM_CQ_CHUNK - 5);
	fm_cq_table_free(t);
	(void)state;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pack_roundtrip),
	    cmocka_unit_test_setup_teardown(
	        test_commit_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_applied_atomic, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_state, setup, teardown),
	    cmocka_unit_test(test_cq_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
