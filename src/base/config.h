/*
 * config.h - the node's configuration: one struct, filled from defaults,
 * then a broker.conf-style file (-c FILE), then --KEY=VALUE arguments.
 *
 * Key names are RocketMQ's where RocketMQ has one. The directive table in
 * config.c binds each key to a field below (offsetof), with its type,
 * default, limits and one-line help; parsing, --help, --print-config and
 * etc/ferrymq.conf all derive from that one table.
 */
#ifndef FM_BASE_CONFIG_H
#define FM_BASE_CONFIG_H

#include <stdint.h>
#include <stdio.h>

enum fm_role { FM_ROLE_ASYNC_MASTER, FM_ROLE_SYNC_MASTER, FM_ROLE_SLAVE };
enum fm_flush { FM_FLUSH_ASYNC, FM_FLUSH_SYNC };

struct fm_config {
	char *listen_address; /* listenAddress: IP to bind ("127.0.0.1") */
	int listen_port; /* listenPort (8080) */
	char *broker_ip1; /* brokerIP1: address advertised to clients */
	char *store_path_root_dir; /* storePathRootDir ("./ferrymq-data") */
	char *broker_cluster_name; /* brokerClusterName ("DefaultCluster") */
	char *broker_name; /* brokerName ("broker-a") */
	long broker_id; /* brokerId: 0 is the master */
	enum fm_role broker_role; /* brokerRole */
	enum fm_flush flush_disk_type; /* flushDiskType */
	int flush_interval_commit_log; /* flushIntervalCommitLog, ms (500) */
	char *namesrv_addr; /* namesrvAddr: "host:port;host:port" or "" */
	char *ha_master_address; /* haMasterAddress: "host:port" or "" */
	uint64_t mapped_file_size_commit_log; /* bytes (1 GiB) */
	int file_reserved_time; /* fileReservedTime, hours (72) */
	int clean_resource_interval; /* cleanResourceInterval, ms (10000) */
	double
	    disk_space_warning_level_ratio; /* 0..1 (0.90): refuse writes above */
	uint32_t max_message_size; /* maxMessageSize, bytes (4 MiB) */
	int auto_create_topic_enable; /* autoCreateTopicEnable (true) */
	int default_topic_queue_nums; /* defaultTopicQueueNums (8) */
	int max_reconsume_times; /* maxReconsumeTimes (16) */
	int timer_max_delay_sec; /* timerMaxDelaySec (259200 = 3 days) */
	int ws_ping_interval; /* wsPingInterval, ms (30000) */
	int sse_keepalive_interval; /* sseKeepaliveInterval, ms (15000) */
	int http_thread_pool_nums; /* httpThreadPoolNums (2) */
	int max_connections; /* maxConnections (10000) */
	char *web_root; /* webRoot: console files ("" = built in path) */
	char *log_level; /* logLevel: error, warn, info, debug */
};

/* Fill cfg with the defaults. Strings are new (fm_config_free). */
void fm_config_defaults(struct fm_config *cfg);
/* Apply one KEY=VALUE. Returns 0, or -FM_E_INVALID with *cause (new)
 * naming the key, e.g. "unknown key 'lstenPort'" or
 * "listenPort: '99999' is not a port (1-65535)". */
int fm_config_set(
    struct fm_config *cfg, const char *key, const char *value, char **cause);
/* Apply a broker.conf-style file: key=value lines, '#' comments, blank
 * lines. On error *cause (new) names the file, line and key. */
int fm_config_load_file(struct fm_config *cfg, const char *path, char **cause);
/* Check the values together (e.g. a SLAVE needs haMasterAddress). */
int fm_config_validate(const struct fm_config *cfg, char **cause);
/* Write every key=value in effect, one per line, with its help as a comment
 * when with_help is set (that is how etc/ferrymq.conf is made). */
void fm_config_print(const struct fm_config *cfg, FILE *out, int with_help);
/* Write one entry per key for --help: "--key=<range>", then its help and
 * default on an indented line. */
void fm_config_print_help(FILE *out);
void fm_config_free(struct fm_config *cfg);
/* cfg->log_level as an enum fm_log_level value (base/log.h); FM_LOG_INFO
 * when it is not one of the names fm_config_set accepts. */
int fm_config_log_level(const struct fm_config *cfg);

const char *fm_role_name(enum fm_role role);
const char *fm_flush_name(enum fm_flush flush);

#endif
