/*
 * msgid.h - msgIds: where a message lives, written as 32 hex characters.
 *
 * Owns the encoding only (RocketMQ's offsetMsgId idea); which broker an
 * address names and reading the message are the broker's business.
 *
 *   byte  0        4        8                16
 *         +--------+--------+----------------+
 *         | IPv4   | port   | commit log     |
 *         |        |        | offset         |
 *         +--------+--------+----------------+
 *   all big-endian, each byte as two uppercase hex digits (32 chars).
 *
 * Invariant: decode(encode(ip, port, off)) == (ip, port, off), and decode
 * accepts exactly the strings encode can produce (lowercase hex too).
 */
#ifndef FM_BROKER_MSGID_H
#define FM_BROKER_MSGID_H

#include <stddef.h>
#include <stdint.h>

#define FM_MSGID_HEX 32

/* The address part of a msgId: IPv4 in host order and the HTTP port. */
struct fm_msgid_addr {
	uint32_t ip;
	uint32_t port;
};

/* Write the msgId (FM_MSGID_HEX chars and a NUL) into out. */
void fm_msgid_encode(
    const struct fm_msgid_addr *addr, uint64_t log_offset, char *out);
/* Parse s. Returns 0, or -FM_E_INVALID when s is not 32 hex characters. */
int fm_msgid_decode(
    const char *s, struct fm_msgid_addr *addr, uint64_t *log_offset);
/* Parse a dotted IPv4 address into host order. 0 or -FM_E_INVALID. */
int fm_msgid_parse_ip(const char *s, uint32_t *ip);
/* "a.b.c.d:port" into out (at least 22 bytes). */
void fm_msgid_addr_format(
    const struct fm_msgid_addr *addr, char *out, size_t outlen);

#endif
