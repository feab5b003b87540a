/*
 * test_config.c - the configuration table through its public functions:
 * defaults, parsing and range checks of every type, error messages that
 * name the key (and file:line), file syntax, precedence, print/reload
 * round trips, validation rules, and that etc/ferrymq.conf and
 * man/ferrymq.conf.5 agree with the table.
 *
 * Files go in one mkdtemp directory per run, removed by the group
 * teardown; the source tree is found through $FERRYMQ_SRCDIR (set by
 * make check; the tests that need it are skipped without it).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/config.h"
#include "base/err.h"
#include "base/log.h"

static char tmpdir[256];
static char tmpfile_path[300];

static int
group_setup(void **state)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof tmpdir, "%s/fmconfXXXXXX",
	    base != NULL && *base != '\0' ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(tmpfile_path, sizeof tmpfile_path, "%s/test.conf", tmpdir);
	return 0;
}

static int
group_teardown(void **state)
{
	unlink(tmpfile_path);
	return rmdir(tmpdir);
}

static void
write_file(const char *text, size_t len)
{
	FILE *f = fopen(tmpfile_path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

#define WRITE(text) write_file(text, sizeof(text) - 1)

/* The whole of a file, new; NULL if it cannot be read. */
static char *
read_all(const char *path)
{
	char *data = NULL;
	size_t cap = 0, len = 0, n;
	FILE *f = fopen(path, "rb");

	if (f == NULL)
		return NULL;
	do {
		cap = cap * 2 + 4096;
		data = realloc(data, cap + 1);
		assert_non_null(data);
		n = fread(data + len, 1, cap - len, f);
		len += n;
	} while (len == cap);
	fclose(f);
	data[len] = '\0';
	return data;
}

/* fm_config_print's output, new. */
static char *
print_to_string(const struct fm_config *cfg, int with_help)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	fm_config_print(cfg, f, with_help);
	assert_int_equal(fclose(f), 0);
	return text;
}

/* Expects fm_config_set to refuse key=value with a cause containing each
 * of the NULL-terminated fragments, and to leave cfg unchanged. */
static void
expect_refused(const char *key, const char *value, ...)
{
	struct fm_config cfg;
	char *cause = NULL, *before, *after;
	const char *frag;
	va_list ap;

	fm_config_defaults(&cfg);
	before = print_to_string(&cfg, 0);
	assert_int_equal(
	    fm_config_set(&cfg, key, value, &cause), -FM_E_INVALID);
	assert_non_null(cause);
	va_start(ap, value);
	while ((frag = va_arg(ap, const char *)) != NULL) {
		if (strstr(cause, frag) == NULL)
			fail_msg("cause '%s' lacks '%s'", cause, frag);
	}
	va_end(ap);
	after = print_to_string(&cfg, 0);
	assert_string_equal(before, after);
	free(before);
	free(after);
	free(cause);
	fm_config_free(&cfg);
}

static void
expect_set(struct fm_config *cfg, const char *key, const char *value)
{
	char *cause = NULL;
	int rc = fm_config_set(cfg, key, value, &cause);

	if (rc != 0)
		fail_msg("%s=%s refused: %s", key, value, cause);
}

static void
test_defaults(void **state)
{
	struct fm_config cfg;

	fm_config_defaults(&cfg);
	assert_string_equal(cfg.listen_address, "127.0.0.1");
	assert_int_equal(cfg.listen_port, 8080);
	assert_string_equal(cfg.broker_ip1, "127.0.0.1");
	assert_string_equal(cfg.store_path_root_dir, "./ferrymq-data");
	assert_string_equal(cfg.broker_cluster_name, "DefaultCluster");
	assert_string_equal(cfg.broker_name, "broker-a");
	assert_int_equal(cfg.broker_id, 0);
	assert_int_equal(cfg.broker_role, FM_ROLE_ASYNC_MASTER);
	assert_int_equal(cfg.flush_disk_type, FM_FLUSH_ASYNC);
	assert_int_equal(cfg.flush_interval_commit_log, 500);
	assert_string_equal(cfg.namesrv_addr, "");
	assert_string_equal(cfg.ha_master_address, "");
	assert_int_equal(cfg.mapped_file_size_commit_log, 1073741824);
	assert_int_equal(cfg.file_reserved_time, 72);
	assert_true(cfg.disk_space_warning_level_ratio == 0.90);
	assert_int_equal(cfg.max_message_size, 4194304);
	assert_int_equal(cfg.auto_create_topic_enable, 1);
	assert_int_equal(cfg.default_topic_queue_nums, 8);
	assert_int_equal(cfg.max_reconsume_times, 16);
	assert_int_equal(cfg.timer_max_delay_sec, 259200);
	assert_int_equal(cfg.http_thread_pool_nums, 2);
	assert_int_equal(cfg.max_connections, 10000);
	assert_string_equal(cfg.web_root, "");
	assert_string_equal(cfg.log_level, "info");
	assert_int_equal(fm_config_log_level(&cfg), FM_LOG_INFO);
	assert_int_equal(fm_config_validate(&cfg, NULL), 0);
	fm_config_free(&cfg);
	assert_null(cfg.broker_name);
}

static void
test_integers(void **state)
{
	struct fm_config cfg;

	fm_config_defaults(&cfg);
	expect_set(&cfg, "listenPort", "1");
	assert_int_equal(cfg.listen_port, 1);
	expect_set(&cfg, "listenPort", " 65535\t");
	assert_int_equal(cfg.listen_port, 65535);
	expect_set(&cfg, "brokerId", "7");
	assert_int_equal(cfg.broker_id, 7);
	expect_set(&cfg, "maxMessageSize", "67108864");
	assert_int_equal(cfg.max_message_size, 64 * 1024 * 1024);
	expect_set(&cfg, "mappedFileSizeCommitLog", "65536");
	assert_int_equal(cfg.mapped_file_size_commit_log, 65536);
	expect_set(&cfg, "mappedFileSizeCommitLog", "17179869184");
	assert_true(cfg.mapped_file_size_commit_log == 17179869184ull);
	expect_set(&cfg, "defaultTopicQueueNums", "1024");
	assert_int_equal(cfg.default_topic_queue_nums, 1024);
	expect_set(&cfg, "maxReconsumeTimes", "0");
	assert_int_equal(cfg.max_reconsume_times, 0);
	fm_config_free(&cfg);

	expect_refused(
	    "listenPort", "abc", "listenPort: 'abc' is not a number", NULL);
	expect_refused("listenPort", "", "listenPort", "not a number", NULL);
	expect_refused("listenPort", "0", "listenPort: '0' is out of range",
	    "1-65535", NULL);
	expect_refused("listenPort", "65536", "out of range", NULL);
	expect_refused("listenPort", "-1", "not a number", NULL);
	expect_refused("listenPort", "+80", "not a number", NULL);
	expect_refused("listenPort", "80x", "not a number", NULL);
	expect_refused("listenPort", "0x50", "not a number", NULL);
	expect_refused("listenPort", "8 0", "not a number", NULL);
	expect_refused("listenPort", "8080.0", "not a number", NULL);
	expect_refused(
	    "listenPort", "99999999999999999999999", "out of range", NULL);
	expect_refused("brokerId", "-1", "brokerId", NULL);
	expect_refused("maxMessageSize", "0", "maxMessageSize", "range", NULL);
	expect_refused("maxMessageSize", "67108865", "range", NULL);
	expect_refused("mappedFileSizeCommitLog", "65535", "range", NULL);
	expect_refused("defaultTopicQueueNums", "0", "range", NULL);
	expect_refused("defaultTopicQueueNums", "1025", "range", NULL);
	expect_refused("flushIntervalCommitLog", "0", "range", NULL);
	expect_refused("httpThreadPoolNums", "0", "range", NULL);
}

static void
test_ratio(void **state)
{
	struct fm_config cfg;

	fm_config_defaults(&cfg);
	expect_set(&cfg, "diskSpaceWarningLevelRatio", "0.5");
	assert_true(cfg.disk_space_warning_level_ratio == 0.5);
	expect_set(&cfg, "diskSpaceWarningLevelRatio", "1");
	assert_true(cfg.disk_space_warning_level_ratio == 1.0);
	expect_set(&cfg, "diskSpaceWarningLevelRatio", "0");
	assert_true(cfg.disk_space_warning_level_ratio == 0.0);
	expect_set(&cfg, "diskSpaceWarningLevelRatio", ".75");
	assert_true(cfg.disk_space_warning_level_ratio == 0.75);
	fm_config_free(&cfg);

	expect_refused(
	    "diskSpaceWarningLevelRatio", "1.01", "out of range", "0-1", NULL);
	expect_refused(
	    "diskSpaceWarningLevelRatio", "-0.1", "not a number", NULL);
	expect_refused("diskSpaceWarningLevelRatio", "abc",
	    "diskSpaceWarningLevelRatio: 'abc' is not a number", NULL);
	expect_refused(
	    "diskSpaceWarningLevelRatio", "nan", "not a number", NULL);
	expect_refused(
	    "diskSpaceWarningLevelRatio", "9e-1", "not a number", NULL);
	expect_refused("diskSpaceWarningLevelRatio", ".", "not a number", NULL);
	expect_refused(
	    "diskSpaceWarningLevelRatio", "0.5.1", "not a number", NULL);
}

static void
test_bool(void **state)
{
	static const char *const yes[] = {"true", "TRUE", "1", "yes", "Yes"};
	static const char *const no[] = {"false", "False", "0", "no", "NO"};
	struct fm_config cfg;
	size_t i;

	fm_config_defaults(&cfg);
	for (i = 0; i < 5; i++) {
		expect_set(&cfg, "autoCreateTopicEnable", no[i]);
		assert_int_equal(cfg.auto_create_topic_enable, 0);
		expect_set(&cfg, "autoCreateTopicEnable", yes[i]);
		assert_int_equal(cfg.auto_create_topic_enable, 1);
	}
	fm_config_free(&cfg);
	expect_refused("autoCreateTopicEnable", "maybe",
	    "autoCreateTopicEnable: 'maybe' is not true or false", NULL);
	expect_refused(
	    "autoCreateTopicEnable", "2", "autoCreateTopicEnable", NULL);
}

static void
test_enums(void **state)
{
	struct fm_config cfg;

	fm_config_defaults(&cfg);
	expect_set(&cfg, "brokerRole", "SLAVE");
	assert_int_equal(cfg.broker_role, FM_ROLE_SLAVE);
	expect_set(&cfg, "brokerRole", "sync_master");
	assert_int_equal(cfg.broker_role, FM_ROLE_SYNC_MASTER);
	expect_set(&cfg, "flushDiskType", "SYNC_FLUSH");
	assert_int_equal(cfg.flush_disk_type, FM_FLUSH_SYNC);
	expect_set(&cfg, "logLevel", "DEBUG");
	assert_string_equal(cfg.log_level, "debug");
	assert_int_equal(fm_config_log_level(&cfg), FM_LOG_DEBUG);
	expect_set(&cfg, "logLevel", "error");
	assert_int_equal(fm_config_log_level(&cfg), FM_LOG_ERROR);
	fm_config_free(&cfg);

	expect_refused("brokerRole", "MASTER", "brokerRole: 'MASTER'",
	    "ASYNC_MASTER, SYNC_MASTER, SLAVE", NULL);
	expect_refused("flushDiskType", "", "flushDiskType", NULL);
	expect_refused("logLevel", "verbose", "logLevel: 'verbose'", NULL);
	assert_string_equal(fm_role_name(FM_ROLE_SYNC_MASTER), "SYNC_MASTER");
	assert_string_equal(fm_role_name(FM_ROLE_SLAVE), "SLAVE");
	assert_string_equal(fm_flush_name(FM_FLUSH_ASYNC), "ASYNC_FLUSH");
	assert_string_equal(fm_flush_name(FM_FLUSH_SYNC), "SYNC_FLUSH");
}

static void
test_strings(void **state)
{
	struct fm_config cfg;

	fm_config_defaults(&cfg);
	expect_set(&cfg, "brokerName", "  broker-b ");
	assert_string_equal(cfg.broker_name, "broker-b");
	expect_set(&cfg, "storePathRootDir", "/var/lib/ferry mq");
	assert_string_equal(cfg.store_path_root_dir, "/var/lib/ferry mq");
	expect_set(&cfg, "listenAddress", "::1");
	expect_set(&cfg, "listenAddress", "0.0.0.0");
	expect_set(&cfg, "brokerIP1", "node-1.example.com");
	expect_set(&cfg, "brokerIP1", "10.0.0.5");
	expect_set(&cfg, "namesrvAddr", "ns1:9876;10.0.0.2:9876;[::1]:9876");
	assert_string_equal(
	    cfg.namesrv_addr, "ns1:9876;10.0.0.2:9876;[::1]:9876");
	expect_set(&cfg, "namesrvAddr", "");
	assert_string_equal(cfg.namesrv_addr, "");
	expect_set(&cfg, "haMasterAddress", "master:8080");
	expect_set(&cfg, "webRoot", "/srv/console");
	fm_config_free(&cfg);

	expect_refused("brokerName", "", "brokerName: must not be empty", NULL);
	expect_refused("brokerName", "a\tb", "brokerName", "control", NULL);
	expect_refused("listenAddress", "localhost",
	    "listenAddress: 'localhost' is not an IPv4 or IPv6 address", NULL);
	expect_refused("brokerIP1", "bad host", "brokerIP1: 'bad host'", NULL);
	expect_refused("brokerIP1", "-x.example", "brokerIP1", NULL);
	expect_refused("namesrvAddr", "ns1:9876;", "namesrvAddr", NULL);
	expect_refused("namesrvAddr", "ns1", "namesrvAddr: 'ns1'", NULL);
	expect_refused("namesrvAddr", "ns1:0", "namesrvAddr", NULL);
	expect_refused("namesrvAddr", "ns1:65536", "namesrvAddr", NULL);
	expect_refused("namesrvAddr", "[zz]:80", "namesrvAddr", NULL);
	expect_refused("haMasterAddress", "master", "haMasterAddress", NULL);
	expect_refused(
	    "haMasterAddress", "http://master:80", "haMasterAddress", NULL);
}

static void
test_unknown_key(void **state)
{
	struct fm_config cfg;

	expect_refused("lstenPort", "1", "unknown key 'lstenPort'",
	    "did you mean 'listenPort'?", NULL);
	expect_refused("listenport", "1", "unknown key 'listenport'",
	    "'listenPort'", NULL);
	expect_refused("frobnicate", "1", "unknown key 'frobnicate'", NULL);
	expect_refused("", "1", "unknown key ''", NULL);
	fm_config_defaults(&cfg);
	assert_int_equal(fm_config_set(&cfg, "nope", "1", NULL), -FM_E_INVALID);
	assert_int_equal(
	    fm_config_set(&cfg, "listenPort", "x", NULL), -FM_E_INVALID);
	fm_config_free(&cfg);
}

static void
test_file(void **state)
{
	struct fm_config cfg;
	char *cause = NULL;

	WRITE("\xef\xbb\xbf# a comment\r\n"
	      "\r\n"
	      "   # indented comment\n"
	      "listenPort = 9001\r\n"
	      "\tbrokerName\t=\tbroker-z  \n"
	      "namesrvAddr=\n"
	      "brokerClusterName=a=b\n"
	      "   \t  \n"
	      "autoCreateTopicEnable=false");
	fm_config_defaults(&cfg);
	expect_set(&cfg, "namesrvAddr", "x:1");
	assert_int_equal(fm_config_load_file(&cfg, tmpfile_path, &cause), 0);
	assert_null(cause);
	assert_int_equal(cfg.listen_port, 9001);
	assert_string_equal(cfg.broker_name, "broker-z");
	assert_string_equal(cfg.namesrv_addr, "");
	assert_string_equal(cfg.broker_cluster_name, "a=b");
	assert_int_equal(cfg.auto_create_topic_enable, 0);
	fm_config_free(&cfg);
}

/* Loads text and expects a failure whose cause contains "PATH:" + where. */
static void
expect_file_error(const char *text, size_t len, const char *where)
{
	struct fm_config cfg;
	char *cause = NULL, *want;
	size_t n = strlen(tmpfile_path) + strlen(where) + 2;

	want = malloc(n);
	assert_non_null(want);
	snprintf(want, n, "%s:%s", tmpfile_path, where);
	write_file(text, len);
	fm_config_defaults(&cfg);
	assert_int_equal(
	    fm_config_load_file(&cfg, tmpfile_path, &cause), -FM_E_INVALID);
	assert_non_null(cause);
	if (strstr(cause, want) == NULL)
		fail_msg("cause '%s' lacks '%s'", cause, want);
	free(want);
	free(cause);
	fm_config_free(&cfg);
}

#define EXPECT_FILE_ERROR(text, where) \
	expect_file_error(text, sizeof(text) - 1, where)

static void
test_file_errors(void **state)
{
	struct fm_config cfg;
	char *cause = NULL;

	EXPECT_FILE_ERROR("# x\nlistenPort=8080\nlistenPort 9000\n",
	    "3: missing '=' in 'listenPort 9000'");
	EXPECT_FILE_ERROR(
	    "\n\nlistenPort=abc\r\n", "3: listenPort: 'abc' is not a number");
	EXPECT_FILE_ERROR("lstenPort=1\n", "1: unknown key 'lstenPort'");
	EXPECT_FILE_ERROR("a\x01"
	                  "b=1\n",
	    "1: unknown key 'a?b'");
	EXPECT_FILE_ERROR(
	    "listenPort\t9000\n", "1: missing '=' in 'listenPort?9000'");
	EXPECT_FILE_ERROR("# x\n  = 5\n", "2: missing key before '='");
	EXPECT_FILE_ERROR("brokerName=a\0b\n", "1: line contains a NUL byte");
	EXPECT_FILE_ERROR("listenPort=1\nbrokerRole=BOSS", "2: brokerRole");

	fm_config_defaults(&cfg);
	assert_int_equal(
	    fm_config_load_file(&cfg, "/nonexistent/ferrymq.conf", &cause),
	    -FM_E_NOT_FOUND);
	assert_non_null(cause);
	assert_non_null(strstr(cause, "/nonexistent/ferrymq.conf"));
	free(cause);
	cause = NULL;
	assert_true(fm_config_load_file(&cfg, tmpdir, &cause) < 0);
	assert_non_null(cause);
	assert_non_null(strstr(cause, tmpdir));
	free(cause);
	fm_config_free(&cfg);
}

static void
test_later_wins(void **state)
{
	struct fm_config cfg;
	char *cause = NULL;

	WRITE("listenPort=1000\nbrokerName=first\nlistenPort=2000\n");
	fm_config_defaults(&cfg);
	expect_set(&cfg, "listenPort", "3000");
	assert_int_equal(fm_config_load_file(&cfg, tmpfile_path, &cause), 0);
	assert_int_equal(cfg.listen_port, 2000);
	assert_string_equal(cfg.broker_name, "first");
	expect_set(&cfg, "brokerName", "second");
	expect_set(&cfg, "listenPort", "4000");
	assert_int_equal(cfg.listen_port, 4000);
	assert_string_equal(cfg.broker_name, "second");
	fm_config_free(&cfg);
}

/* Whether text holds the line "key=value" that cfg prints for key. */
static int
has_line(const char *text, const struct fm_config *cfg, const char *key)
{
	char *all = print_to_string(cfg, 0), *start, *end;
	char want[256];
	int found;

	snprintf(want, sizeof want, "\n%s=", key);
	start = strstr(all, want + 1) == all ? all : strstr(all, want) + 1;
	end = strchr(start, '\n');
	assert_non_null(end);
	snprintf(want, sizeof want, "%.*s\n", (int)(end - start), start);
	found = strstr(text, want) != NULL;
	free(all);
	return found;
}

/* Print a config that differs from the defaults in every key, load the
 * text into fresh defaults, and expect the same printout. */
static void
test_print_reload(void **state)
{
	static const char *const set[][2] = {
	    {"listenAddress", "::1"},
	    {"listenPort", "9100"},
	    {"brokerIP1", "node-2.example"},
	    {"storePathRootDir", "/tmp/data dir"},
	    {"brokerClusterName", "Cluster#1"},
	    {"brokerName", "broker-q"},
	    {"brokerId", "3"},
	    {"brokerRole", "slave"},
	    {"flushDiskType", "SYNC_FLUSH"},
	    {"flushIntervalCommitLog", "250"},
	    {"namesrvAddr", "a:1;b:2"},
	    {"haMasterAddress", "m:8080"},
	    {"mappedFileSizeCommitLog", "1099511627776"},
	    {"fileReservedTime", "1"},
	    {"cleanResourceInterval", "250"},
	    {"diskSpaceWarningLevelRatio", "0.123456789012345"},
	    {"maxMessageSize", "1"},
	    {"autoCreateTopicEnable", "no"},
	    {"defaultTopicQueueNums", "3"},
	    {"maxReconsumeTimes", "1000"},
	    {"timerMaxDelaySec", "60"},
	    {"wsPingInterval", "1500"},
	    {"sseKeepaliveInterval", "2500"},
	    {"httpThreadPoolNums", "4"},
	    {"maxConnections", "5"},
	    {"webRoot", "/srv/web"},
	    {"logLevel", "WARN"},
	};
	struct fm_config a, b;
	char *text_a, *text_b, *defaults, *cause = NULL;
	int with_help;
	size_t i;

	fm_config_defaults(&a);
	defaults = print_to_string(&a, 0);
	for (i = 0; i < sizeof set / sizeof set[0]; i++)
		expect_set(&a, set[i][0], set[i][1]);
	assert_int_equal(fm_config_validate(&a, NULL), 0);
	for (with_help = 0; with_help <= 1; with_help++) {
		text_a = print_to_string(&a, with_help);
		write_file(text_a, strlen(text_a));
		fm_config_defaults(&b);
		assert_int_equal(
		    fm_config_load_file(&b, tmpfile_path, &cause), 0);
		text_b = print_to_string(&b, with_help);
		assert_string_equal(text_a, text_b);
		assert_true(b.disk_space_warning_level_ratio ==
		    a.disk_space_warning_level_ratio);
		assert_true(b.mapped_file_size_commit_log == 1099511627776ull);
		assert_int_equal(b.broker_role, FM_ROLE_SLAVE);
		assert_string_equal(b.log_level, "warn");
		free(text_a);
		free(text_b);
		fm_config_free(&b);
	}
	/* Every line must differ from the defaults, or the test proves less. */
	for (i = 0; i < sizeof set / sizeof set[0]; i++)
		assert_false(has_line(defaults, &a, set[i][0]));
	free(defaults);
	fm_config_free(&a);
}

static char *
srcdir_file(const char *rel)
{
	const char *top = getenv("FERRYMQ_SRCDIR");
	char path[4096];

	if (top == NULL || *top == '\0')
		return NULL;
	snprintf(path, sizeof path, "%s/%s", top, rel);
	return read_all(path);
}

static void
test_sample_file(void **state)
{
	struct fm_config cfg;
	char *want, *have;

	if (getenv("FERRYMQ_SRCDIR") == NULL)
		skip();
	have = srcdir_file("etc/ferrymq.conf");
	assert_non_null(have);
	fm_config_defaults(&cfg);
	want = print_to_string(&cfg, 1);
	assert_string_equal(have, want);
	free(want);
	free(have);
	fm_config_free(&cfg);
}

/* Every key printed by the table is documented in ferrymq.conf(5) and
 * listed by --help. */
static void
test_docs_cover_keys(void **state)
{
	struct fm_config cfg;
	char *keys, *man, *help, *line, *eq, *save = NULL, pattern[128];
	size_t len = 0;
	FILE *f;

	if (getenv("FERRYMQ_SRCDIR") == NULL)
		skip();
	man = srcdir_file("man/ferrymq.conf.5");
	assert_non_null(man);
	help = NULL;
	f = open_memstream(&help, &len);
	assert_non_null(f);
	fm_config_print_help(f);
	assert_int_equal(fclose(f), 0);
	fm_config_defaults(&cfg);
	keys = print_to_string(&cfg, 0);
	for (line = strtok_r(keys, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		eq = strchr(line, '=');
		assert_non_null(eq);
		*eq = '\0';
		snprintf(pattern, sizeof pattern, "\n.B %s\n", line);
		if (strstr(man, pattern) == NULL)
			fail_msg("man/ferrymq.conf.5 lacks '.B %s'", line);
		snprintf(pattern, sizeof pattern, "  --%s=", line);
		if (strstr(help, pattern) == NULL)
			fail_msg("--help lacks '%s'", pattern);
	}
	assert_non_null(strstr(help, "  --listenPort=<1-65535>\n"));
	assert_non_null(
	    strstr(help, "  --brokerRole=ASYNC_MASTER|SYNC_MASTER|SLAVE"));
	free(keys);
	free(help);
	free(man);
	fm_config_free(&cfg);
}

/* Applies the pairs to fresh defaults and expects validate to refuse
 * with a cause containing frag (or to accept when frag is NULL). */
static void
expect_validate(const char *frag, const char *const (*pairs)[2], size_t n)
{
	struct fm_config cfg;
	char *cause = NULL;
	size_t i;

	fm_config_defaults(&cfg);
	for (i = 0; i < n; i++)
		expect_set(&cfg, pairs[i][0], pairs[i][1]);
	if (frag == NULL) {
		if (fm_config_validate(&cfg, &cause) != 0)
			fail_msg("refused: %s", cause);
	} else {
		assert_int_equal(
		    fm_config_validate(&cfg, &cause), -FM_E_INVALID);
		assert_non_null(cause);
		if (strstr(cause, frag) == NULL)
			fail_msg("cause '%s' lacks '%s'", cause, frag);
		free(cause);
	}
	fm_config_free(&cfg);
}

#define VALIDATE(frag, ...) \
	do { \
		static const char *const pairs[][2] = {__VA_ARGS__}; \
		expect_validate(frag, pairs, sizeof pairs / sizeof pairs[0]); \
	} while (0)

static void
test_validate(void **state)
{
	struct fm_config cfg;
	char *cause = NULL;

	VALIDATE(NULL, {"brokerRole", "SYNC_MASTER"});
	VALIDATE(NULL, {"brokerRole", "SLAVE"}, {"brokerId", "1"},
	    {"haMasterAddress", "m:8080"});
	VALIDATE(
	    "brokerId", {"brokerRole", "SLAVE"}, {"haMasterAddress", "m:8080"});
	VALIDATE("haMasterAddress", {"brokerRole", "SLAVE"}, {"brokerId", "2"});
	VALIDATE("brokerRole ASYNC_MASTER needs brokerId 0", {"brokerId", "1"});
	VALIDATE(
	    "brokerId 0", {"brokerRole", "SYNC_MASTER"}, {"brokerId", "5"});
	VALIDATE("maxMessageSize", {"mappedFileSizeCommitLog", "65536"},
	    {"maxMessageSize", "65536"});
	VALIDATE(NULL, {"mappedFileSizeCommitLog", "65536"},
	    {"maxMessageSize", "65535"});

	/* Fields filled in by hand are held to the same rules. */
	fm_config_defaults(&cfg);
	cfg.listen_port = 0;
	assert_int_equal(fm_config_validate(&cfg, &cause), -FM_E_INVALID);
	assert_non_null(strstr(cause, "listenPort"));
	free(cause);
	cause = NULL;
	cfg.listen_port = 80;
	free(cfg.broker_name);
	cfg.broker_name = NULL;
	assert_int_equal(fm_config_validate(&cfg, &cause), -FM_E_INVALID);
	assert_non_null(strstr(cause, "brokerName"));
	free(cause);
	cause = NULL;
	cfg.broker_name = strdup("b");
	cfg.broker_role = (enum fm_role)7;
	assert_int_equal(fm_config_validate(&cfg, &cause), -FM_E_INVALID);
	assert_non_null(strstr(cause, "brokerRole"));
	free(cause);
	cfg.broker_role = FM_ROLE_ASYNC_MASTER;
	cfg.disk_space_warning_level_ratio = 2.0;
	assert_int_equal(fm_config_validate(&cfg, NULL), -FM_E_INVALID);
	fm_config_free(&cfg);
}

/* Files of random lines built from the bytes that matter to the parser:
 * every load either succeeds or fails with a cause, and never crashes or
 * leaks (the sanitizer build checks the latter). Seeded: deterministic. */
static void
test_file_garbage(void **state)
{
	static const char alphabet[] = "=#\n\r\t \x01\xef\xbb\xbf"
	                               "listenPortbrokerRole0123456789.:;-[]";
	static const char *const keys[] = {"listenPort", "brokerRole",
	    "namesrvAddr", "diskSpaceWarningLevelRatio", "logLevel"};
	struct fm_config cfg;
	char text[512], *cause;
	unsigned seed = 12345;
	size_t round, i, n;
	int rc;

	for (round = 0; round < 500; round++) {
		n = 0;
		while (n < sizeof text - 32) {
			seed = seed * 1103515245u + 12345u;
			if ((seed >> 16) % 8 == 0)
				n += (size_t)snprintf(text + n, sizeof text - n,
				    "\n%s=", keys[(seed >> 20) % 5]);
			else
				text[n++] = alphabet[(seed >> 16) %
				    (sizeof alphabet - 1)];
		}
		write_file(text, n);
		cause = NULL;
		fm_config_defaults(&cfg);
		rc = fm_config_load_file(&cfg, tmpfile_path, &cause);
		if (rc == 0) {
			assert_null(cause);
		} else {
			assert_int_equal(rc, -FM_E_INVALID);
			assert_non_null(cause);
			assert_non_null(strstr(cause, tmpfile_path));
		}
		for (i = 0; cause != NULL && cause[i] != '\0'; i++)
			assert_true((unsigned char)cause[i] >= 0x20);
		free(cause);
		fm_config_free(&cfg);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_integers),
	    cmocka_unit_test(test_ratio),
	    cmocka_unit_test(test_bool),
	    cmocka_unit_test(test_enums),
	    cmocka_unit_test(test_strings),
	    cmocka_unit_test(test_unknown_key),
	    cmocka_unit_test(test_file),
	    cmocka_unit_test(test_file_errors),
	    cmocka_unit_test(test_file_garbage),
	    cmocka_unit_test(test_later_wins),
	    cmocka_unit_test(test_print_reload),
	    cmocka_unit_test(test_sample_file),
	    cmocka_unit_test(test_docs_cover_keys),
	    cmocka_unit_test(test_validate),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
