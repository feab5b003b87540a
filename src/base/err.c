/*
 * err.c - names and messages for the FM_ERRORS list; errno mapping.
 * Owns nothing but two static tables generated from the X-macro.
 */
#include <errno.h>

#include "base/err.h"

static const char *const names[] = {"OK",
#define FM_ERR_NAME(name, msg) #name,
    FM_ERRORS(FM_ERR_NAME)
#undef FM_ERR_NAME
};

static const char *const msgs[] = {"success",
#define FM_ERR_MSG(name, msg) msg,
    FM_ERRORS(FM_ERR_MSG)
#undef FM_ERR_MSG
};

static int
norm(int err)
{
	if (err < 0)
		err = -err;
	return err < FM_E__COUNT ? err : FM_E_IO;
}

const char *
fm_err_name(int err)
{
	return names[norm(err)];
}

const char *
fm_err_msg(int err)
{
	return msgs[norm(err)];
}

int
fm_err_from_errno(int errnum)
{
	switch (errnum) {
	case 0:
		return FM_OK;
	case ENOMEM:
		return -FM_E_NOMEM;
	case ENOSPC:
	case EDQUOT:
		return -FM_E_NOSPC;
	case ENOENT:
		return -FM_E_NOT_FOUND;
	case EEXIST:
		return -FM_E_EXISTS;
	case EINVAL:
		return -FM_E_INVALID;
	case EFBIG:
		return -FM_E_TOO_LARGE;
	case EROFS:
	case EACCES:
	case EPERM:
		return -FM_E_NOT_WRITABLE;
	default:
		return -FM_E_IO;
	}
}
