/*
 * os.h - the store's seam to the operating system.
 *
 * Every system call through which the store changes or syncs files goes
 * through these functions, which live alone in os.c, so that tests can
 * replace them at link time (-Wl,--wrap=fm_os_pwrite, ...) to inject
 * short writes, ENOSPC and failing fdatasync. They return what the libc
 * call returns and leave errno set, exactly like the call they wrap.
 */
#ifndef FM_STORE_OS_H
#define FM_STORE_OS_H

#include <sys/statvfs.h>
#include <sys/types.h>

ssize_t fm_os_pwrite(int fd, const void *buf, size_t count, off_t offset);
int fm_os_fdatasync(int fd);
int fm_os_fallocate(int fd, off_t offset, off_t len);
int fm_os_ftruncate(int fd, off_t len);
int fm_os_statvfs(const char *path, struct statvfs *st);

#endif
