/*
 * router.h - the one route table of the HTTP front end, and its matcher.
 *
 * Owns: matching a method and a decoded path against a table of patterns
 * ("/v1/topics/{topic}/queues/{queueId}/messages"), extracting the {param}
 * segments, and deciding 404 (no pattern matches the path) versus 405 (a
 * pattern matches but not for this method, with the Allow list built from
 * the table). Does not own: the handlers, MHD, replies.
 *
 * Invariants: a pattern starts with '/', a {param} is one whole segment,
 * and a literal segment never matches an empty one. Routes are tried in
 * table order, so literal routes must come before a catch-all like
 * "/{file}". HEAD is served by every GET route (MHD drops the body).
 */
#ifndef FM_HTTP_ROUTER_H
#define FM_HTTP_ROUTER_H

#include <stddef.h>

struct fm_req;

/* A handler answers the request (see http.h for the return values). */
typedef int (*fm_handler_fn)(struct fm_req *r);

struct fm_route {
	const char *method; /* "GET", "PUT", "POST", "DELETE" */
	const char *pattern; /* "/v1/topics/{topic}" */
	fm_handler_fn fn;
};

#define FM_ROUTE_MAX_PARAMS 4
#define FM_ROUTE_ALLOW_LEN 64

enum fm_route_status {
	FM_ROUTE_FOUND,
	FM_ROUTE_NOT_FOUND, /* 404: no pattern matches the path */
	FM_ROUTE_BAD_METHOD, /* 405: see allow */
};

struct fm_route_match {
	const struct fm_route *route; /* borrowed from the table; FOUND only */
	char *path; /* owned copy of the path; params point into it */
	const char *names[FM_ROUTE_MAX_PARAMS]; /* borrowed from the pattern */
	size_t name_lens[FM_ROUTE_MAX_PARAMS];
	const char *values[FM_ROUTE_MAX_PARAMS]; /* into path, NUL-terminated */
	size_t nparams;
	char allow[FM_ROUTE_ALLOW_LEN]; /* "GET, HEAD, PUT" for BAD_METHOD */
};

/* Match method and path against n routes. m is filled (free it with
 * fm_route_match_free whatever the result). */
enum fm_route_status fm_router_match(const struct fm_route *routes, size_t n,
    const char *method, const char *path, struct fm_route_match *m);
/* The value of parameter name ("topic"), borrowed from m, or NULL. */
const char *fm_route_param(const struct fm_route_match *m, const char *name);
void fm_route_match_free(struct fm_route_match *m);

#endif
