/*
 * test_router.c - the route matcher: literal and {param} segments, table
 * order, 404 versus 405 with the Allow list, HEAD served by GET routes.
 * Uses its own table of dummy handlers; knows nothing of MHD.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/router.h"

static int
h_a(struct fm_req *r)
{
	return 1;
}

static int
h_b(struct fm_req *r)
{
	return 2;
}

static const struct fm_route table[] = {
    {"POST", "/v1/topics/{topic}/messages", h_a},
    {"GET", "/v1/topics/{topic}/messages", h_b},
    {"GET", "/v1/topics/{topic}/queues/{queueId}/messages", h_a},
    {"PUT", "/v1/topics/{topic}", h_a},
    {"GET", "/v1/topics/{topic}", h_b},
    {"DELETE", "/v1/topics/{topic}", h_a},
    {"GET", "/v1/topics", h_b},
    {"GET", "/healthz", h_a},
    {"GET", "/", h_a},
    {"GET", "/{file}", h_b},
};
#define NTABLE (sizeof(table) / sizeof(table[0]))

static enum fm_route_status
match(const char *method, const char *path, struct fm_route_match *m)
{
	return fm_router_match(table, NTABLE, method, path, m);
}

static void
test_literal(void **state)
{
	struct fm_route_match m;

	assert_int_equal(match("GET", "/v1/topics", &m), FM_ROUTE_FOUND);
	assert_ptr_equal(m.route, &table[6]);
	assert_int_equal(m.nparams, 0);
	fm_route_match_free(&m);
	assert_int_equal(match("GET", "/", &m), FM_ROUTE_FOUND);
	assert_ptr_equal(m.route, &table[8]);
	fm_route_match_free(&m);
}

static void
test_params(void **state)
{
	struct fm_route_match m;

	assert_int_equal(
	    match("GET", "/v1/topics/orders/queues/3/messages", &m),
	    FM_ROUTE_FOUND);
	assert_ptr_equal(m.route, &table[2]);
	assert_int_equal(m.nparams, 2);
	assert_string_equal(fm_route_param(&m, "topic"), "orders");
	assert_string_equal(fm_route_param(&m, "queueId"), "3");
	assert_null(fm_route_param(&m, "queue"));
	assert_null(fm_route_param(&m, "queueIdx"));
	fm_route_match_free(&m);

	assert_int_equal(match("DELETE", "/v1/topics/a%b", &m), FM_ROUTE_FOUND);
	assert_ptr_equal(m.route, &table[5]);
	assert_string_equal(fm_route_param(&m, "topic"), "a%b");
	fm_route_match_free(&m);
}

static void
test_method_picks_route(void **state)
{
	struct fm_route_match m;

	assert_int_equal(
	    match("POST", "/v1/topics/t/messages", &m), FM_ROUTE_FOUND);
	assert_ptr_equal(m.route->fn, h_a);
	fm_route_match_free(&m);
	assert_int_equal(
	    match("GET", "/v1/topics/t/messages", &m), FM_ROUTE_FOUND);
	assert_ptr_equal(m.route->fn, h_b);
	fm_route_match_free(&m);
	assert_int_equal(match("HEAD", "/v1/topics/t", &m), FM_ROUTE_FOUND);
	assert_ptr_equal(m.route, &table[4]);
	fm_route_match_free(&m);
}

static void
test_order_literal_first(void **state)
{
	struct fm_route_match m;

	assert_int_equal(match("GET", "/healthz", &m), FM_ROUTE_FOUND);
	assert_ptr_equal(m.route, &table[7]);
	fm_route_match_free(&m);
	assert_int_equal(match("GET", "/app.js", &m), FM_ROUTE_FOUND);
	assert_ptr_equal(m.route, &table[9]);
	assert_string_equal(fm_route_param(&m, "file"), "app.js");
	fm_route_match_free(&m);
}

static void
test_not_found(void **state)
{
	static const char *const paths[] = {"/v1/topics/",
	    "/v1/topics//messages", "/v1/topics/t/queues/1",
	    "/v1/topics/t/queues//messages", "/v1/topicsx", "/v1",
	    "/v1/topics/t/messages/x", "", "v1/topics", "//", "/v1/topics/t/"};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct fm_route_match m;

		assert_int_equal(match("GET", paths[i], &m) == FM_ROUTE_FOUND &&
		        m.route != &table[9],
		    0);
		fm_route_match_free(&m);
	}
	struct fm_route_match m;

	assert_int_equal(
	    match("GET", "/v1/nothing/here", &m), FM_ROUTE_NOT_FOUND);
	assert_string_equal(m.allow, "");
	fm_route_match_free(&m);
}

static void
test_bad_method_allow(void **state)
{
	struct fm_route_match m;

	assert_int_equal(
	    match("POST", "/v1/topics/t", &m), FM_ROUTE_BAD_METHOD);
	assert_null(m.route);
	assert_string_equal(m.allow, "PUT, GET, HEAD, DELETE");
	fm_route_match_free(&m);

	assert_int_equal(
	    match("DELETE", "/v1/topics/t/messages", &m), FM_ROUTE_BAD_METHOD);
	assert_string_equal(m.allow, "POST, GET, HEAD");
	fm_route_match_free(&m);

	assert_int_equal(match("PUT", "/v1/topics", &m), FM_ROUTE_BAD_METHOD);
	assert_string_equal(m.allow, "GET, HEAD");
	fm_route_match_free(&m);
}

static void
test_too_many_params(void **state)
{
	static const struct fm_route many[] = {
	    {"GET", "/{a}/{b}/{c}/{d}/{e}", h_a},
	    {"GET", "/{a}/{b}/{c}/{d}", h_b},
	};
	struct fm_route_match m;

	assert_int_equal(fm_router_match(many, 2, "GET", "/1/2/3/4/5", &m),
	    FM_ROUTE_NOT_FOUND);
	fm_route_match_free(&m);
	assert_int_equal(
	    fm_router_match(many, 2, "GET", "/1/2/3/4", &m), FM_ROUTE_FOUND);
	assert_string_equal(fm_route_param(&m, "d"), "4");
	assert_string_equal(fm_route_param(&m, "a"), "1");
	fm_route_match_free(&m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_literal),
	    cmocka_unit_test(test_params),
	    cmocka_unit_test(test_method_picks_route),
	    cmocka_unit_test(test_order_literal_first),
	    cmocka_unit_test(test_not_found),
	    cmocka_unit_test(test_bad_method_allow),
	    cmocka_unit_test(test_too_many_params),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
