/*
 * record.c - encoder and decoder of commit log records (layout in record.h).
 *
 * Owns: the byte layout and its validation, and the tag hash. Does not
 * own: where records live (commitlog.c) or what their fields mean to the
 * broker.
 *
 * Invariants:
 *  1. Every integer is written and read byte by byte, little-endian, so
 *     the format does not depend on the host's byte order or alignment.
 *  2. fm_record_decode accepts a record only if its magic, every length
 *     (summed in 64 bits, so no overflow can make them agree) and its
 *     CRC-32C agree with the bytes; then every view it returns lies
 *     inside [src, src + len).
 *  3. fm_tag_hash is stable across builds and hosts (it is stored on
 *     disk in consume queue entries) and is 0 only for the empty tag.
 */
#include <stdint.h>
#include <string.h>

#include "base/crc32c.h"
#include "base/endian.h"
#include "base/err.h"
#include "store/record.h"

/*
 * Byte offsets of the header fields (the full table is in record.h):
 *
 *   0      4      8      12     16          24          32   36   40
 *   +------+------+------+------+-----------+-----------+----+----+
 *   | size | magic| crc  | flags| log_offset| queue_off | qid| rct|
 *   +------+------+------+------+-----------+-----------+----+----+
 *   40          48          56          64   66   68   72   76   80
 *   +-----------+-----------+-----------+----+----+----+----+----+
 *   | born_ts   | store_ts  | deliver_at| tpl| tgl| kyl| prl| bdl|
 *   +-----------+-----------+-----------+----+----+----+----+----+
 *   80: topic | tag | keys | props | body   (lengths above, unpadded)
 *   crc = CRC-32C of bytes [12, size)
 */
enum {
	OFF_SIZE = 0,
	OFF_MAGIC = 4,
	OFF_CRC = 8,
	OFF_FLAGS = 12,
	OFF_LOG_OFFSET = 16,
	OFF_QUEUE_OFFSET = 24,
	OFF_QUEUE_ID = 32,
	OFF_RECONSUME = 36,
	OFF_BORN_TS = 40,
	OFF_STORE_TS = 48,
	OFF_DELIVER_AT = 56,
	OFF_TOPIC_LEN = 64,
	OFF_TAG_LEN = 66,
	OFF_KEYS_LEN = 68,
	OFF_PROPS_LEN = 72,
	OFF_BODY_LEN = 76,
	CRC_FROM = 12 /* the CRC covers [CRC_FROM, total_size) */
};

size_t
fm_record_size(const struct fm_record *r)
{
	return (size_t)FM_REC_HEADER_SIZE + r->topic_len + r->tag_len +
	    r->keys_len + r->props_len + r->body_len;
}

static int
check_fields(const struct fm_record *r)
{
	if (r->topic_len > FM_REC_MAX_TOPIC || r->tag_len > FM_REC_MAX_TAG)
		return -FM_E_INVALID;
	if ((r->topic_len && !r->topic) || (r->tag_len && !r->tag) ||
	    (r->keys_len && !r->keys) || (r->props_len && !r->props) ||
	    (r->body_len && !r->body))
		return -FM_E_INVALID;
	if ((uint64_t)FM_REC_HEADER_SIZE + r->topic_len + r->tag_len +
	        r->keys_len + r->props_len + r->body_len >
	    UINT32_MAX)
		return -FM_E_TOO_LARGE;
	return 0;
}

static unsigned char *
put_bytes(unsigned char *p, const void *src, size_t len)
{
	if (len)
		memcpy(p, src, len);
	return p + len;
}

int
fm_record_encode(struct fm_record *r, unsigned char *dst)
{
	unsigned char *p;
	int rc = check_fields(r);

	if (rc != 0)
		return rc;
	r->size = (uint32_t)fm_record_size(r);
	fm_le_put32(dst + OFF_SIZE, r->size);
	fm_le_put32(dst + OFF_MAGIC, FM_REC_MAGIC);
	fm_le_put32(dst + OFF_FLAGS, r->flags);
	fm_le_put64(dst + OFF_LOG_OFFSET, r->log_offset);
	fm_le_put64(dst + OFF_QUEUE_OFFSET, r->queue_offset);
	fm_le_put32(dst + OFF_QUEUE_ID, r->queue_id);
	fm_le_put32(dst + OFF_RECONSUME, r->reconsume_times);
	fm_le_put64(dst + OFF_BORN_TS, (uint64_t)r->born_ts);
	fm_le_put64(dst + OFF_STORE_TS, (uint64_t)r->store_ts);
	fm_le_put64(dst + OFF_DELIVER_AT, (uint64_t)r->deliver_at);
	fm_le_put16(dst + OFF_TOPIC_LEN, r->topic_len);
	fm_le_put16(dst + OFF_TAG_LEN, r->tag_len);
	fm_le_put32(dst + OFF_KEYS_LEN, r->keys_len);
	fm_le_put32(dst + OFF_PROPS_LEN, r->props_len);
	fm_le_put32(dst + OFF_BODY_LEN, r->body_len);
	p = dst + FM_REC_HEADER_SIZE;
	p = put_bytes(p, r->topic, r->topic_len);
	p = put_bytes(p, r->tag, r->tag_len);
	p = put_bytes(p, r->keys, r->keys_len);
	p = put_bytes(p, r->props, r->props_len);
	put_bytes(p, r->body, r->body_len);
	fm_le_put32(
	    dst + OFF_CRC, fm_crc32c(0, dst + CRC_FROM, r->size - CRC_FROM));
	return 0;
}

void
fm_record_encode_blank(unsigned char *dst, uint32_t size)
{
	fm_le_put32(dst + OFF_SIZE, size);
	fm_le_put32(dst + OFF_MAGIC, FM_REC_BLANK_MAGIC);
	fm_le_put32(dst + OFF_CRC, 0);
}

void
fm_record_peek(const unsigned char *src, uint32_t *size, uint32_t *magic)
{
	*size = fm_le_get32(src + OFF_SIZE);
	*magic = fm_le_get32(src + OFF_MAGIC);
}

static void
decode_header(const unsigned char *src, struct fm_record *r)
{
	r->size = fm_le_get32(src + OFF_SIZE);
	r->flags = fm_le_get32(src + OFF_FLAGS);
	r->log_offset = fm_le_get64(src + OFF_LOG_OFFSET);
	r->queue_offset = fm_le_get64(src + OFF_QUEUE_OFFSET);
	r->queue_id = fm_le_get32(src + OFF_QUEUE_ID);
	r->reconsume_times = fm_le_get32(src + OFF_RECONSUME);
	r->born_ts = (int64_t)fm_le_get64(src + OFF_BORN_TS);
	r->store_ts = (int64_t)fm_le_get64(src + OFF_STORE_TS);
	r->deliver_at = (int64_t)fm_le_get64(src + OFF_DELIVER_AT);
	r->topic_len = fm_le_get16(src + OFF_TOPIC_LEN);
	r->tag_len = fm_le_get16(src + OFF_TAG_LEN);
	r->keys_len = fm_le_get32(src + OFF_KEYS_LEN);
	r->props_len = fm_le_get32(src + OFF_PROPS_LEN);
	r->body_len = fm_le_get32(src + OFF_BODY_LEN);
}

int
fm_record_decode(const unsigned char *src, size_t len, struct fm_record *r)
{
	const unsigned char *p;
	uint64_t sum;

	if (len < FM_REC_HEADER_SIZE || fm_le_get32(src + OFF_SIZE) != len ||
	    fm_le_get32(src + OFF_MAGIC) != FM_REC_MAGIC)
		return -FM_E_CORRUPT;
	decode_header(src, r);
	sum = (uint64_t)FM_REC_HEADER_SIZE + r->topic_len + r->tag_len +
	    r->keys_len + r->props_len + r->body_len;
	if (sum != len || r->topic_len > FM_REC_MAX_TOPIC ||
	    r->tag_len > FM_REC_MAX_TAG)
		return -FM_E_CORRUPT;
	if (fm_le_get32(src + OFF_CRC) !=
	    fm_crc32c(0, src + CRC_FROM, len - CRC_FROM))
		return -FM_E_CORRUPT;
	p = src + FM_REC_HEADER_SIZE;
	r->topic = (const char *)p;
	p += r->topic_len;
	r->tag = r->tag_len ? (const char *)p : NULL;
	p += r->tag_len;
	r->keys = (const char *)p;
	p += r->keys_len;
	r->props = (const char *)p;
	p += r->props_len;
	r->body = p;
	return 0;
}

/*
 * FNV-1a, 64 bits: simple, stable and good enough to pre-filter tags in
 * consume queue entries (a match is confirmed against the record's tag).
 */
uint64_t
fm_tag_hash(const char *tag, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)tag[i];
		h *= 0x100000001b3ull;
	}
	return h ? h : 1;
}
