/* queue_id.c - queue IDs: time, pid and counter in fixed-width hex. */
#include "config.h"
#include "queue_id.h"
#include "../libutil/log.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

static const char hex_digits[] = "0123456789ABCDEF";

/* put_hex - the low 4*digits bits of v as digits uppercase hex digits. */
static char *put_hex(char *p, unsigned long long v, int digits)
{
	for (int i = digits - 1; i >= 0; i--) {
		p[i] = hex_digits[v & 0xf];
		v >>= 4;
	}
	return p + digits;
}

void queue_id_make(char id_r[QUEUE_ID_SIZE], long long usec, unsigned long pid, unsigned counter)
{
	char *p = id_r;

	p = put_hex(p, (unsigned long long)usec, QUEUE_ID_TIME_DIGITS);
	p = put_hex(p, pid, QUEUE_ID_PID_DIGITS);
	p = put_hex(p, counter, QUEUE_ID_COUNTER_DIGITS);
	*p = '\0';
}

void queue_id_new(char id_r[QUEUE_ID_SIZE])
{
	/* Per process; a forked child inherits them, which is fine: its pid
	 * differs from its parent's. */
	static long long last_usec;
	static unsigned counter;
	struct timespec ts;
	long long usec;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		log_fatal("queue_id_new: clock_gettime: %m");
	usec = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	/* Never reuse or go back, so that IDs from one process are unique
	 * and ordered even when two calls share a microsecond or the clock
	 * is stepped back; we run ahead of the clock until it catches up. */
	if (usec <= last_usec)
		usec = last_usec + 1;
	last_usec = usec;
	queue_id_make(id_r, usec, (unsigned long)getpid(), counter++);
}

bool queue_id_valid_n(const char *s, size_t len)
{
	if (s == NULL || len != QUEUE_ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
			return false;
	}
	return true;
}

bool queue_id_valid(const char *s)
{
	return s != NULL && queue_id_valid_n(s, strnlen(s, QUEUE_ID_LEN + 1));
}

long long queue_id_usec(const char *id)
{
	long long usec = 0;

	if (!queue_id_valid(id))
		return -1;
	for (int i = 0; i < QUEUE_ID_TIME_DIGITS; i++) {
		char c = id[i];

		usec = usec << 4 | (c <= '9' ? c - '0' : c - 'A' + 10);
	}
	return usec;
}
