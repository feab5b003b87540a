/*
 * server.h - the HTTP front end: a libmicrohttpd daemon serving the API of
 * api/openapi.yaml, /routes, /healthz, /metrics and the web console.
 */
#ifndef FM_HTTP_SERVER_H
#define FM_HTTP_SERVER_H

#include "base/config.h"
#include "broker/broker.h"

struct fm_http;

/* Start listening on cfg->listen_address:cfg->listen_port. cfg and b are
 * borrowed and must outlive the server. *out is new (fm_http_stop). On
 * failure *cause (new) says why, e.g. the port is in use. */
int fm_http_start(const struct fm_config *cfg, struct fm_broker *b,
    struct fm_http **out, char **cause);
/* Resume every parked request (answering it), stop the daemon, free. Call
 * before fm_broker_close. */
void fm_http_stop(struct fm_http *h);

#endif
