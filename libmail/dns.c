/* dns.c - MX routing and address lookups with libunbound (dns.h).
 *
 * libunbound runs in its thread mode: ub_ctx_async(ctx, 1) makes it
 * resolve on one background thread of its own, started at the first
 * query (after the privilege drop, with every signal blocked), and hand
 * answers back through a pipe whose read end (ub_fd) is an event on our
 * loop; ub_process() there runs our callbacks on the loop's thread. The
 * default would fork a resolver process instead, which a privilege-
 * separated daemon must not do. The event mode (ub_ctx_create_event)
 * needs a libunbound built against the very same libevent and hands back
 * raw packets to parse; the thread mode needs neither, and gives parsed
 * answers (rcode, NXDOMAIN, NODATA, DNSSEC state) we only classify.
 *
 * A query is a small state machine: the MX lookup (dns_route_mx only),
 * then AAAA and A of every host at once, then the result. The result
 * always reaches the caller through the query's event, never from inside
 * ub_process() or the call that started the query, so a callback may
 * start, cancel or free anything. The same event is the query's overall
 * deadline: libunbound's own retries can take minutes.
 */
#include "config.h"
#include "dns.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"
#include "../libutil/sanitize.h"
#include "../libutil/strutil.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unbound.h>
#include <unistd.h>

#define RR_A 1
#define RR_MX 15
#define RR_AAAA 28
#define CLASS_IN 1
#define RCODE_NXDOMAIN 3

struct dns_resolver {
	struct event_base *base;
	struct ub_ctx *ub;
	struct event *answers;      /* ub_fd readable */
	bool started;               /* libunbound's thread runs */
	int timeout_s;
	uint64_t seed;              /* shuffling of equal MX preferences */
	struct dns_query *queries;  /* live, for dns_resolver_free */
};

enum outcome { OUT_PENDING, OUT_DATA, OUT_NODATA, OUT_NXDOMAIN, OUT_TEMP };

/* One libunbound query of ours; libunbound's callback argument. */
struct lookup {
	struct dns_query *q;
	struct hostq *host;         /* NULL: the MX lookup */
	int rrtype;
	int id;                     /* libunbound's, while pending */
	bool pending;
	enum outcome outcome;
	char *detail;               /* OUT_TEMP: why, for the reason line */
};

/* One host being resolved: [0] is AAAA, [1] is A. */
struct hostq {
	char *name;
	int preference;
	struct lookup lk[2];
	struct dns_address *addrs[2];
	size_t naddrs[2];
};

enum stage { STAGE_MX, STAGE_ADDR, STAGE_DONE };

struct dns_query {
	struct dns_resolver *r;
	struct dns_query *prev, *next;
	dns_mx_fn *fn;
	void *arg;
	bool route_host;            /* dns_route_host: no MX, failures 4.4.4 */
	bool implicit;              /* the domain is its own (implicit) MX */
	enum stage stage;
	char domain[DNS_NAME_MAX + 1];
	char myhostname[DNS_NAME_MAX + 1]; /* "" for no loop check */
	struct lookup mx;
	struct hostq *hosts;
	size_t nhosts;
	int pending;                /* lookups libunbound still works on */
	struct event *ev;           /* the deadline, then the hand-over */
	struct dns_mx_result res;
};

/* ---- pure helpers --------------------------------------------------------- */

const char *dns_status_name(enum dns_status status)
{
	switch (status) {
	case DNS_OK:
		return "ok";
	case DNS_TEMP:
		return "temp";
	case DNS_NXDOMAIN:
		return "nxdomain";
	case DNS_NULL_MX:
		return "nullmx";
	case DNS_NO_HOSTS:
		return "nohosts";
	case DNS_LOOP:
		return "loop";
	}
	return "unknown";
}

static bool label_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_';
}

int dns_name_normalize(const char *name, char out[DNS_NAME_MAX + 1], const char **error_r)
{
	size_t len = strlen(name), label = 0;
	bool numeric = true;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0) {
		*error_r = "empty name";
		return -1;
	}
	if (len > DNS_NAME_MAX) {
		*error_r = "name too long";
		return -1;
	}
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)name[i] : '.';

		if (c == '.') {
			if (label == 0) {
				*error_r = "empty label";
				return -1;
			}
			if (name[i - 1] == '-') {
				*error_r = "label ends with a hyphen";
				return -1;
			}
			if (i < len) {
				label = 0;
				numeric = true;
			}
			out[i] = '.';
			continue;
		}
		if (!label_char(c)) {
			*error_r = "bad character in name";
			return -1;
		}
		if (label == 0 && c == '-') {
			*error_r = "label starts with a hyphen";
			return -1;
		}
		if (++label > 63) {
			*error_r = "label too long";
			return -1;
		}
		numeric &= c >= '0' && c <= '9';
		out[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	out[len] = '\0';
	if (numeric) {
		/* RFC 1123 2.1: keeps "192.0.2.1" from passing as a name. */
		*error_r = "numeric top-level label";
		return -1;
	}
	return 0;
}

bool dns_ip_literal(const char *s, struct dns_address *addr)
{
	char buf[64];
	size_t len = strlen(s);
	const char *text = s;

	if (len >= sizeof buf)
		return false;
	if (s[0] == '[') {
		if (len < 3 || s[len - 1] != ']')
			return false;
		memcpy(buf, s + 1, len - 2);
		buf[len - 2] = '\0';
		text = buf;
		if (strncasecmp(text, "IPv6:", 5) == 0) {
			text += 5;
			if (strchr(text, ':') == NULL)
				return false;
		}
	}
	memset(addr, 0, sizeof *addr);
	if (inet_pton(AF_INET, text, addr->addr) == 1) {
		addr->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, text, addr->addr) == 1) {
		addr->family = AF_INET6;
		return true;
	}
	return false;
}

const char *dns_address_str(const struct dns_address *a, char *buf, size_t size)
{
	if (inet_ntop(a->family, a->addr, buf, (socklen_t)size) == NULL)
		snprintf(buf, size, "?");
	return buf;
}

/* next_random - splitmix64: small, and the same sequence everywhere for
 * a given seed (the unit tests rely on that). */
static uint64_t next_random(uint64_t *seed)
{
	uint64_t z = (*seed += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

enum dns_mx_verdict dns_mx_order(struct dns_mx *mx, size_t n, const char *myhostname, uint64_t *seed,
				 size_t *kept_r)
{
	struct dns_mx *tmp, *repeats;
	size_t kept = 0, dropped = 0, real = 0, cut;
	char self[DNS_NAME_MAX + 1] = "";
	const char *error;

	*kept_r = 0;
	if (n == 0)
		return DNS_MX_NONE;
	for (size_t i = 0; i < n; i++)
		real += mx[i].name[0] != '\0';
	if (real == 0)
		return DNS_MX_NULL;
	if (myhostname != NULL && myhostname[0] != '\0' && dns_name_normalize(myhostname, self, &error) < 0)
		self[0] = '\0';

	/* Real records first, "." after; then a stable insertion sort of the
	 * real ones by preference (an RRset is small). */
	tmp = xcalloc(n, sizeof *tmp);
	repeats = xcalloc(n, sizeof *repeats);
	for (size_t i = 0; i < n; i++) {
		if (mx[i].name[0] != '\0')
			tmp[kept++] = mx[i];
		else
			tmp[real + dropped++] = mx[i];
	}
	for (size_t i = 1; i < real; i++) {
		struct dns_mx m = tmp[i];
		size_t j = i;

		for (; j > 0 && tmp[j - 1].preference > m.preference; j--)
			tmp[j] = tmp[j - 1];
		tmp[j] = m;
	}
	/* Fisher-Yates within each run of equal preferences. */
	for (size_t start = 0, end; start < real; start = end) {
		for (end = start + 1; end < real && tmp[end].preference == tmp[start].preference; end++)
			;
		for (size_t i = end - 1; i > start; i--) {
			size_t j = start + (size_t)(next_random(seed) % (i - start + 1));
			struct dns_mx m = tmp[i];

			tmp[i] = tmp[j];
			tmp[j] = m;
		}
	}
	/* Repeated names: the first (best) stays. */
	kept = 0;
	dropped = 0;
	for (size_t i = 0; i < real; i++) {
		bool seen = false;

		for (size_t j = 0; j < kept && !seen; j++)
			seen = strcasecmp(mx[j].name, tmp[i].name) == 0;
		if (seen)
			repeats[dropped++] = tmp[i];
		else
			mx[kept++] = tmp[i];
	}
	/* Loop prevention (RFC 5321 5.1): cut before our own preference. */
	cut = kept;
	if (self[0] != '\0') {
		for (size_t i = 0; i < kept; i++) {
			if (strcasecmp(mx[i].name, self) == 0) {
				cut = i;
				while (cut > 0 && mx[cut - 1].preference >= mx[i].preference)
					cut--;
				break;
			}
		}
	}
	/* The "." records and the repeats go after the kept ones. */
	memcpy(mx + kept, tmp + real, (n - real) * sizeof *mx);
	memcpy(mx + kept + (n - real), repeats, dropped * sizeof *mx);
	free(repeats);
	free(tmp);
	*kept_r = cut;
	return cut == 0 ? DNS_MX_LOOP : DNS_MX_USABLE;
}

/* ---- the resolver ---------------------------------------------------------- */

static void on_answers(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;
	int err;

	(void)fd;
	(void)what;
	err = ub_process(r->ub);
	if (err != 0)
		log_warn("dns: reading answers: %s", ub_strerror(err));
}

/* check_server - "ADDR[@PORT]" with an IPv4 or IPv6 address: 0 or -1. */
static int check_server(const char *s)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *at = strrchr(s, '@'), *error;
	size_t len = at != NULL ? (size_t)(at - s) : strlen(s);
	unsigned char bin[16];
	long long port;

	if (len == 0 || len >= sizeof addr)
		return -1;
	memcpy(addr, s, len);
	addr[len] = '\0';
	if (inet_pton(AF_INET, addr, bin) != 1 && inet_pton(AF_INET6, addr, bin) != 1)
		return -1;
	if (at != NULL && str_to_ll(at + 1, 1, 65535, &port, &error) < 0)
		return -1;
	return 0;
}

static uint64_t initial_seed(void)
{
	uint64_t seed;
	struct timespec ts;

	if (getentropy(&seed, sizeof seed) == 0)
		return seed;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
}

struct dns_resolver *dns_resolver_new(struct event_base *base, const char *servers, char **error_r)
{
	struct dns_resolver *r;
	struct ub_ctx *ub = ub_ctx_create();
	char *copy = xstrdup(servers), *save = NULL;
	int err = 0, count = 0;

	*error_r = NULL;
	if (ub == NULL) {
		free(copy);
		*error_r = xstrdup("dns: cannot create a libunbound context");
		return NULL;
	}
	for (char *w = strtok_r(copy, " \t,", &save); w != NULL; w = strtok_r(NULL, " \t,", &save)) {
		if (check_server(w) < 0) {
			char clean[SANITIZE_MAX];

			*error_r = xasprintf("dns_resolvers: \"%s\" is not ADDR[@PORT] (an IP address, a port)",
					     sanitize(clean, sizeof clean, w, strlen(w)));
			break;
		}
		if ((err = ub_ctx_set_fwd(ub, w)) != 0) {
			*error_r = xasprintf("dns_resolvers: %s: %s", w, ub_strerror(err));
			break;
		}
		count++;
	}
	free(copy);
	if (*error_r == NULL && count == 0 && (err = ub_ctx_resolvconf(ub, NULL)) != 0)
		*error_r = xasprintf("dns: reading /etc/resolv.conf: %s", ub_strerror(err));
	/* A thread, not the default forked process (see the top). */
	if (*error_r == NULL && (err = ub_ctx_async(ub, 1)) != 0)
		*error_r = xasprintf("dns: threads: %s", ub_strerror(err));
	/* libunbound answers RFC 6761 names itself: "test." would be NXDOMAIN
	 * without a packet sent. Removing that zone (which also finalizes
	 * the context, so it comes last) lets test data through; the other
	 * special zones (localhost, invalid, onion) keep their answers. */
	if (*error_r == NULL && (err = ub_ctx_zone_remove(ub, "test.")) != 0)
		*error_r = xasprintf("dns: %s", ub_strerror(err));
	if (*error_r != NULL) {
		ub_ctx_delete(ub);
		return NULL;
	}
	r = xnew(struct dns_resolver);
	r->base = base;
	r->ub = ub;
	r->timeout_s = DNS_QUERY_TIMEOUT;
	r->seed = initial_seed();
	r->answers = event_new(base, ub_fd(ub), EV_READ | EV_PERSIST, on_answers, r);
	if (r->answers == NULL || event_add(r->answers, NULL) < 0)
		log_fatal("dns: cannot watch libunbound's answer pipe");
	return r;
}

void dns_resolver_set_timeout(struct dns_resolver *r, int seconds)
{
	r->timeout_s = seconds < 1 ? 1 : seconds;
}

static void query_free(struct dns_query *q);

void dns_resolver_free(struct dns_resolver **rp)
{
	struct dns_resolver *r = *rp;

	if (r == NULL)
		return;
	while (r->queries != NULL)
		query_free(r->queries);
	event_free(r->answers);
	/* Stops and joins libunbound's thread; what it still had is dropped. */
	ub_ctx_delete(r->ub);
	free(r);
	*rp = NULL;
}

/* ---- queries ------------------------------------------------------------------ */

static void on_answer(void *mydata, int err, struct ub_result *res);

/* lookup_start - ask libunbound; a refusal is a temporary failure. */
static void lookup_start(struct dns_query *q, struct lookup *lk, struct hostq *host, const char *name, int rrtype)
{
	struct dns_resolver *r = q->r;
	sigset_t all, old;
	int err;

	lk->q = q;
	lk->host = host;
	lk->rrtype = rrtype;
	lk->outcome = OUT_PENDING;
	/* The first query starts libunbound's thread, which inherits our
	 * signal mask: signals are the loop's business. */
	if (!r->started) {
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
	}
	err = ub_resolve_async(r->ub, name, rrtype, CLASS_IN, lk, on_answer, &lk->id);
	if (!r->started) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		r->started = err == 0;
	}
	if (err != 0) {
		lk->outcome = OUT_TEMP;
		lk->detail = xasprintf("resolver error: %s", ub_strerror(err));
		return;
	}
	lk->pending = true;
	q->pending++;
}

static void lookup_stop(struct dns_query *q, struct lookup *lk)
{
	if (lk->pending) {
		ub_cancel(q->r->ub, lk->id);
		lk->pending = false;
		q->pending--;
	}
}

static const char *rrtype_name(int rrtype)
{
	return rrtype == RR_MX ? "MX" : rrtype == RR_AAAA ? "AAAA" : "A";
}

static const char *rcode_name(int rcode)
{
	static const char *names[] = { "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED" };

	return rcode >= 0 && rcode <= 5 ? names[rcode] : "error";
}

/* classify - an answer's meaning (notes/dns.md "Results", in that order:
 * a bogus answer has data, which must never be used). */
static enum outcome classify(int err, const struct ub_result *res, char **detail_r)
{
	if (err != 0) {
		*detail_r = xasprintf("resolver error: %s", ub_strerror(err));
		return OUT_TEMP;
	}
	if (res->bogus) {
		char clean[SANITIZE_MAX];
		const char *why = res->why_bogus != NULL ? res->why_bogus : "";

		*detail_r = xasprintf("DNSSEC validation failed%s%s", why[0] != '\0' ? ": " : "",
				      sanitize(clean, sizeof clean, why, strlen(why)));
		return OUT_TEMP;
	}
	if (res->rcode != 0 && res->rcode != RCODE_NXDOMAIN) {
		*detail_r = res->rcode <= 5 ? xstrdup(rcode_name(res->rcode)) : xasprintf("rcode %d", res->rcode);
		return OUT_TEMP;
	}
	if (res->nxdomain)
		return OUT_NXDOMAIN;
	return res->havedata ? OUT_DATA : OUT_NODATA;
}

/* outcome_text - Postfix's words, which operators' tools know. */
static const char *outcome_text(enum outcome o)
{
	switch (o) {
	case OUT_NXDOMAIN:
		return "Host not found";
	case OUT_NODATA:
		return "Host found but no data record of requested type";
	default:
		return "Host not found, try again";
	}
}

/* set_reason - "Host or domain name not found. Name service error for
 * name=NAME type=TYPE: TEXT (DETAIL)". */
static void set_reason(struct dns_query *q, const char *name, int rrtype, enum outcome o, const char *detail)
{
	free(q->res.reason);
	q->res.reason = xasprintf("Host or domain name not found. Name service error for name=%s type=%s: %s%s%s%s",
				  name, rrtype_name(rrtype), outcome_text(o), detail != NULL ? " (" : "",
				  detail != NULL ? detail : "", detail != NULL ? ")" : "");
}

static void set_status(struct dns_query *q, enum dns_status status, const char *dsn)
{
	q->res.status = status;
	q->res.dsn = dsn;
	q->stage = STAGE_DONE;
}

/* complete - the result is ready: hand it over from the loop. */
static void complete(struct dns_query *q)
{
	q->stage = STAGE_DONE;
	event_active(q->ev, EV_TIMEOUT, 0);
}

/* ---- the address stage */

static void addr_answer(struct lookup *lk, const struct ub_result *res)
{
	struct hostq *h = lk->host;
	int i = lk->rrtype == RR_AAAA ? 0 : 1;
	int family = i == 0 ? AF_INET6 : AF_INET;
	int size = i == 0 ? 16 : 4;
	size_t n = 0;

	if (lk->outcome != OUT_DATA)
		return;
	for (int k = 0; res->data[k] != NULL; k++)
		n++;
	h->addrs[i] = xcalloc(n > 0 ? n : 1, sizeof *h->addrs[i]);
	for (int k = 0; res->data[k] != NULL && h->naddrs[i] < DNS_MAX_ADDRS; k++) {
		struct dns_address *a = &h->addrs[i][h->naddrs[i]];

		if (res->len[k] != size)
			continue;
		a->family = family;
		memcpy(a->addr, res->data[k], (size_t)size);
		h->naddrs[i]++;
	}
	if (h->naddrs[i] == 0)
		lk->outcome = OUT_NODATA;
}

/* host_failure - the lookup that says best why h has no address: a
 * temporary failure first, then "no such name", then "no data"; the A
 * lookup before the AAAA one when both say the same. */
static const struct lookup *host_failure(const struct hostq *h)
{
	for (int k = 1; k >= 0; k--)
		if (h->lk[k].outcome == OUT_TEMP)
			return &h->lk[k];
	for (int k = 1; k >= 0; k--)
		if (h->lk[k].outcome == OUT_NXDOMAIN)
			return &h->lk[k];
	return &h->lk[1];
}

/* finish_hosts - the result once no lookup is pending: addresses in host
 * order, IPv6 then IPv4, DNS_MAX_ADDRS in all; hosts past that dropped. */
static void finish_hosts(struct dns_query *q)
{
	struct dns_mx_result *res = &q->res;
	size_t total = 0;
	const struct hostq *first_temp = NULL;

	res->hosts = xcalloc(q->nhosts, sizeof *res->hosts);
	for (size_t i = 0; i < q->nhosts; i++) {
		const struct hostq *h = &q->hosts[i];
		struct dns_host *out;
		size_t have = h->naddrs[0] + h->naddrs[1];

		if (have > 0 && total >= DNS_MAX_ADDRS)
			break;
		out = &res->hosts[res->nhosts++];
		out->name = xstrdup(h->name);
		out->preference = h->preference;
		if (have > 0) {
			out->addrs = xcalloc(have, sizeof *out->addrs);
			for (int k = 0; k < 2; k++)
				for (size_t j = 0; j < h->naddrs[k] && total < DNS_MAX_ADDRS; j++, total++)
					out->addrs[out->naddrs++] = h->addrs[k][j];
		} else {
			out->temp_error = h->lk[0].outcome == OUT_TEMP || h->lk[1].outcome == OUT_TEMP;
			if (out->temp_error && first_temp == NULL)
				first_temp = h;
		}
	}
	if (total > 0) {
		set_status(q, DNS_OK, "2.0.0");
		free(res->reason);
		res->reason = xstrdup("ok");
	} else if (first_temp != NULL) {
		const struct lookup *lk = host_failure(first_temp);

		set_status(q, DNS_TEMP, "4.4.3");
		set_reason(q, first_temp->name, lk->rrtype, lk->outcome, lk->detail);
	} else {
		const struct lookup *lk = host_failure(&q->hosts[0]);
		/* RFC 5321 5.1: the domain exists with MX hosts that have no
		 * address (yet): a DNS mistake its owner can mend, so retry;
		 * so for a relay host, which is our own configuration. */
		const char *dsn = q->implicit ? "5.1.2" : "4.4.4";

		if (q->implicit || q->route_host)
			set_status(q, lk->outcome == OUT_NXDOMAIN ? DNS_NXDOMAIN : DNS_NO_HOSTS, dsn);
		else
			set_status(q, DNS_NO_HOSTS, dsn);
		set_reason(q, q->hosts[0].name, lk->rrtype, lk->outcome, NULL);
	}
}

/* start_hosts - AAAA and A of every host at once. */
static void start_hosts(struct dns_query *q, const struct dns_mx *mx, size_t n)
{
	if (n > DNS_MAX_HOSTS)
		n = DNS_MAX_HOSTS;
	q->hosts = xcalloc(n, sizeof *q->hosts);
	q->nhosts = n;
	q->stage = STAGE_ADDR;
	for (size_t i = 0; i < n; i++) {
		q->hosts[i].name = xstrdup(mx[i].name);
		q->hosts[i].preference = mx[i].preference;
	}
	for (size_t i = 0; i < n; i++) {
		lookup_start(q, &q->hosts[i].lk[0], &q->hosts[i], q->hosts[i].name, RR_AAAA);
		lookup_start(q, &q->hosts[i].lk[1], &q->hosts[i], q->hosts[i].name, RR_A);
	}
	if (q->pending == 0) {
		finish_hosts(q);
		complete(q);
	}
}

/* ---- the MX stage */

/* wire_name - an uncompressed wire-format name (data[0..len)) as text in
 * out; "" for the root. -1 if it is malformed or holds bytes a host name
 * cannot have (a printable copy is left in out for the log). */
static int wire_name(const unsigned char *data, size_t len, char *out, size_t outsize)
{
	size_t i = 0, r = 0;
	bool bad = false;
	char raw[256];

	for (;;) {
		size_t l;

		if (i >= len) {
			bad = true;
			break;
		}
		l = data[i++];
		if (l == 0)
			break;
		if (l > 63 || i + l > len) {
			bad = true;
			break;
		}
		if (r > 0 && r < sizeof raw)
			raw[r++] = '.';
		for (size_t k = 0; k < l; k++) {
			unsigned char c = data[i + k];

			if (!label_char(c))
				bad = true;
			if (r < sizeof raw)
				raw[r++] = (char)c;
		}
		i += l;
	}
	if (i != len)
		bad = true;
	sanitize(out, outsize, raw, r);
	/* A cut copy (sanitize's "...") is no name either. */
	return bad || r > DNS_NAME_MAX || strlen(out) != r ? -1 : 0;
}

/* mx_records - the RRset as dns_mx records (names in new memory); names
 * that are not host names are logged and left out. */
static struct dns_mx *mx_records(struct dns_query *q, const struct ub_result *res, size_t *n_r, size_t *bad_r)
{
	size_t n = 0, count = 0;
	struct dns_mx *mx;

	for (int k = 0; res->data[k] != NULL; k++)
		count++;
	mx = xcalloc(count > 0 ? count : 1, sizeof *mx);
	*bad_r = 0;
	for (int k = 0; res->data[k] != NULL; k++) {
		const unsigned char *d = (const unsigned char *)res->data[k];
		char text[4 * DNS_NAME_MAX + 8], name[DNS_NAME_MAX + 1];
		const char *error = "not a host name";

		text[0] = '\0';
		if (res->len[k] >= 3 && wire_name(d + 2, (size_t)res->len[k] - 2, text, sizeof text) == 0 &&
		    (text[0] == '\0' || dns_name_normalize(text, name, &error) == 0)) {
			mx[n].name = xstrdup(text[0] == '\0' ? "" : name);
			mx[n].preference = d[0] << 8 | d[1];
			n++;
			continue;
		}
		log_warn("dns: MX record of %s: \"%s\": %s; ignored", q->domain, text, error);
		(*bad_r)++;
	}
	*n_r = n;
	return mx;
}

static void free_mx(struct dns_mx *mx, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(mx[i].name);
	free(mx);
}

/* route - order mx (n records; dropping, null MX and loop rules) and go on
 * with the address stage, or finish. */
static void route(struct dns_query *q, struct dns_mx *mx, size_t n)
{
	size_t kept, nulls = 0;
	enum dns_mx_verdict v;

	for (size_t i = 0; i < n; i++)
		nulls += mx[i].name[0] == '\0';
	v = dns_mx_order(mx, n, q->myhostname, &q->r->seed, &kept);
	switch (v) {
	case DNS_MX_NULL:
		set_status(q, DNS_NULL_MX, "5.1.10");
		q->res.reason = xasprintf("Domain %s does not accept mail (nullMX)", q->domain);
		complete(q);
		return;
	case DNS_MX_LOOP:
		set_status(q, DNS_LOOP, "5.4.6");
		q->res.reason = xasprintf("mail for %s loops back to myself", q->domain);
		complete(q);
		return;
	case DNS_MX_NONE:
		/* every record was malformed */
		set_status(q, DNS_NO_HOSTS, "5.4.4");
		q->res.reason = xasprintf("Host or domain name not found. Name service error for name=%s type=MX: "
					  "no usable MX host name",
					  q->domain);
		complete(q);
		return;
	case DNS_MX_USABLE:
		break;
	}
	if (nulls > 0)
		log_warn("dns: %s has a null MX (\".\") among other MX records: \".\" ignored", q->domain);
	start_hosts(q, mx, kept);
}

static void mx_answer(struct dns_query *q, const struct ub_result *res)
{
	struct dns_mx *mx;
	size_t n, bad;

	switch (q->mx.outcome) {
	case OUT_TEMP:
		set_status(q, DNS_TEMP, "4.4.3");
		set_reason(q, q->domain, RR_MX, OUT_TEMP, q->mx.detail);
		complete(q);
		return;
	case OUT_NXDOMAIN:
		set_status(q, DNS_NXDOMAIN, "5.1.2");
		set_reason(q, q->domain, RR_MX, OUT_NXDOMAIN, NULL);
		complete(q);
		return;
	case OUT_NODATA: {
		/* No MX: the domain itself, preference 0 (RFC 5321 5.1). */
		struct dns_mx self = { .name = q->domain, .preference = 0 };

		q->implicit = true;
		route(q, &self, 1);
		return;
	}
	default:
		break;
	}
	mx = mx_records(q, res, &n, &bad);
	route(q, mx, n);
	free_mx(mx, n);
}

static void on_answer(void *mydata, int err, struct ub_result *res)
{
	struct lookup *lk = mydata;
	struct dns_query *q = lk->q;

	lk->pending = false;
	q->pending--;
	lk->outcome = classify(err, res, &lk->detail);
	if (lk->host == NULL)
		mx_answer(q, res);
	else
		addr_answer(lk, res);
	ub_resolve_free(res);
	if (q->stage == STAGE_ADDR && q->pending == 0) {
		finish_hosts(q);
		complete(q);
	}
}

/* ---- the query's event: deadline and hand-over */

static void unlink_query(struct dns_query *q)
{
	if (q->prev != NULL)
		q->prev->next = q->next;
	else if (q->r != NULL)
		q->r->queries = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

static void timed_out(struct dns_query *q)
{
	char *detail = xasprintf("timed out after %ds", q->r->timeout_s);

	lookup_stop(q, &q->mx);
	for (size_t i = 0; i < q->nhosts; i++) {
		for (int k = 0; k < 2; k++) {
			struct lookup *lk = &q->hosts[i].lk[k];

			if (lk->pending) {
				lookup_stop(q, lk);
				lk->outcome = OUT_TEMP;
				lk->detail = xstrdup(detail);
			}
		}
	}
	if (q->stage == STAGE_MX) {
		set_status(q, DNS_TEMP, "4.4.3");
		set_reason(q, q->domain, RR_MX, OUT_TEMP, detail);
	} else {
		finish_hosts(q);
	}
	free(detail);
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;

	(void)fd;
	(void)what;
	if (q->stage != STAGE_DONE)
		timed_out(q);
	/* Off the resolver's list first: the callback may free the resolver. */
	unlink_query(q);
	q->r = NULL;
	q->fn(&q->res, q->arg);
	query_free(q);
}

static void free_lookup(struct lookup *lk)
{
	free(lk->detail);
}

static void query_free(struct dns_query *q)
{
	if (q->r != NULL) {
		lookup_stop(q, &q->mx);
		for (size_t i = 0; i < q->nhosts; i++)
			for (int k = 0; k < 2; k++)
				lookup_stop(q, &q->hosts[i].lk[k]);
		unlink_query(q);
	}
	free_lookup(&q->mx);
	for (size_t i = 0; i < q->nhosts; i++) {
		struct hostq *h = &q->hosts[i];

		free(h->name);
		for (int k = 0; k < 2; k++) {
			free_lookup(&h->lk[k]);
			free(h->addrs[k]);
		}
	}
	free(q->hosts);
	for (size_t i = 0; i < q->res.nhosts; i++) {
		free(q->res.hosts[i].name);
		free(q->res.hosts[i].addrs);
	}
	free(q->res.hosts);
	free(q->res.reason);
	event_free(q->ev);
	free(q);
}

void dns_cancel(struct dns_query *q)
{
	if (q != NULL)
		query_free(q);
}

static struct dns_query *query_new(struct dns_resolver *r, dns_mx_fn *fn, void *arg)
{
	struct dns_query *q = xnew(struct dns_query);
	struct timeval tv = { .tv_sec = r->timeout_s };

	q->r = r;
	q->fn = fn;
	q->arg = arg;
	q->ev = evtimer_new(r->base, on_event, q);
	if (q->ev == NULL)
		log_fatal("dns: cannot create an event");
	evtimer_add(q->ev, &tv);
	q->next = r->queries;
	if (q->next != NULL)
		q->next->prev = q;
	r->queries = q;
	return q;
}

/* literal_route - an IP address as the one host, without DNS. */
static void literal_route(struct dns_query *q, const struct dns_address *a)
{
	char text[DNS_ADDR_STRLEN];

	q->res.hosts = xnew(struct dns_host);
	q->res.nhosts = 1;
	q->res.hosts[0].name = xstrdup(dns_address_str(a, text, sizeof text));
	q->res.hosts[0].addrs = xnew(struct dns_address);
	q->res.hosts[0].addrs[0] = *a;
	q->res.hosts[0].naddrs = 1;
	set_status(q, DNS_OK, "2.0.0");
	q->res.reason = xstrdup("ok");
	complete(q);
}

/* bad_name - a malformed name: permanent, without asking DNS. */
static void bad_name(struct dns_query *q, const char *name, const char *type, const char *dsn, const char *why)
{
	char clean[SANITIZE_MAX];

	set_status(q, DNS_NXDOMAIN, dsn);
	q->res.reason = xasprintf("Host or domain name not found. Name service error for name=%s type=%s: "
				  "malformed name (%s)",
				  sanitize(clean, sizeof clean, name, strlen(name)), type, why);
	complete(q);
}

struct dns_query *dns_route_mx(struct dns_resolver *r, const char *domain, const char *myhostname,
			       dns_mx_fn *fn, void *arg)
{
	struct dns_query *q = query_new(r, fn, arg);
	struct dns_address a;
	const char *error;

	if (domain[0] == '[') {
		if (dns_ip_literal(domain, &a))
			literal_route(q, &a);
		else
			bad_name(q, domain, "MX", "5.1.2", "bad address literal");
		return q;
	}
	if (dns_name_normalize(domain, q->domain, &error) < 0) {
		bad_name(q, domain, "MX", "5.1.2", error);
		return q;
	}
	if (myhostname != NULL && myhostname[0] != '\0' && dns_name_normalize(myhostname, q->myhostname, &error) < 0)
		q->myhostname[0] = '\0';
	lookup_start(q, &q->mx, NULL, q->domain, RR_MX);
	if (q->pending == 0) {
		set_status(q, DNS_TEMP, "4.4.3");
		set_reason(q, q->domain, RR_MX, OUT_TEMP, q->mx.detail);
		complete(q);
	}
	return q;
}

struct dns_query *dns_route_host(struct dns_resolver *r, const char *host, dns_mx_fn *fn, void *arg)
{
	struct dns_query *q = query_new(r, fn, arg);
	struct dns_address a;
	const char *error;
	struct dns_mx self;

	q->route_host = true;
	if (dns_ip_literal(host, &a)) {
		literal_route(q, &a);
		return q;
	}
	if (dns_name_normalize(host, q->domain, &error) < 0) {
		bad_name(q, host, "A", "4.4.4", host[0] == '[' ? "bad address literal" : error);
		return q;
	}
	self.name = q->domain;
	self.preference = 0;
	start_hosts(q, &self, 1);
	return q;
}
