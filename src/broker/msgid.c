/*
 * msgid.c - encode and decode msgIds (see msgid.h for the layout).
 * Owns no state. Decoding never trusts its input: length and every
 * character are checked before any byte is used.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "broker/msgid.h"

static const char hexdig[] = "0123456789ABCDEF";

static void
put_be(unsigned char *p, uint64_t v, int nbytes)
{
	for (int i = nbytes - 1; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

static uint64_t
get_be(const unsigned char *p, int nbytes)
{
	uint64_t v = 0;

	for (int i = 0; i < nbytes; i++)
		v = (v << 8) | p[i];
	return v;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

void
fm_msgid_encode(
    const struct fm_msgid_addr *addr, uint64_t log_offset, char *out)
{
	unsigned char raw[FM_MSGID_HEX / 2];

	put_be(raw, addr->ip, 4);
	put_be(raw + 4, addr->port, 4);
	put_be(raw + 8, log_offset, 8);
	for (size_t i = 0; i < sizeof(raw); i++) {
		out[2 * i] = hexdig[raw[i] >> 4];
		out[2 * i + 1] = hexdig[raw[i] & 0xf];
	}
	out[FM_MSGID_HEX] = '\0';
}

int
fm_msgid_decode(const char *s, struct fm_msgid_addr *addr, uint64_t *log_offset)
{
	unsigned char raw[FM_MSGID_HEX / 2];

	if (s == NULL || strnlen(s, FM_MSGID_HEX + 1) != FM_MSGID_HEX)
		return -FM_E_INVALID;
	for (size_t i = 0; i < sizeof(raw); i++) {
		int hi = hexval(s[2 * i]);
		int lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -FM_E_INVALID;
		raw[i] = (unsigned char)(hi << 4 | lo);
	}
	addr->ip = (uint32_t)get_be(raw, 4);
	addr->port = (uint32_t)get_be(raw + 4, 4);
	*log_offset = get_be(raw + 8, 8);
	return 0;
}

int
fm_msgid_parse_ip(const char *s, uint32_t *ip)
{
	struct in_addr in;

	if (s == NULL || inet_pton(AF_INET, s, &in) != 1)
		return -FM_E_INVALID;
	*ip = ntohl(in.s_addr);
	return 0;
}

void
fm_msgid_addr_format(const struct fm_msgid_addr *addr, char *out, size_t outlen)
{
	snprintf(out, outlen, "%u.%u.%u.%u:%u", addr->ip >> 24,
	    (addr->ip >> 16) & 0xff, (addr->ip >> 8) & 0xff, addr->ip & 0xff,
	    addr->port);
}
