/* smtp_dest.c - destinations of outbound mail (a recipient domain, or the
 * relay host): how many deliveries run there at once, the pause between
 * two starts, the deliveries waiting their turn in arrival order, and the
 * connections that finished a message and wait a little while
 * (smtp_connection_cache_time_limit) for the next one to the same place,
 * so a queue of mail for one domain goes down a few open connections
 * instead of one connection per message. */
#include "config.h"
#include "smtp.h"
#include "../libutil/mem.h"
#include "../libutil/service.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

long long smtp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void dest_pump(struct smtp_daemon *d, struct smtp_dest *dest);

static void on_rate_delay(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_dest *dest = arg;

	(void)fd;
	(void)what;
	if (dest->waiting != NULL)
		dest_pump(dest->waiting->d, dest);
}

/* dest_pump - start what the destination's limits allow now. */
static void dest_pump(struct smtp_daemon *d, struct smtp_dest *dest)
{
	long long delay_ms = d->params->smtp_destination_rate_delay * 1000;
	long long limit = delay_ms > 0 ? 1 : d->params->smtp_destination_concurrency_limit;

	while (dest->waiting != NULL && dest->running < limit) {
		struct delivery *dl = dest->waiting;
		long long wait = dest->last_start_ms + delay_ms - smtp_now_ms();

		if (delay_ms > 0 && dest->last_start_ms > 0 && wait > 0) {
			struct timeval tv = { wait / 1000, (wait % 1000) * 1000 };

			if (dest->delay_ev == NULL)
				dest->delay_ev = evtimer_new(d->svc->base, on_rate_delay, dest);
			evtimer_add(dest->delay_ev, &tv);
			return;
		}
		dest->waiting = dl->next_waiting;
		if (dest->waiting == NULL)
			dest->waiting_tail = &dest->waiting;
		dest->running++;
		dest->last_start_ms = smtp_now_ms();
		/* may end dl, and come back here through dest_done: the loop
		 * reads only dest, which lives until the next dest_enter */
		delivery_start(dl);
	}
}

/* dest_sweep - forget destinations with nothing running, waiting or idle
 * and no rate delay left to keep. Called only on a new request, never
 * from inside a delivery, so a destination never goes from under a
 * caller. */
static void dest_sweep(struct smtp_daemon *d)
{
	long long delay_ms = d->params->smtp_destination_rate_delay * 1000, now = smtp_now_ms();

	for (struct smtp_dest **pp = &d->dests; *pp != NULL;) {
		struct smtp_dest *dest = *pp;

		if (dest->running > 0 || dest->waiting != NULL || dest->idle != NULL ||
		    now - dest->last_start_ms < delay_ms) {
			pp = &dest->next;
			continue;
		}
		*pp = dest->next;
		if (dest->delay_ev != NULL)
			event_free(dest->delay_ev);
		free(dest->name);
		free(dest);
	}
}

void dest_enter(struct smtp_daemon *d, struct delivery *dl)
{
	const char *name = d->relay_host != NULL ? d->relay_host : dl->nexthop;
	struct smtp_dest *dest;

	dest_sweep(d);
	for (dest = d->dests; dest != NULL; dest = dest->next)
		if (strcasecmp(dest->name, name) == 0)
			break;
	if (dest == NULL) {
		dest = xnew(struct smtp_dest);
		dest->name = xstrdup(name);
		dest->waiting_tail = &dest->waiting;
		dest->next = d->dests;
		d->dests = dest;
	}
	dl->dest = dest;
	*dest->waiting_tail = dl;
	dest->waiting_tail = &dl->next_waiting;
	dest_pump(d, dest);
}

void dest_done(struct smtp_daemon *d, struct smtp_dest *dest)
{
	dest->running--;
	dest_pump(d, dest);
}

bool dest_park(struct smtp_dest *dest, struct smtp_session *s)
{
	const struct yb_params *p = s->d->params;

	if (p->smtp_connection_cache_time_limit == 0 || dest->nidle >= p->smtp_destination_concurrency_limit ||
	    smtp_now_ms() - s->started_ms >= p->smtp_connection_reuse_time_limit * 1000)
		return false;
	s->idle = true;
	s->next_idle = dest->idle;
	dest->idle = s;
	dest->nidle++;
	return true;
}

void dest_unpark(struct smtp_dest *dest, struct smtp_session *s)
{
	if (!s->idle)
		return;
	for (struct smtp_session **pp = &dest->idle; *pp != NULL; pp = &(*pp)->next_idle)
		if (*pp == s) {
			*pp = s->next_idle;
			break;
		}
	s->idle = false;
	s->next_idle = NULL;
	dest->nidle--;
}

struct smtp_session *dest_take_idle(struct smtp_dest *dest)
{
	struct smtp_session *s = dest->idle;

	if (s != NULL)
		dest_unpark(dest, s);
	return s;
}
