/*
 * os.c - the store's OS seam (see os.h). Kept in its own object file so
 * that link-time wrapping can replace these calls in fault-injection tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "store/os.h"

ssize_t
fm_os_pwrite(int fd, const void *buf, size_t count, off_t offset)
{
	return pwrite(fd, buf, count, offset);
}

int
fm_os_fdatasync(int fd)
{
	return fdatasync(fd);
}

int
fm_os_fallocate(int fd, off_t offset, off_t len)
{
	int rc = posix_fallocate(fd, offset, len);

	if (rc != 0) {
		errno = rc;
		return -1;
	}
	return 0;
}

int
fm_os_ftruncate(int fd, off_t len)
{
	return ftruncate(fd, len);
}

int
fm_os_statvfs(const char *path, struct statvfs *st)
{
	return statvfs(path, st);
}
