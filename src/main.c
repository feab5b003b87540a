/*
 * main.c - the ferrymq daemon: reads the command line, builds the
 * configuration, starts the broker and the HTTP front end, and stops them
 * in reverse order on SIGINT or SIGTERM.
 *
 * Owns only the wiring. What keys exist and what values they take is the
 * directive table's (base/config.c); everything a node does is the
 * broker's and the front end's.
 *
 * Invariants:
 *  1. Configuration is applied in one order: defaults, every -c FILE in
 *     turn, then every --KEY=VALUE, wherever it stood on the command line,
 *     then fm_config_validate. Nothing starts before that succeeded.
 *  2. SIGINT and SIGTERM are blocked, and SIGPIPE ignored, before any
 *     thread exists, so every thread inherits that and only the main
 *     thread's sigwait sees the signals.
 *  3. Exit status: 0 after a clean stop or an informational option, 2 for
 *     bad usage or configuration, 1 when the node fails to start.
 */
#include "config.h"

#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include "base/config.h"
#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "broker/broker.h"
#include "http/server.h"

#define EXIT_USAGE 2
#define EXIT_RUNTIME 1

/* The command line, sorted by kind; all strings borrowed from argv. */
struct args {
	int help;
	int version;
	int print_config;
	const char **files; /* -c FILE, in order */
	size_t nfiles;
	const char **sets; /* "KEY=VALUE", after the leading "--" */
	size_t nsets;
};

static const char usage_text[] =
    "usage: ferrymq [-c FILE] [--KEY=VALUE ...] [--help] [--version] "
    "[--print-config]\n"
    "\n"
    "Runs a ferrymq node: Apache RocketMQ's NameServer and broker served\n"
    "over HTTP and WebSocket. Without arguments it is a standalone node on\n"
    "127.0.0.1:8080 keeping its data under ./ferrymq-data.\n"
    "\n"
    "Options:\n"
    "  -c FILE         read key=value lines from FILE (may be repeated)\n"
    "  --KEY=VALUE     set one configuration key; wins over every FILE\n"
    "  --print-config  print the effective configuration and exit\n"
    "  --help          print this help and exit\n"
    "  --version       print the version and exit\n"
    "\n"
    "Configuration keys (see ferrymq.conf(5)):\n";

/* Sorts argv into a; on error *cause (new) says which argument is wrong. */
static int
parse_args(int argc, char **argv, struct args *a, char **cause)
{
	const char *arg;
	int i;

	memset(a, 0, sizeof *a);
	a->files = xcalloc((size_t)argc, sizeof *a->files);
	a->sets = xcalloc((size_t)argc, sizeof *a->sets);
	for (i = 1; i < argc; i++) {
		arg = argv[i];
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
			a->help = 1;
		else if (strcmp(arg, "--version") == 0)
			a->version = 1;
		else if (strcmp(arg, "--print-config") == 0)
			a->print_config = 1;
		else if (strcmp(arg, "-c") == 0 && i + 1 < argc)
			a->files[a->nfiles++] = argv[++i];
		else if (strncmp(arg, "-c", 2) == 0 && arg[2] != '\0')
			a->files[a->nfiles++] = arg + 2;
		else if (strncmp(arg, "--", 2) == 0 && arg[2] != '=' &&
		    strchr(arg, '=') != NULL)
			a->sets[a->nsets++] = arg + 2;
		else
			goto fail;
	}
	return 0;
fail:
	if (strcmp(arg, "-c") == 0)
		xasprintf(cause, "option -c needs a FILE");
	else if (arg[0] == '-')
		xasprintf(cause,
		    "unknown option '%s' (keys are set as --KEY=VALUE)", arg);
	else
		xasprintf(cause, "unexpected argument '%s' (see --help)", arg);
	return -FM_E_INVALID;
}

static void
free_args(struct args *a)
{
	free(a->files);
	free(a->sets);
}

/* Invariant 1. */
static int
build_config(const struct args *a, struct fm_config *cfg, char **cause)
{
	const char *eq;
	char *key;
	size_t i;
	int rc;

	for (i = 0; i < a->nfiles; i++) {
		rc = fm_config_load_file(cfg, a->files[i], cause);
		if (rc < 0)
			return rc;
	}
	for (i = 0; i < a->nsets; i++) {
		eq = strchr(a->sets[i], '=');
		key = xstrndup(a->sets[i], (size_t)(eq - a->sets[i]));
		rc = fm_config_set(cfg, key, eq + 1, cause);
		free(key);
		if (rc < 0)
			return rc;
	}
	return fm_config_validate(cfg, cause);
}

/* Invariant 2: *set gets the signals main waits for. */
static int
setup_signals(sigset_t *set, char **cause)
{
	struct sigaction sa;
	int rc;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGPIPE, &sa, NULL) != 0)
		goto fail;
	if (sigemptyset(set) != 0 || sigaddset(set, SIGINT) != 0 ||
	    sigaddset(set, SIGTERM) != 0)
		goto fail;
	rc = pthread_sigmask(SIG_BLOCK, set, NULL);
	if (rc != 0)
		goto fail;
	return 0;
fail:
	xasprintf(cause, "cannot set up signal handling");
	return -FM_E_IO;
}

static void
log_listening(const struct fm_config *cfg)
{
	int v6 = strchr(cfg->listen_address, ':') != NULL;

	fm_info("ferrymq %s listening on http://%s%s%s:%d (%s, %s)",
	    PACKAGE_VERSION, v6 ? "[" : "", cfg->listen_address, v6 ? "]" : "",
	    cfg->listen_port, fm_role_name(cfg->broker_role),
	    fm_flush_name(cfg->flush_disk_type));
}

/* glibc's defaults give freed heap back to the kernel after nearly every
 * pull answer (a few hundred KiB), and the next request faults it in
 * again: measured at ~40% of a pull's CPU (bench/RESULTS.md). Keep up to
 * 64 MiB of free heap, and serve requests up to 8 MiB from the heap
 * rather than from a fresh mmap each time. Memory stays bounded: these
 * only decide when freed memory is returned. */
static void
tune_malloc(void)
{
	mallopt(M_MMAP_THRESHOLD, 8 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
}

/* Starts the node, waits for SIGINT or SIGTERM, stops it. Returns an exit
 * status; a failure to start is reported on stderr. */
static int
run(const struct fm_config *cfg)
{
	struct fm_broker *broker = NULL;
	struct fm_http *http = NULL;
	char *cause = NULL;
	int rc, sig, status = EXIT_RUNTIME;
	sigset_t set;

	fm_log_set_level((enum fm_log_level)fm_config_log_level(cfg));
	tune_malloc();
	rc = setup_signals(&set, &cause);
	if (rc < 0)
		goto fail;
	rc = fm_broker_open(cfg, &broker, &cause);
	if (rc < 0)
		goto fail;
	rc = fm_http_start(cfg, broker, &http, &cause);
	if (rc < 0)
		goto fail;
	log_listening(cfg);
	if (sigwait(&set, &sig) != 0)
		sig = SIGTERM;
	fm_info(
	    "%s received, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
	status = EXIT_SUCCESS;
	goto out;
fail:
	fprintf(
	    stderr, "ferrymq: %s\n", cause != NULL ? cause : fm_err_msg(rc));
out:
	if (http != NULL)
		fm_http_stop(http);
	if (broker != NULL)
		fm_broker_close(broker);
	free(cause);
	return status;
}

int
main(int argc, char **argv)
{
	struct fm_config cfg;
	struct args args;
	char *cause = NULL;
	int status = EXIT_USAGE;

	fm_config_defaults(&cfg);
	if (parse_args(argc, argv, &args, &cause) < 0)
		goto fail;
	if (args.help) {
		fputs(usage_text, stdout);
		fm_config_print_help(stdout);
		status = EXIT_SUCCESS;
		goto out;
	}
	if (args.version) {
		printf("ferrymq %s\n", PACKAGE_VERSION);
		status = EXIT_SUCCESS;
		goto out;
	}
	if (build_config(&args, &cfg, &cause) < 0)
		goto fail;
	if (args.print_config) {
		fm_config_print(&cfg, stdout, 0);
		status = EXIT_SUCCESS;
		goto out;
	}
	status = run(&cfg);
	goto out;
fail:
	fprintf(stderr, "ferrymq: %s\n", cause != NULL ? cause : "bad usage");
out:
	if (fflush(stdout) != 0 && status == EXIT_SUCCESS)
		status = EXIT_RUNTIME;
	free_args(&args);
	fm_config_free(&cfg);
	free(cause);
	return status;
}
