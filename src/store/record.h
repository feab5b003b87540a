/*
 * record.h - the commit log record: its byte layout, encoder and decoder.
 *
 * One struct, fm_record, describes a message both on the way in (the store
 * encodes it) and on the way out (decoded views point into a caller-owned
 * buffer holding the record bytes). All integers are little-endian.
 *
 *  offset size field
 *  ------ ---- -----------------------------------------------------------
 *       0    4 total_size   whole record in bytes, header included
 *       4    4 magic        FM_REC_MAGIC, or FM_REC_BLANK_MAGIC for the
 *                           filler that pads a segment's unused end
 *       8    4 crc          CRC-32C of bytes [12, total_size)
 *      12    4 flags        FM_REC_F_*
 *      16    8 log_offset   where this record starts in the commit log
 *      24    8 queue_offset position in its consume queue
 *      32    4 queue_id
 *      36    4 reconsume_times
 *      40    8 born_ts      epoch ms, set by the producer side
 *      48    8 store_ts     epoch ms, set by the store at append
 *      56    8 deliver_at   epoch ms; 0 = deliver at once
 *      64    2 topic_len
 *      66    2 tag_len
 *      68    4 keys_len
 *      72    4 props_len
 *      76    4 body_len
 *      80      topic, tag, keys, props, body (in this order, unpadded)
 *
 * keys  = each key followed by a NUL ("k1\0k2\0").
 * props = name NUL value NUL pairs ("region\0eu\0").
 * A blank record has only the first 12 bytes meaningful (crc = 0); its
 * total_size runs to the end of the segment.
 */
#ifndef FM_STORE_RECORD_H
#define FM_STORE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define FM_REC_MAGIC 0x464d5131u /* "1QMF" */
#define FM_REC_BLANK_MAGIC 0x464d5142u /* "BQMF" */
#define FM_REC_HEADER_SIZE 80u
#define FM_REC_MAX_TOPIC 127u
#define FM_REC_MAX_TAG 255u

/* Record flags. */
#define FM_REC_F_BATCH_MORE \
	0x1u /* more records of the same atomic batch follow */

struct fm_record {
	uint32_t size; /* total_size; set by encode/decode */
	uint32_t flags; /* FM_REC_F_* */
	uint64_t log_offset; /* set by the commit log at append */
	uint64_t queue_offset; /* set by the store at append */
	uint32_t queue_id;
	uint32_t reconsume_times;
	int64_t born_ts; /* epoch ms */
	int64_t store_ts; /* epoch ms, set by the store at append */
	int64_t deliver_at; /* epoch ms, 0 = at once */
	const char *topic; /* borrowed, topic_len bytes, not NUL-terminated */
	uint16_t topic_len;
	const char *tag; /* borrowed, may be NULL when tag_len == 0 */
	uint16_t tag_len;
	const char *keys; /* borrowed, "k1\0k2\0" */
	uint32_t keys_len;
	const char *props; /* borrowed, "name\0value\0..." */
	uint32_t props_len;
	const void *body; /* borrowed */
	uint32_t body_len;
};

/* Bytes the encoded record will take. */
size_t fm_record_size(const struct fm_record *r);
/* Encode r into dst (fm_record_size(r) bytes), filling the CRC. Sets
 * r->size. Returns 0, or -FM_E_INVALID / -FM_E_TOO_LARGE for fields over
 * their limits. */
int fm_record_encode(struct fm_record *r, unsigned char *dst);
/* Encode a blank filler of size bytes (size >= 12). */
void fm_record_encode_blank(unsigned char *dst, uint32_t size);
/* Peek at the first 12 bytes: magic and total size. */
void fm_record_peek(const unsigned char *src, uint32_t *size, uint32_t *magic);
/* Decode len bytes at src (exactly one record) into r, whose pointers then
 * point into src. Verifies magic, lengths and CRC: -FM_E_CORRUPT if any is
 * wrong. */
int fm_record_decode(const unsigned char *src, size_t len, struct fm_record *r);
/* 64-bit hash of a tag, as kept in consume queue entries; 0 for no tag. */
uint64_t fm_tag_hash(const char *tag, size_t len);

#endif
