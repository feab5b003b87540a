/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of every commit log record.
 */
#ifndef FM_BASE_CRC32C_H
#define FM_BASE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend crc (0 to start) over len bytes. crc32c("123456789") == 0xE3069283. */
uint32_t fm_crc32c(uint32_t crc, const void *data, size_t len);

#endif
