/* queue_store.c - the backend-independent half of the queue store:
 * envelopes, their records (encode, strict decode), argument checks, the
 * staging counters and the scans built on the backends' byte-level ops.
 *
 * Record layout (version 2; queue_store.md has the full description):
 *
 *   0   'Y' 'Q'          magic
 *   2   version          2 (1 is still read: it lacks "warned")
 *   3   flags            bit 0: belongs in the due index; others 0
 *   4   index key        8 bytes big-endian: next attempt (0 if not indexed)
 *   12  ipc frame        libutil/ipc.h: 4-byte length, then named fields
 *
 * The fixed header lets the Berkeley DB secondary-index callback find the
 * key without decoding; the decoder recomputes it from the fields and
 * refuses a record whose header disagrees. The header layout is frozen:
 * a later version may change everything after it, never the header.
 */
#include "config.h"
#define QUEUE_STORE_BACKEND 1
#include "queue_store.h"
#include "../libutil/buf.h"
#include "../libutil/ipc.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/sanitize.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_MAGIC0 'Y'
#define RECORD_MAGIC1 'Q'
#define RECORD_VERSION 2       /* written */
#define RECORD_VERSION_OLDEST 1 /* still read */
#define RECORD_FLAG_INDEXED 0x01u
#define RECORD_HEADER_LEN 12
#define FRAME_HEADER_LEN 4

int queue_store_error(char **error_r, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	*error_r = buf_steal(&b);
	return -1;
}

/* ---- envelopes -------------------------------------------------------- */

static const char *str_or_empty(const char *s)
{
	return s != NULL ? s : "";
}

void queue_envelope_free(struct queue_envelope *e)
{
	if (e == NULL)
		return;
	free(e->sender);
	free(e->envid);
	free(e->ret);
	free(e->client);
	for (size_t i = 0; i < e->rcpt_count && e->rcpts != NULL; i++) {
		free(e->rcpts[i].address);
		free(e->rcpts[i].orcpt);
		free(e->rcpts[i].rcpt_to);
		free(e->rcpts[i].last_status);
		free(e->rcpts[i].last_response);
	}
	free(e->rcpts);
	memset(e, 0, sizeof *e);
}

void queue_envelope_list_free(struct queue_envelope **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		queue_envelope_free(&(*list)[i]);
	free(*list);
	*list = NULL;
}

void queue_envelope_copy(struct queue_envelope *dst, const struct queue_envelope *src)
{
	memset(dst, 0, sizeof *dst);
	memcpy(dst->id, src->id, sizeof dst->id);
	dst->id[QUEUE_ID_LEN] = '\0';
	dst->arrival = src->arrival;
	dst->sender = xstrdup(str_or_empty(src->sender));
	dst->size = src->size;
	dst->envid = xstrdup(str_or_empty(src->envid));
	dst->ret = xstrdup(str_or_empty(src->ret));
	dst->client = xstrdup(str_or_empty(src->client));
	dst->held = src->held;
	dst->warned = src->warned;
	dst->rcpts = xcalloc(src->rcpt_count, sizeof *dst->rcpts);
	dst->rcpt_count = src->rcpt_count;
	for (size_t i = 0; i < src->rcpt_count; i++) {
		const struct queue_rcpt *s = &src->rcpts[i];
		struct queue_rcpt *d = &dst->rcpts[i];

		*d = *s;
		d->address = xstrdup(str_or_empty(s->address));
		d->orcpt = xstrdup(str_or_empty(s->orcpt));
		d->rcpt_to = xstrdup(str_or_empty(s->rcpt_to));
		d->last_status = xstrdup(str_or_empty(s->last_status));
		d->last_response = xstrdup(str_or_empty(s->last_response));
	}
}

long long queue_envelope_next_try(const struct queue_envelope *e)
{
	long long next = -1;

	for (size_t i = 0; i < e->rcpt_count; i++) {
		const struct queue_rcpt *r = &e->rcpts[i];

		if (r->state != QUEUE_RCPT_PENDING && r->state != QUEUE_RCPT_DEFERRED)
			continue;
		if (next < 0 || r->next_try < next)
			next = r->next_try;
	}
	return next;
}

const char *queue_rcpt_state_name(enum queue_rcpt_state state)
{
	switch (state) {
	case QUEUE_RCPT_PENDING:
		return "pending";
	case QUEUE_RCPT_DEFERRED:
		return "deferred";
	case QUEUE_RCPT_DELIVERED:
		return "delivered";
	case QUEUE_RCPT_FAILED:
		return "failed";
	}
	return "invalid";
}

/* index_of - whether e belongs in the due index, and under which key. */
static bool index_of(const struct queue_envelope *e, uint64_t *key_r)
{
	long long next = queue_envelope_next_try(e);

	*key_r = 0;
	if (e->held || next < 0)
		return false;
	*key_r = (uint64_t)next;
	return true;
}

static bool valid_ret(const char *ret)
{
	return ret[0] == '\0' || strcmp(ret, "FULL") == 0 || strcmp(ret, "HDRS") == 0;
}

/* valid_digits - 1 to 3 digits at *p, which is moved past them. */
static bool valid_digits(const char **p)
{
	int n = 0;

	while (**p >= '0' && **p <= '9') {
		(*p)++;
		n++;
	}
	return n >= 1 && n <= 3;
}

/* valid_status - "" or an RFC 3463 code: class.subject.detail. */
static bool valid_status(const char *s)
{
	if (s[0] == '\0')
		return true;
	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return false;
	if (s[1] != '.')
		return false;
	s += 2;
	if (!valid_digits(&s) || *s++ != '.' || !valid_digits(&s))
		return false;
	return *s == '\0';
}

static bool text_fits(const char *s, size_t max)
{
	return strnlen(str_or_empty(s), max + 1) <= max;
}

static int rcpt_check(const struct queue_rcpt *r, const char **error_r)
{
	if (r->address == NULL || r->address[0] == '\0') {
		*error_r = "recipient address is empty";
		return -1;
	}
	if (!text_fits(r->address, QUEUE_ADDRESS_MAX)) {
		*error_r = "recipient address too long";
		return -1;
	}
	if (!text_fits(r->orcpt, QUEUE_ADDRESS_MAX)) {
		*error_r = "ORCPT too long";
		return -1;
	}
	if (!text_fits(r->rcpt_to, QUEUE_ADDRESS_MAX)) {
		*error_r = "RCPT TO address too long";
		return -1;
	}
	if (r->notify < 0) {
		*error_r = "negative notify flags";
		return -1;
	}
	if ((unsigned)r->state > QUEUE_RCPT_FAILED) {
		*error_r = "invalid recipient state";
		return -1;
	}
	if (r->attempts < 0) {
		*error_r = "negative attempt count";
		return -1;
	}
	if (r->next_try < 0) {
		*error_r = "negative next attempt time";
		return -1;
	}
	if (!text_fits(r->last_status, QUEUE_STATUS_MAX) || !valid_status(str_or_empty(r->last_status))) {
		*error_r = "last status is not an enhanced status code";
		return -1;
	}
	if (!text_fits(r->last_response, QUEUE_RESPONSE_MAX)) {
		*error_r = "last response too long";
		return -1;
	}
	return 0;
}

int queue_envelope_check(const struct queue_envelope *e, const char **error_r)
{
	if (!queue_id_valid(e->id)) {
		*error_r = "invalid queue ID";
		return -1;
	}
	if (e->arrival < 0) {
		*error_r = "negative arrival time";
		return -1;
	}
	if (e->size < 0) {
		*error_r = "negative size";
		return -1;
	}
	if (!text_fits(e->sender, QUEUE_ADDRESS_MAX)) {
		*error_r = "sender too long";
		return -1;
	}
	if (!text_fits(e->envid, QUEUE_ENVID_MAX)) {
		*error_r = "ENVID too long";
		return -1;
	}
	if (!valid_ret(str_or_empty(e->ret))) {
		*error_r = "RET is not FULL, HDRS or empty";
		return -1;
	}
	if (!text_fits(e->client, QUEUE_CLIENT_MAX)) {
		*error_r = "client description too long";
		return -1;
	}
	if (e->rcpt_count > QUEUE_RCPT_MAX) {
		*error_r = "too many recipients";
		return -1;
	}
	if (e->rcpt_count > 0 && e->rcpts == NULL) {
		*error_r = "recipient count without recipients";
		return -1;
	}
	for (size_t i = 0; i < e->rcpt_count; i++)
		if (rcpt_check(&e->rcpts[i], error_r) < 0)
			return -1;
	return 0;
}

/* ---- records ---------------------------------------------------------- */

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void encode_rcpt(struct buf *out, const struct queue_rcpt *r)
{
	ipc_put_str(out, "address", r->address);
	ipc_put_str(out, "orcpt", str_or_empty(r->orcpt));
	ipc_put_str(out, "rcpt_to", str_or_empty(r->rcpt_to));
	ipc_put_int(out, "notify", r->notify);
	ipc_put_int(out, "state", (int64_t)r->state);
	ipc_put_int(out, "attempts", r->attempts);
	ipc_put_int(out, "next_try", r->next_try);
	ipc_put_str(out, "last_status", str_or_empty(r->last_status));
	ipc_put_str(out, "last_response", str_or_empty(r->last_response));
}

int queue_record_encode(const struct queue_envelope *e, struct buf *out, char **error_r)
{
	struct buf rcpts = BUF_INIT, frame = BUF_INIT, one = BUF_INIT;
	uint8_t header[RECORD_HEADER_LEN];
	const char *reason;
	uint64_t key;
	bool indexed;

	if (queue_envelope_check(e, &reason) < 0)
		return queue_store_error(error_r, "envelope %s: %s", queue_id_valid(e->id) ? e->id : "(bad ID)",
					 reason);
	/* Recipients: one ipc frame each, concatenated into one bytes field,
	 * so that no message nears the decoder's per-frame field limit. */
	for (size_t i = 0; i < e->rcpt_count; i++) {
		ipc_begin(&one);
		encode_rcpt(&one, &e->rcpts[i]);
		ipc_end(&one);
		buf_append(&rcpts, one.data, one.len);
	}
	buf_free(&one);

	ipc_begin(&frame);
	ipc_put_str(&frame, "id", e->id);
	ipc_put_int(&frame, "arrival", e->arrival);
	ipc_put_str(&frame, "sender", str_or_empty(e->sender));
	ipc_put_int(&frame, "size", e->size);
	ipc_put_str(&frame, "envid", str_or_empty(e->envid));
	ipc_put_str(&frame, "ret", str_or_empty(e->ret));
	ipc_put_str(&frame, "client", str_or_empty(e->client));
	ipc_put_int(&frame, "held", e->held ? 1 : 0);
	ipc_put_int(&frame, "warned", e->warned ? 1 : 0);
	ipc_put_int(&frame, "rcpt_count", (int64_t)e->rcpt_count);
	ipc_put_bytes(&frame, "rcpts", rcpts.data != NULL ? rcpts.data : (const uint8_t *)"", rcpts.len);
	ipc_end(&frame);
	buf_free(&rcpts);

	if (frame.len > QUEUE_RECORD_MAX - RECORD_HEADER_LEN) {
		buf_free(&frame);
		return queue_store_error(error_r, "envelope %s: record too large", e->id);
	}
	indexed = index_of(e, &key);
	header[0] = RECORD_MAGIC0;
	header[1] = RECORD_MAGIC1;
	header[2] = RECORD_VERSION;
	header[3] = indexed ? RECORD_FLAG_INDEXED : 0;
	put_u64(header + QUEUE_RECORD_INDEX_KEY_OFFSET, key);
	buf_append(out, header, sizeof header);
	buf_append(out, frame.data, frame.len);
	buf_free(&frame);
	return 0;
}

bool queue_record_index_key(const uint8_t *rec, size_t len, uint64_t *key_r)
{
	/* Any version: the header is the same in all of them, so that code
	 * of one version computes the index key of another's record exactly
	 * as its writer did (a delete must remove the index entry the put
	 * made), even when it cannot decode the rest. */
	*key_r = 0;
	if (len < RECORD_HEADER_LEN || rec[0] != RECORD_MAGIC0 || rec[1] != RECORD_MAGIC1 ||
	    (rec[3] & RECORD_FLAG_INDEXED) == 0)
		return false;
	*key_r = get_u64(rec + QUEUE_RECORD_INDEX_KEY_OFFSET);
	return true;
}

/* frame_payload - the payload of the ipc frame at the start of p[0..len):
 * its bounds in *payload_r and *payload_len_r, the whole frame's length in
 * *frame_len_r. -1 if the frame is cut short. */
static int frame_payload(const uint8_t *p, size_t len, const uint8_t **payload_r, size_t *payload_len_r,
			 size_t *frame_len_r)
{
	uint32_t n;

	if (len < FRAME_HEADER_LEN)
		return -1;
	n = get_u32(p);
	if (len - FRAME_HEADER_LEN < n)
		return -1;
	*payload_r = p + FRAME_HEADER_LEN;
	*payload_len_r = n;
	*frame_len_r = (size_t)n + FRAME_HEADER_LEN;
	return 0;
}

static int decode_rcpt(const uint8_t *payload, size_t len, struct queue_rcpt *r, const char **error_r)
{
	struct ipc_msg msg;
	const char *address = NULL, *orcpt = NULL, *rcpt_to = "", *status = NULL, *response = NULL;
	int64_t notify = 0, state = 0, attempts = 0, next_try = 0;
	const struct ipc_spec spec[] = {
		{ .name = "address", .type = IPC_STR, .required = true, .max_len = QUEUE_ADDRESS_MAX,
		  .str_r = &address },
		{ .name = "orcpt", .type = IPC_STR, .required = true, .max_len = QUEUE_ADDRESS_MAX, .str_r = &orcpt },
		/* optional: records written before it existed have none */
		{ .name = "rcpt_to", .type = IPC_STR, .max_len = QUEUE_ADDRESS_MAX, .str_r = &rcpt_to },
		{ .name = "notify", .type = IPC_INT, .required = true, .min = 0, .max = INT_MAX, .int_r = &notify },
		{ .name = "state", .type = IPC_INT, .required = true, .min = QUEUE_RCPT_PENDING,
		  .max = QUEUE_RCPT_FAILED, .int_r = &state },
		{ .name = "attempts", .type = IPC_INT, .required = true, .min = 0, .max = INT_MAX,
		  .int_r = &attempts },
		{ .name = "next_try", .type = IPC_INT, .required = true, .min = 0, .max = INT64_MAX,
		  .int_r = &next_try },
		{ .name = "last_status", .type = IPC_STR, .required = true, .max_len = QUEUE_STATUS_MAX,
		  .str_r = &status },
		{ .name = "last_response", .type = IPC_STR, .required = true, .max_len = QUEUE_RESPONSE_MAX,
		  .str_r = &response },
	};

	if (ipc_decode(payload, len, &msg, error_r) < 0)
		return -1;
	if (ipc_scan(&msg, spec, sizeof spec / sizeof spec[0], IPC_STRICT, error_r) < 0)
		goto fail;
	if (address[0] == '\0') {
		*error_r = "recipient address is empty";
		goto fail;
	}
	if (!valid_status(status)) {
		*error_r = "last status is not an enhanced status code";
		goto fail;
	}
	r->address = xstrdup(address);
	r->orcpt = xstrdup(orcpt);
	r->rcpt_to = xstrdup(rcpt_to);
	r->notify = (int)notify;
	r->state = (enum queue_rcpt_state)state;
	r->attempts = (int)attempts;
	r->next_try = next_try;
	r->last_status = xstrdup(status);
	r->last_response = xstrdup(response);
	ipc_msg_free(&msg);
	return 0;
fail:
	ipc_msg_free(&msg);
	return -1;
}

static int decode_rcpts(const uint8_t *p, size_t len, int64_t count, struct queue_envelope *e,
			const char **error_r)
{
	e->rcpts = xcalloc((size_t)count, sizeof *e->rcpts);
	while (len > 0) {
		const uint8_t *payload;
		size_t payload_len, frame_len;

		if ((int64_t)e->rcpt_count == count) {
			*error_r = "more recipients than rcpt_count";
			return -1;
		}
		if (frame_payload(p, len, &payload, &payload_len, &frame_len) < 0) {
			*error_r = "truncated recipient";
			return -1;
		}
		/* counted before decoding: queue_envelope_free frees a
		 * half-filled slot as well (its pointers are NULL) */
		e->rcpt_count++;
		if (decode_rcpt(payload, payload_len, &e->rcpts[e->rcpt_count - 1], error_r) < 0)
			return -1;
		p += frame_len;
		len -= frame_len;
	}
	if ((int64_t)e->rcpt_count != count) {
		*error_r = "fewer recipients than rcpt_count";
		return -1;
	}
	return 0;
}

static int decode_fields(const uint8_t *payload, size_t len, unsigned version, struct queue_envelope *e,
			 const char **error_r)
{
	struct ipc_msg msg;
	const char *id = NULL, *sender = NULL, *envid = NULL, *ret = NULL, *client = NULL;
	const uint8_t *rcpts = NULL;
	size_t rcpts_len = 0;
	int64_t arrival = 0, size = 0, held = 0, warned = 0, rcpt_count = 0;
	const struct ipc_spec spec[] = {
		{ .name = "id", .type = IPC_STR, .required = true, .max_len = QUEUE_ID_LEN, .str_r = &id },
		{ .name = "arrival", .type = IPC_INT, .required = true, .min = 0, .max = INT64_MAX,
		  .int_r = &arrival },
		{ .name = "sender", .type = IPC_STR, .required = true, .max_len = QUEUE_ADDRESS_MAX,
		  .str_r = &sender },
		{ .name = "size", .type = IPC_INT, .required = true, .min = 0, .max = INT64_MAX, .int_r = &size },
		{ .name = "envid", .type = IPC_STR, .required = true, .max_len = QUEUE_ENVID_MAX, .str_r = &envid },
		{ .name = "ret", .type = IPC_STR, .required = true, .max_len = 4, .str_r = &ret },
		{ .name = "client", .type = IPC_STR, .required = true, .max_len = QUEUE_CLIENT_MAX,
		  .str_r = &client },
		{ .name = "held", .type = IPC_INT, .required = true, .min = 0, .max = 1, .int_r = &held },
		{ .name = "rcpt_count", .type = IPC_INT, .required = true, .min = 0, .max = QUEUE_RCPT_MAX,
		  .int_r = &rcpt_count },
		{ .name = "rcpts", .type = IPC_BYTES, .required = true, .bytes_r = &rcpts, .len_r = &rcpts_len },
		/* version 2 on (keep it last) */
		{ .name = "warned", .type = IPC_INT, .required = true, .min = 0, .max = 1, .int_r = &warned },
	};
	size_t nspec = sizeof spec / sizeof spec[0] - (version < 2 ? 1 : 0);
	int rc = -1;

	if (ipc_decode(payload, len, &msg, error_r) < 0)
		return -1;
	if (ipc_scan(&msg, spec, nspec, IPC_STRICT, error_r) < 0)
		goto out;
	if (!queue_id_valid(id)) {
		*error_r = "invalid queue ID";
		goto out;
	}
	if (!valid_ret(ret)) {
		*error_r = "RET is not FULL, HDRS or empty";
		goto out;
	}
	memcpy(e->id, id, QUEUE_ID_SIZE);
	e->arrival = arrival;
	e->sender = xstrdup(sender);
	e->size = size;
	e->envid = xstrdup(envid);
	e->ret = xstrdup(ret);
	e->client = xstrdup(client);
	e->held = held != 0;
	e->warned = warned != 0;
	rc = decode_rcpts(rcpts, rcpts_len, rcpt_count, e, error_r);
out:
	ipc_msg_free(&msg);
	return rc;
}

int queue_record_decode(const uint8_t *rec, size_t len, struct queue_envelope *e_r, char **error_r)
{
	const uint8_t *payload;
	size_t payload_len, frame_len;
	const char *reason = NULL;
	uint64_t key, want_key;
	bool indexed;

	memset(e_r, 0, sizeof *e_r);
	if (len < RECORD_HEADER_LEN || rec[0] != RECORD_MAGIC0 || rec[1] != RECORD_MAGIC1)
		return queue_store_error(error_r, "not a queue record");
	if (rec[2] < RECORD_VERSION_OLDEST || rec[2] > RECORD_VERSION)
		return queue_store_error(error_r, "unsupported queue record version %u", rec[2]);
	if (len > QUEUE_RECORD_MAX)
		return queue_store_error(error_r, "queue record too large");
	if ((rec[3] & ~RECORD_FLAG_INDEXED) != 0)
		return queue_store_error(error_r, "queue record has unknown flags");
	if (frame_payload(rec + RECORD_HEADER_LEN, len - RECORD_HEADER_LEN, &payload, &payload_len, &frame_len) < 0 ||
	    frame_len != len - RECORD_HEADER_LEN)
		return queue_store_error(error_r, "queue record has a bad length");
	if (decode_fields(payload, payload_len, rec[2], e_r, &reason) < 0) {
		queue_envelope_free(e_r);
		return queue_store_error(error_r, "corrupt queue record: %s", reason);
	}
	indexed = (rec[3] & RECORD_FLAG_INDEXED) != 0;
	key = get_u64(rec + QUEUE_RECORD_INDEX_KEY_OFFSET);
	if (index_of(e_r, &want_key) != indexed || key != want_key) {
		queue_envelope_free(e_r);
		return queue_store_error(error_r, "corrupt queue record: index key disagrees with the recipients");
	}
	return 0;
}

/* ---- the store -------------------------------------------------------- */

void queue_store_init(struct queue_store *q, const struct queue_store_ops *ops)
{
	memset(q, 0, sizeof *q);
	q->ops = ops;
}

void queue_store_set_failed(struct queue_store *q, const char *reason)
{
	if (q->failed)
		return;
	q->failed = true;
	q->failed_reason = xstrdup(reason);
	log_warn("queue store: unusable until restart: %s", reason);
}

bool queue_store_failed(const struct queue_store *q)
{
	return q->failed;
}

const char *queue_store_backend(const struct queue_store *q)
{
	return q->ops->name;
}

size_t queue_store_staged(const struct queue_store *q)
{
	return q->staged;
}

/* usable - refuse calls on a failed store and re-entrant calls. */
static int usable(struct queue_store *q, char **error_r)
{
	if (q->busy)
		return queue_store_error(error_r, "queue store called from inside a scan callback");
	if (q->failed)
		return queue_store_error(error_r, "queue store needs recovery, restart the queue manager: %s",
					 q->failed_reason);
	return 0;
}

void queue_store_close(struct queue_store **store)
{
	struct queue_store *q = *store;

	if (q == NULL)
		return;
	*store = NULL;
	if (q->busy)
		log_panic("queue_store_close: called from inside a scan callback");
	free(q->failed_reason);
	q->failed_reason = NULL;
	q->ops->close(q);
}

int queue_store_put(struct queue_store *q, const struct queue_envelope *e, char **error_r)
{
	struct buf rec = BUF_INIT;
	int rc;

	if (usable(q, error_r) < 0)
		return -1;
	if (queue_record_encode(e, &rec, error_r) < 0)
		return -1;
	rc = q->ops->put(q, e->id, rec.data, rec.len, error_r);
	buf_free(&rec);
	if (rc < 0)
		return -1;
	q->staged++;
	q->stats.puts++;
	return 0;
}

int queue_store_delete(struct queue_store *q, const char *id, char **error_r)
{
	if (usable(q, error_r) < 0)
		return -1;
	if (!queue_id_valid(id))
		return queue_store_error(error_r, "queue store: delete: invalid queue ID");
	if (q->ops->del(q, id, error_r) < 0)
		return -1;
	q->staged++;
	q->stats.deletes++;
	return 0;
}

int queue_store_commit(struct queue_store *q, char **error_r)
{
	if (usable(q, error_r) < 0)
		return -1;
	if (q->staged == 0)
		return 0;
	if (q->ops->commit(q, error_r) < 0)
		return -1;
	q->staged = 0;
	q->stats.commits++;
	return 0;
}

int queue_store_get(struct queue_store *q, const char *id, struct queue_envelope *e_r, char **error_r)
{
	struct buf rec = BUF_INIT;
	char *reason = NULL;
	int rc;

	memset(e_r, 0, sizeof *e_r);
	if (usable(q, error_r) < 0)
		return -1;
	if (!queue_id_valid(id))
		return queue_store_error(error_r, "queue store: get: invalid queue ID");
	rc = q->ops->get(q, id, &rec, error_r);
	if (rc <= 0) {
		buf_free(&rec);
		return rc;
	}
	if (queue_record_decode(rec.data, rec.len, e_r, &reason) < 0) {
		buf_free(&rec);
		queue_store_error(error_r, "queue store: %s: %s", id, reason);
		free(reason);
		return -1;
	}
	buf_free(&rec);
	if (strcmp(e_r->id, id) != 0) {
		queue_envelope_free(e_r);
		return queue_store_error(error_r, "queue store: %s: record holds another ID", id);
	}
	return 1;
}

/* A scan's consumer: gets each decoded envelope and may take it over
 * (leaving *e zeroed). Non-zero stops the scan. */
typedef int scan_consumer_fn(struct queue_envelope *e, void *arg);

struct scan_ctx {
	scan_consumer_fn *fn;
	void *arg;
	queue_store_skip_fn *skip; /* may pass a record over before decoding */
	void *skip_arg;
};

/* scan_one - decode one record for a scan and hand it to the caller's fn;
 * a corrupt record is logged and skipped, so that one bad record can
 * neither stop deliveries nor hide the rest of the queue. */
static int scan_one(const char *id, size_t id_len, const uint8_t *rec, size_t len, void *arg, char **error_r)
{
	struct scan_ctx *ctx = arg;
	struct queue_envelope e;
	char *reason = NULL;
	int rc;

	(void)error_r;
	if (!queue_id_valid_n(id, id_len)) {
		char safe[SANITIZE_MAX];

		log_warn("queue store: record under invalid key \"%s\" skipped",
			 sanitize(safe, sizeof safe, id, id_len));
		return 0;
	}
	if (ctx->skip != NULL) {
		char idz[QUEUE_ID_SIZE];

		memcpy(idz, id, id_len);
		idz[id_len] = '\0';
		if (ctx->skip(idz, ctx->skip_arg))
			return 0;
	}
	if (queue_record_decode(rec, len, &e, &reason) < 0) {
		log_warn("queue store: record %.*s skipped: %s", (int)id_len, id, reason);
		free(reason);
		return 0;
	}
	if (memcmp(e.id, id, QUEUE_ID_LEN) != 0) {
		log_warn("queue store: record %.*s skipped: it holds ID %s", (int)id_len, id, e.id);
		queue_envelope_free(&e);
		return 0;
	}
	rc = ctx->fn(&e, ctx->arg);
	queue_envelope_free(&e);
	return rc != 0 ? 1 : 0;
}

static int scan(struct queue_store *q, enum queue_scan_order order, long long now, queue_store_skip_fn *skip,
		void *skip_arg, scan_consumer_fn *fn, void *arg, char **error_r)
{
	struct scan_ctx ctx = { fn, arg, skip, skip_arg };
	int rc;

	if (usable(q, error_r) < 0)
		return -1;
	if (order == QUEUE_SCAN_BY_DUE && now < 0)
		return 0;
	q->busy = true;
	rc = q->ops->scan(q, order, (uint64_t)now, scan_one, &ctx, error_r);
	q->busy = false;
	return rc < 0 ? -1 : 0;
}

struct caller_fn {
	queue_store_foreach_fn *fn;
	void *arg;
};

/* call_caller - a scan consumer that shows the envelope to the caller's fn. */
static int call_caller(struct queue_envelope *e, void *arg)
{
	struct caller_fn *c = arg;

	return c->fn(e, c->arg);
}

int queue_store_foreach(struct queue_store *q, queue_store_foreach_fn *fn, void *arg, char **error_r)
{
	struct caller_fn c = { fn, arg };

	return scan(q, QUEUE_SCAN_BY_ID, 0, NULL, NULL, call_caller, &c, error_r);
}

int queue_store_foreach_due(struct queue_store *q, long long now, queue_store_skip_fn *skip, void *skip_arg,
			    queue_store_foreach_fn *fn, void *arg, char **error_r)
{
	struct caller_fn c = { fn, arg };

	return scan(q, QUEUE_SCAN_BY_DUE, now, skip, skip_arg, call_caller, &c, error_r);
}

struct due_ctx {
	struct queue_envelope *list;
	size_t count, cap, max;
};

/* due_collect - take the envelope over into the list. */
static int due_collect(struct queue_envelope *e, void *arg)
{
	struct due_ctx *ctx = arg;

	if (ctx->count == ctx->cap) {
		ctx->cap = ctx->cap == 0 ? 16 : size_mul(ctx->cap, 2);
		if (ctx->cap > ctx->max)
			ctx->cap = ctx->max;
		ctx->list = xreallocarray(ctx->list, ctx->cap, sizeof *ctx->list);
	}
	ctx->list[ctx->count++] = *e;
	memset(e, 0, sizeof *e);
	return ctx->count == ctx->max ? 1 : 0;
}

int queue_store_due(struct queue_store *q, long long now, size_t max, struct queue_envelope **list_r,
		    size_t *count_r, char **error_r)
{
	struct due_ctx ctx = { NULL, 0, 0, max };

	*list_r = NULL;
	*count_r = 0;
	if (usable(q, error_r) < 0)
		return -1;
	if (max == 0)
		return 0;
	if (scan(q, QUEUE_SCAN_BY_DUE, now, NULL, NULL, due_collect, &ctx, error_r) < 0) {
		queue_envelope_list_free(&ctx.list, ctx.count);
		return -1;
	}
	*list_r = ctx.list;
	*count_r = ctx.count;
	return 0;
}

int queue_store_checkpoint(struct queue_store *q, char **error_r)
{
	if (usable(q, error_r) < 0)
		return -1;
	if (q->ops->checkpoint(q, error_r) < 0)
		return -1;
	q->stats.checkpoints++;
	return 0;
}

int queue_store_stats(struct queue_store *q, struct queue_store_stats *st_r, char **error_r)
{
	*st_r = q->stats;
	st_r->staged = q->staged;
	if (usable(q, error_r) < 0)
		return -1;
	return q->ops->stats(q, st_r, error_r);
}
