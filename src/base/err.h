/*
 * err.h - the one error vocabulary of ferrymq.
 *
 * Every fallible function returns 0 on success or a negative FM_E* code.
 * Each layer maps what it gets from below into this list (the HTTP layer
 * maps it once more, to a status and a JSON "code"). The list is an X-macro
 * so that names, messages and the HTTP table can never drift apart.
 */
#ifndef FM_BASE_ERR_H
#define FM_BASE_ERR_H

/* X(NAME, "human message") -- NAME is the JSON error code clients see. */
#define FM_ERRORS(X) \
	X(NOMEM, "out of memory") \
	X(IO, "input/output error") \
	X(NOSPC, "no space left on device") \
	X(CORRUPT, "stored data is corrupt") \
	X(INVALID, "invalid argument") \
	X(NOT_FOUND, "not found") \
	X(EXISTS, "already exists") \
	X(TOO_LARGE, "too large") \
	X(NOT_WRITABLE, "not writable") \
	X(DISK_FULL, "disk usage is above the configured threshold") \
	X(TIMEOUT, "timed out") \
	X(SHUTDOWN, "shutting down") \
	X(GONE, "no longer retained") \
	X(BUSY, "busy, try again")

enum fm_err {
	FM_OK = 0,
#define FM_ERR_ENUM(name, msg) FM_E_##name,
	FM_ERRORS(FM_ERR_ENUM)
#undef FM_ERR_ENUM
	    FM_E__COUNT
};

/* Name of a code, e.g. "NOT_FOUND". Accepts err or -err. Borrowed, static. */
const char *fm_err_name(int err);
/* Human message of a code. Accepts err or -err. Borrowed, static. */
const char *fm_err_msg(int err);
/* Map a positive errno value to a negative FM_E* code. */
int fm_err_from_errno(int errnum);

#endif
