/* queue_id.h - queue IDs: unique across processes and restarts, sorting by
 * arrival.
 *
 * An ID is QUEUE_ID_LEN characters of uppercase hexadecimal, fixed width,
 * so that plain byte order (strcmp, memcmp, a btree's default order) is
 * arrival order:
 *
 *   14 digits  microseconds since the epoch (good until the year 4253)
 *    6 digits  process id (Linux pids are below 2^22)
 *    4 digits  a per-process counter (wraps)
 *
 * e.g. "06442D90508C350030390001". Within one process the time part
 * never repeats and never goes back, even when the clock is stepped back:
 * the generator then keeps counting up from the last value it used. Two
 * processes differ in the pid part; one pid reused later differs in the
 * time part. Only [0-9A-F] appear, so an ID is safe in file names, log
 * lines and SMTP replies as it is.
 *
 * IDs that arrive over IPC or from mailctl must pass queue_id_valid()
 * before they are used in a path or a lookup.
 */
#ifndef YB_QUEUE_ID_H
#define YB_QUEUE_ID_H

#include <stdbool.h>
#include <stddef.h>

#define QUEUE_ID_TIME_DIGITS 14
#define QUEUE_ID_PID_DIGITS 6
#define QUEUE_ID_COUNTER_DIGITS 4
#define QUEUE_ID_LEN (QUEUE_ID_TIME_DIGITS + QUEUE_ID_PID_DIGITS + QUEUE_ID_COUNTER_DIGITS)
#define QUEUE_ID_SIZE (QUEUE_ID_LEN + 1) /* with the terminating NUL */

/* queue_id_new - a fresh ID for this process, written to id_r. */
void queue_id_new(char id_r[QUEUE_ID_SIZE]);

/* queue_id_make - the ID for the given parts (pure; queue_id_new uses it).
 * usec is taken modulo 16^14, pid modulo 16^6, counter modulo 16^4. */
void queue_id_make(char id_r[QUEUE_ID_SIZE], long long usec, unsigned long pid, unsigned counter);

/* queue_id_valid - whether s is exactly one well-formed ID (NUL-terminated,
 * QUEUE_ID_LEN characters of [0-9A-F]). NULL is not valid. */
bool queue_id_valid(const char *s);

/* queue_id_valid_n - the same for s[0..len), which need not be terminated. */
bool queue_id_valid_n(const char *s, size_t len);

/* queue_id_usec - the arrival time of a valid ID in microseconds since the
 * epoch; -1 if id is not valid. */
long long queue_id_usec(const char *id);

#endif
