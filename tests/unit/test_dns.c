/* test_dns.c - libmail/dns without a real DNS server: name checks, IP
 * literals and MX ordering (pure functions, fixed random seeds), then
 * queries whose answers never leave the process or come from a tiny fake
 * server on a loopback UDP socket in the same event loop: literal routes,
 * malformed names, callbacks always from the loop, cancelling at every
 * stage, the overall timeout (also with some hosts resolved), and freeing
 * the resolver with queries running. Real DNS behaviour (unbound serving
 * zones) is tests/integration/test_dns.py's business. */
#include "config.h"
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit.h"
#include "../../libmail/dns.h"
#include "../../libutil/mem.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- names and literals --------------------------------------------------- */

static void test_name_normalize(void **state)
{
	char label63[64], label64[65], long_ok[DNS_NAME_MAX + 2], too_long[DNS_NAME_MAX + 3];
	const struct {
		const char *in;
		const char *want; /* NULL: rejected */
	} cases[] = {
		{ "Example.COM", "example.com" },
		{ "example.com.", "example.com" },
		{ "localhost", "localhost" },
		{ "mx_1.a-b.test", "mx_1.a-b.test" },
		{ "1.2.3.example", "1.2.3.example" },
		{ "", NULL },
		{ ".", NULL },
		{ "a..b", NULL },
		{ ".a.b", NULL },
		{ "a.b..", NULL },
		{ "-a.test", NULL },
		{ "a-.test", NULL },
		{ "a.test-", NULL },
		{ "exa mple.test", NULL },
		{ "ex\001.test", NULL },
		{ "h\303\251llo.test", NULL },
		{ "a@b.test", NULL },
		{ "192.0.2.1", NULL },
		{ "a.123", NULL },
		{ "[192.0.2.1]", NULL },
		{ label63, label63 },
		{ label64, NULL },
		{ long_ok, long_ok },
		{ too_long, NULL },
	};
	char out[DNS_NAME_MAX + 1];
	const char *error;

	(void)state;
	memset(label63, 'a', 63);
	label63[63] = '\0';
	memset(label64, 'b', 64);
	label64[64] = '\0';
	/* 4 labels of 62 and one of 1: 4 * 63 + 1 = 253 characters */
	memset(long_ok, 'c', DNS_NAME_MAX);
	for (int i = 62; i < DNS_NAME_MAX; i += 63)
		long_ok[i] = '.';
	long_ok[DNS_NAME_MAX] = '\0';
	memcpy(too_long, long_ok, DNS_NAME_MAX);
	memcpy(too_long + DNS_NAME_MAX, "c", 2);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int ret = dns_name_normalize(cases[i].in, out, &error);

		if (cases[i].want == NULL) {
			if (ret != -1)
				fail_msg("\"%s\" accepted as \"%s\"", cases[i].in, out);
			assert_non_null(error);
		} else {
			if (ret != 0)
				fail_msg("\"%s\" rejected: %s", cases[i].in, error);
			assert_string_equal(out, cases[i].want);
		}
	}
	/* the trailing dot does not count against the length */
	{
		char *dotted = xasprintf("%s.", long_ok);

		assert_int_equal(dns_name_normalize(dotted, out, &error), 0);
		free(dotted);
	}
}

static void test_ip_literal(void **state)
{
	const struct {
		const char *in;
		int family; /* 0: not a literal */
		const char *text;
	} cases[] = {
		{ "192.0.2.1", AF_INET, "192.0.2.1" },
		{ "[192.0.2.1]", AF_INET, "192.0.2.1" },
		{ "2001:db8::1", AF_INET6, "2001:db8::1" },
		{ "[IPv6:2001:DB8::1]", AF_INET6, "2001:db8::1" },
		{ "[ipv6:::1]", AF_INET6, "::1" },
		{ "[2001:db8::1]", AF_INET6, "2001:db8::1" },
		{ "[IPv6:192.0.2.1]", 0, NULL },
		{ "192.0.2", 0, NULL },
		{ "192.0.2.256", 0, NULL },
		{ "[192.0.2.1", 0, NULL },
		{ "[]", 0, NULL },
		{ "example.test", 0, NULL },
		{ "[example.test]", 0, NULL },
		{ "", 0, NULL },
		{ "[192.0.2.1]x", 0, NULL },
	};
	struct dns_address a;
	char text[DNS_ADDR_STRLEN];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		bool ok = dns_ip_literal(cases[i].in, &a);

		if (ok != (cases[i].family != 0))
			fail_msg("\"%s\": %s", cases[i].in, ok ? "taken as a literal" : "not taken as a literal");
		if (!ok)
			continue;
		assert_int_equal(a.family, cases[i].family);
		assert_string_equal(dns_address_str(&a, text, sizeof text), cases[i].text);
	}
}

/* ---- MX ordering -------------------------------------------------------------- */

struct mxset {
	struct dns_mx mx[16];
	size_t n;
};

/* mxset - "pref name pref name ..." ("." for the null MX). */
static void mxset_load(struct mxset *s, const char *spec)
{
	char *copy = xstrdup(spec), *save = NULL;

	s->n = 0;
	for (char *w = strtok_r(copy, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) {
		char *name = strtok_r(NULL, " ", &save);

		assert_non_null(name);
		s->mx[s->n].preference = atoi(w);
		s->mx[s->n].name = xstrdup(strcmp(name, ".") == 0 ? "" : name);
		s->n++;
	}
	free(copy);
}

/* mxset_kept - the first kept names, space-separated (new memory). */
static char *mxset_kept(const struct mxset *s, size_t kept)
{
	char *out = xstrdup("");

	for (size_t i = 0; i < kept; i++) {
		char *next = xasprintf("%s%s%d:%s", out, i > 0 ? " " : "", s->mx[i].preference,
				       s->mx[i].name[0] != '\0' ? s->mx[i].name : ".");

		free(out);
		out = next;
	}
	return out;
}

static void mxset_free(struct mxset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->mx[i].name);
	s->n = 0;
}

/* order - load spec, order it, compare the kept list with want (and the
 * verdict); every name must still be in the array once. */
static void order(const char *spec, const char *myhostname, uint64_t seed, enum dns_mx_verdict want_verdict,
		  const char *want)
{
	struct mxset s;
	size_t kept, total = 0;
	enum dns_mx_verdict v;
	char *got;

	mxset_load(&s, spec);
	for (size_t i = 0; i < s.n; i++)
		total += strlen(s.mx[i].name);
	v = dns_mx_order(s.mx, s.n, myhostname, &seed, &kept);
	if (v != want_verdict)
		fail_msg("%s (self %s): verdict %d, want %d", spec, myhostname ? myhostname : "-", v, want_verdict);
	got = mxset_kept(&s, kept);
	if (strcmp(got, want) != 0)
		fail_msg("%s (self %s): kept \"%s\", want \"%s\"", spec, myhostname ? myhostname : "-", got, want);
	free(got);
	for (size_t i = 0; i < s.n; i++)
		total -= strlen(s.mx[i].name);
	assert_int_equal(total, 0); /* a permutation: nothing lost, nothing doubled */
	mxset_free(&s);
}

static void test_mx_order_rules(void **state)
{
	(void)state;
	order("20 b.test 10 a.test 30 c.test", NULL, 1, DNS_MX_USABLE, "10:a.test 20:b.test 30:c.test");
	order("0 .", NULL, 1, DNS_MX_NULL, "");
	order("0 . 0 .", NULL, 1, DNS_MX_NULL, "");
	order("", NULL, 1, DNS_MX_NONE, "");
	/* a "." among real records is dropped */
	order("0 . 10 a.test", NULL, 1, DNS_MX_USABLE, "10:a.test");
	/* a repeated name keeps its best preference */
	order("20 a.test 10 A.test 30 b.test", NULL, 1, DNS_MX_USABLE, "10:A.test 30:b.test");
	/* loops: ourselves best, backup, tied, absent, any case, trailing dot */
	order("10 me.test 20 b.test", "me.test", 1, DNS_MX_LOOP, "");
	order("10 a.test 20 me.test 30 c.test", "me.test", 1, DNS_MX_USABLE, "10:a.test");
	order("10 a.test 20 me.test 20 b.test 5 z.test", "ME.Test.", 1, DNS_MX_USABLE, "5:z.test 10:a.test");
	order("10 a.test 20 b.test", "me.test", 1, DNS_MX_USABLE, "10:a.test 20:b.test");
	order("10 a.test", "", 1, DNS_MX_USABLE, "10:a.test");
	order("10 me.test", "bad..name", 1, DNS_MX_USABLE, "10:me.test");
	order("0 me.test", "me.test", 1, DNS_MX_LOOP, "");
}

/* Equal preferences come out in both orders over a few seeds, always the
 * same order for the same seed, and never mixed with other preferences. */
static void test_mx_order_shuffle(void **state)
{
	int first_a = 0, first_b = 0;

	(void)state;
	for (uint64_t seed = 1; seed <= 64; seed++) {
		struct mxset s;
		size_t kept;
		uint64_t s1 = seed, s2 = seed;
		char *once, *again;

		mxset_load(&s, "20 c.test 10 a.test 10 b.test");
		assert_int_equal(dns_mx_order(s.mx, s.n, NULL, &s1, &kept), DNS_MX_USABLE);
		assert_int_equal(kept, 3);
		assert_string_equal(s.mx[2].name, "c.test");
		once = mxset_kept(&s, kept);
		if (strcmp(s.mx[0].name, "a.test") == 0)
			first_a++;
		else
			first_b++;
		assert_int_not_equal(s1, seed); /* the seed advanced */
		mxset_free(&s);
		mxset_load(&s, "20 c.test 10 a.test 10 b.test");
		dns_mx_order(s.mx, s.n, NULL, &s2, &kept);
		again = mxset_kept(&s, kept);
		assert_string_equal(once, again);
		free(once);
		free(again);
		mxset_free(&s);
	}
	assert_true(first_a >= 10);
	assert_true(first_b >= 10);

	/* five equal records: every one of them leads sometimes */
	{
		int leads[5] = { 0 };
		uint64_t seed = 42;

		for (int round = 0; round < 200; round++) {
			struct mxset s;
			size_t kept;

			mxset_load(&s, "5 m0.test 5 m1.test 5 m2.test 5 m3.test 5 m4.test");
			dns_mx_order(s.mx, s.n, NULL, &seed, &kept);
			assert_int_equal(kept, 5);
			leads[s.mx[0].name[1] - '0']++;
			mxset_free(&s);
		}
		for (int i = 0; i < 5; i++)
			assert_true(leads[i] >= 15);
	}
}

/* ---- queries -------------------------------------------------------------------- */

/* A loopback UDP socket: with answer == false it is a black hole (nothing
 * ever answers), else it answers from the table below. */
struct fake_rr {
	const char *name;
	int type;
	const char *rdata[3]; /* MX: "PREF NAME"; A/AAAA: the address; NULL ends */
	bool drop;            /* never answer this question */
};

struct fake {
	struct event_base *base;
	int fd;
	int port;
	char servers[64];
	struct event *ev;
	const struct fake_rr *rrs;
	int questions;        /* received */
	int addr_questions;   /* A or AAAA received */
};

struct outcome {
	int calls;
	bool returned;        /* the starting call had returned before the callback */
	bool in_call;
	enum dns_status status;
	char dsn[16];
	char reason[512];
	char hosts[512];      /* "PREF NAME ADDR..|temp NAME;" ... */
	struct event_base *base;
	struct dns_resolver **free_resolver; /* free it from the callback */
};

static void on_result(const struct dns_mx_result *res, void *arg)
{
	struct outcome *o = arg;
	size_t len = 0;

	o->calls++;
	o->returned = !o->in_call;
	o->status = res->status;
	snprintf(o->dsn, sizeof o->dsn, "%s", res->dsn);
	snprintf(o->reason, sizeof o->reason, "%s", res->reason);
	o->hosts[0] = '\0';
	for (size_t i = 0; i < res->nhosts; i++) {
		const struct dns_host *h = &res->hosts[i];
		char text[DNS_ADDR_STRLEN];

		if (h->temp_error) {
			len += (size_t)snprintf(o->hosts + len, sizeof o->hosts - len, "temp %s;", h->name);
			continue;
		}
		len += (size_t)snprintf(o->hosts + len, sizeof o->hosts - len, "%d %s", h->preference, h->name);
		for (size_t k = 0; k < h->naddrs; k++)
			len += (size_t)snprintf(o->hosts + len, sizeof o->hosts - len, " %s",
						dns_address_str(&h->addrs[k], text, sizeof text));
		len += (size_t)snprintf(o->hosts + len, sizeof o->hosts - len, ";");
	}
	if (o->free_resolver != NULL)
		dns_resolver_free(o->free_resolver);
	event_base_loopbreak(o->base);
}

/* run_loop - dispatch until a callback breaks the loop or ms pass. */
static void run_loop(struct event_base *base, int ms)
{
	struct timeval limit = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &limit);
	event_base_dispatch(base);
}

/* put_name - text name in wire format at p; returns the length. */
static size_t put_name(unsigned char *p, const char *name)
{
	size_t o = 0;

	while (*name != '\0') {
		size_t l = strcspn(name, ".");

		p[o++] = (unsigned char)l;
		memcpy(p + o, name, l);
		o += l;
		name += l;
		if (*name == '.')
			name++;
	}
	p[o++] = 0;
	return o;
}

static void on_question(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;
	unsigned char in[512], out[1024];
	struct sockaddr_storage from;
	socklen_t fromlen = sizeof from;
	ssize_t n = recvfrom(fd, in, sizeof in, 0, (struct sockaddr *)&from, &fromlen);
	char qname[256];
	size_t i = 12, o = 0, qend;
	int qtype, answers = 0;
	const struct fake_rr *match = NULL;
	bool name_known = false;

	(void)what;
	if (n < 17)
		return;
	/* the question: labels, type, class */
	while (i < (size_t)n && in[i] != 0 && o + in[i] + 1 < sizeof qname) {
		if (o > 0)
			qname[o++] = '.';
		memcpy(qname + o, in + i + 1, in[i]);
		o += in[i];
		i += (size_t)in[i] + 1;
	}
	qname[o] = '\0';
	if (i + 5 > (size_t)n)
		return;
	qtype = in[i + 1] << 8 | in[i + 2];
	qend = i + 5;
	f->questions++;
	if (qtype == 1 || qtype == 28)
		f->addr_questions++;
	for (const struct fake_rr *rr = f->rrs; rr != NULL && rr->name != NULL; rr++) {
		if (strcasecmp(rr->name, qname) != 0)
			continue;
		name_known = true;
		if (rr->type == qtype)
			match = rr;
	}
	if (match != NULL && match->drop)
		return;
	/* header: same id, QR, opcode 0, RD copied, RA; NXDOMAIN for names we
	 * do not know; no additional section (no EDNS in the answer) */
	memcpy(out, in, 2);
	out[2] = (unsigned char)(0x80 | (in[2] & 0x01));
	out[3] = (unsigned char)(0x80 | (name_known ? 0 : 3));
	out[4] = 0;
	out[5] = 1;
	memset(out + 6, 0, 6);
	memcpy(out + 12, in + 12, qend - 12);
	o = qend;
	for (int k = 0; match != NULL && match->rdata[k] != NULL; k++) {
		unsigned char rdata[300];
		size_t rdlen = 0;

		if (qtype == 15) {
			int pref = atoi(match->rdata[k]);

			rdata[0] = (unsigned char)(pref >> 8);
			rdata[1] = (unsigned char)pref;
			rdlen = 2 + put_name(rdata + 2, strchr(match->rdata[k], ' ') + 1);
		} else if (qtype == 1) {
			inet_pton(AF_INET, match->rdata[k], rdata);
			rdlen = 4;
		} else {
			inet_pton(AF_INET6, match->rdata[k], rdata);
			rdlen = 16;
		}
		out[o++] = 0xc0; /* the name: a pointer to the question's */
		out[o++] = 12;
		out[o++] = (unsigned char)(qtype >> 8);
		out[o++] = (unsigned char)qtype;
		out[o++] = 0;
		out[o++] = 1;
		memcpy(out + o, "\0\0\1\0", 4); /* TTL 256 */
		o += 4;
		out[o++] = (unsigned char)(rdlen >> 8);
		out[o++] = (unsigned char)rdlen;
		memcpy(out + o, rdata, rdlen);
		o += rdlen;
		answers++;
	}
	out[7] = (unsigned char)answers;
	sendto(fd, out, o, 0, (struct sockaddr *)&from, fromlen);
}

static void fake_start(struct fake *f, struct event_base *base, const struct fake_rr *rrs)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof sin;

	memset(f, 0, sizeof *f);
	f->base = base;
	f->rrs = rrs;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(f->fd >= 0);
	assert_int_equal(bind(f->fd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(getsockname(f->fd, (struct sockaddr *)&sin, &len), 0);
	f->port = ntohs(sin.sin_port);
	snprintf(f->servers, sizeof f->servers, "127.0.0.1@%d", f->port);
	if (rrs != NULL) {
		f->ev = event_new(base, f->fd, EV_READ | EV_PERSIST, on_question, f);
		event_add(f->ev, NULL);
	}
}

static void fake_stop(struct fake *f)
{
	if (f->ev != NULL)
		event_free(f->ev);
	close(f->fd);
}

static struct dns_resolver *resolver(struct event_base *base, const char *servers)
{
	char *error = NULL;
	struct dns_resolver *r = dns_resolver_new(base, servers, &error);

	if (r == NULL)
		fail_msg("dns_resolver_new(\"%s\"): %s", servers, error);
	return r;
}

static void test_resolver_servers(void **state)
{
	struct event_base *base = event_base_new();
	const char *bad[] = { "localhost", "127.0.0.1@", "127.0.0.1@0", "127.0.0.1@65536", "127.0.0.1@53x",
			      "::1@53 300.1.1.1", "@53" };
	struct dns_resolver *r;
	char *error = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		r = dns_resolver_new(base, bad[i], &error);
		if (r != NULL)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_non_null(error);
		assert_non_null(strstr(error, "dns_resolvers"));
		free(error);
		error = NULL;
	}
	r = resolver(base, "127.0.0.1@5353 ::1\t192.0.2.53@53,::1@53");
	dns_resolver_free(&r);
	assert_null(r);
	dns_resolver_free(&r); /* NULL is fine */
	/* "" reads /etc/resolv.conf, which may name any server: no query.
	 * A machine without the file gets an error that names it. */
	r = dns_resolver_new(base, "", &error);
	if (r == NULL) {
		assert_non_null(strstr(error, "/etc/resolv.conf"));
		free(error);
	}
	dns_resolver_free(&r);
	event_base_free(base);
}

/* Literals and malformed names never reach DNS; the callback still comes
 * from the loop, after the call returned. */
static void test_without_dns(void **state)
{
	struct event_base *base = event_base_new();
	struct fake hole;
	struct dns_resolver *r;
	const struct {
		bool host;
		const char *name;
		enum dns_status status;
		const char *dsn;
		const char *hosts;  /* or a part of the reason for failures */
	} cases[] = {
		{ true, "192.0.2.1", DNS_OK, "2.0.0", "0 192.0.2.1 192.0.2.1;" },
		{ true, "[192.0.2.1]", DNS_OK, "2.0.0", "0 192.0.2.1 192.0.2.1;" },
		{ true, "2001:DB8::1", DNS_OK, "2.0.0", "0 2001:db8::1 2001:db8::1;" },
		{ false, "[IPv6:2001:db8::1]", DNS_OK, "2.0.0", "0 2001:db8::1 2001:db8::1;" },
		{ false, "[192.0.2.7]", DNS_OK, "2.0.0", "0 192.0.2.7 192.0.2.7;" },
		{ false, "bad..name", DNS_NXDOMAIN, "5.1.2", "name=bad..name type=MX: malformed name (empty label)" },
		{ false, "192.0.2.1", DNS_NXDOMAIN, "5.1.2", "numeric top-level label" },
		{ false, "[300.1.2.3]", DNS_NXDOMAIN, "5.1.2", "bad address literal" },
		{ false, "evil\r\nname.test", DNS_NXDOMAIN, "5.1.2", "name=evil\\x0d\\x0aname.test" },
		{ false, "", DNS_NXDOMAIN, "5.1.2", "empty name" },
		{ true, "x y", DNS_NXDOMAIN, "4.4.4", "type=A: malformed name (bad character in name)" },
		{ true, "[relay.test]", DNS_NXDOMAIN, "4.4.4", "bad address literal" },
	};

	(void)state;
	fake_start(&hole, base, NULL);
	r = resolver(base, hole.servers);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct outcome o = { .base = base, .in_call = true };
		struct dns_query *q;

		if (cases[i].host)
			q = dns_route_host(r, cases[i].name, on_result, &o);
		else
			q = dns_route_mx(r, cases[i].name, "me.test", on_result, &o);
		o.in_call = false;
		assert_non_null(q);
		assert_int_equal(o.calls, 0);
		run_loop(base, 5000);
		assert_int_equal(o.calls, 1);
		assert_true(o.returned);
		assert_int_equal(o.status, cases[i].status);
		assert_string_equal(o.dsn, cases[i].dsn);
		if (cases[i].status == DNS_OK) {
			assert_string_equal(o.hosts, cases[i].hosts);
			assert_string_equal(o.reason, "ok");
		} else if (strstr(o.reason, cases[i].hosts) == NULL) {
			fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", cases[i].name, o.reason, cases[i].hosts);
		}
		assert_null(strchr(o.reason, '\n'));
	}
	assert_int_equal(hole.questions, 0);
	dns_resolver_free(&r);
	fake_stop(&hole);
	event_base_free(base);
}

/* Cancelled before the loop ran: the callback never comes. */
static void test_cancel_before_callback(void **state)
{
	struct event_base *base = event_base_new();
	struct fake hole;
	struct dns_resolver *r;
	struct outcome o = { .base = base };

	(void)state;
	fake_start(&hole, base, NULL);
	r = resolver(base, hole.servers);
	dns_cancel(dns_route_host(r, "192.0.2.1", on_result, &o));
	dns_cancel(dns_route_mx(r, "bad..name", NULL, on_result, &o));
	dns_cancel(dns_route_mx(r, "example.test", NULL, on_result, &o));
	dns_cancel(NULL);
	run_loop(base, 300);
	assert_int_equal(o.calls, 0);
	dns_resolver_free(&r);
	fake_stop(&hole);
	event_base_free(base);
}

/* A server that never answers: the query's own deadline gives DNS_TEMP
 * (libunbound would go on retrying for much longer). */
static void test_timeout(void **state)
{
	struct event_base *base = event_base_new();
	struct fake hole;
	struct dns_resolver *r;
	struct outcome o = { .base = base };

	(void)state;
	fake_start(&hole, base, NULL);
	r = resolver(base, hole.servers);
	dns_resolver_set_timeout(r, 1);
	dns_route_mx(r, "Example.TEST.", NULL, on_result, &o);
	run_loop(base, 10000);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.status, DNS_TEMP);
	assert_string_equal(o.dsn, "4.4.3");
	assert_string_equal(o.reason, "Host or domain name not found. Name service error for name=example.test "
				      "type=MX: Host not found, try again (timed out after 1s)");
	dns_resolver_free(&r);
	fake_stop(&hole);
	event_base_free(base);
}

static const struct fake_rr fake_zone[] = {
	{ "example.test", 15, { "10 mx1.example.test", "20 mx2.example.test", NULL }, false },
	{ "mx1.example.test", 1, { NULL }, true },
	{ "mx1.example.test", 28, { NULL }, true },
	{ "mx2.example.test", 1, { "192.0.2.2", NULL }, false },
	{ "mx2.example.test", 28, { NULL }, false }, /* NODATA */
	{ "hole.test", 15, { NULL }, true },
	{ "flat.test", 1, { "192.0.2.9", NULL }, false }, /* one: libunbound rotates RRsets */
	{ "flat.test", 28, { "2001:db8::9", NULL }, false },
	{ "empty.test", 16, { NULL }, false },     /* exists, no MX, no address */
	{ "self.test", 15, { "10 ME.example.test", "20 mx2.example.test", NULL }, false },
	{ NULL, 0, { NULL }, false },
};

/* The fake server answers: MX, implicit MX, NODATA and NXDOMAIN paths. */
static void test_fake_answers(void **state)
{
	struct event_base *base = event_base_new();
	struct fake f;
	struct dns_resolver *r;
	const struct {
		const char *name;
		enum dns_status status;
		const char *dsn;
		const char *hosts;
		const char *reason; /* a part of it */
	} cases[] = {
		{ "flat.test", DNS_OK, "2.0.0", "0 flat.test 2001:db8::9 192.0.2.9;", "ok" },
		{ "empty.test", DNS_NO_HOSTS, "5.1.2", "0 empty.test;",
		  "name=empty.test type=A: Host found but no data record of requested type" },
		{ "nowhere.test", DNS_NXDOMAIN, "5.1.2", "", "name=nowhere.test type=MX: Host not found" },
		{ "self.test", DNS_LOOP, "5.4.6", "", "mail for self.test loops back to myself" },
	};

	(void)state;
	fake_start(&f, base, fake_zone);
	r = resolver(base, f.servers);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct outcome o = { .base = base };

		dns_route_mx(r, cases[i].name, "me.example.test", on_result, &o);
		run_loop(base, 10000);
		assert_int_equal(o.calls, 1);
		if (o.status != cases[i].status)
			fail_msg("%s: %s (%s)", cases[i].name, dns_status_name(o.status), o.reason);
		assert_string_equal(o.dsn, cases[i].dsn);
		assert_string_equal(o.hosts, cases[i].hosts);
		if (strstr(o.reason, cases[i].reason) == NULL)
			fail_msg("%s: reason \"%s\" lacks \"%s\"", cases[i].name, o.reason, cases[i].reason);
	}
	dns_resolver_free(&r);
	fake_stop(&f);
	event_base_free(base);
}

/* The deadline in the address stage: what resolved is used, the rest is
 * a temporary failure of its host. */
static void test_timeout_with_some_hosts(void **state)
{
	struct event_base *base = event_base_new();
	struct fake f;
	struct dns_resolver *r;
	struct outcome o = { .base = base };

	(void)state;
	fake_start(&f, base, fake_zone);
	r = resolver(base, f.servers);
	dns_resolver_set_timeout(r, 1);
	dns_route_mx(r, "example.test", NULL, on_result, &o);
	run_loop(base, 10000);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.status, DNS_OK);
	assert_string_equal(o.hosts, "temp mx1.example.test;20 mx2.example.test 192.0.2.2;");
	dns_resolver_free(&r);
	fake_stop(&f);
	event_base_free(base);
}

/* Cancelled while libunbound works on the MX lookup, then on the address
 * lookups: no callback, nothing leaked (valgrind), and libunbound's late
 * answers are dropped quietly. */
static void test_cancel_in_flight(void **state)
{
	struct event_base *base = event_base_new();
	struct fake f;
	struct dns_resolver *r;
	struct outcome o = { .base = base };
	struct dns_query *q;

	(void)state;
	fake_start(&f, base, fake_zone);
	r = resolver(base, f.servers);
	q = dns_route_mx(r, "hole.test", NULL, on_result, &o);
	for (int i = 0; i < 100 && f.questions == 0; i++)
		run_loop(base, 20);
	assert_true(f.questions > 0);
	dns_cancel(q);

	q = dns_route_mx(r, "example.test", NULL, on_result, &o);
	for (int i = 0; i < 100 && f.addr_questions < 4; i++)
		run_loop(base, 20);
	assert_true(f.addr_questions >= 4); /* AAAA and A of both hosts were asked */
	dns_cancel(q);
	run_loop(base, 300);
	assert_int_equal(o.calls, 0);

	/* a cancelled query's answers arrive later and go nowhere */
	q = dns_route_mx(r, "flat.test", NULL, on_result, &o);
	dns_cancel(q);
	run_loop(base, 300);
	assert_int_equal(o.calls, 0);
	dns_resolver_free(&r);
	fake_stop(&f);
	event_base_free(base);
}

/* Freeing the resolver drops running queries without callbacks; freeing
 * it from a callback is allowed. */
static void test_free_resolver(void **state)
{
	struct event_base *base = event_base_new();
	struct fake f;
	struct dns_resolver *r;
	struct outcome o = { .base = base }, late = { .base = base };

	(void)state;
	fake_start(&f, base, fake_zone);
	r = resolver(base, f.servers);
	dns_route_mx(r, "hole.test", NULL, on_result, &late);
	dns_route_mx(r, "example.test", NULL, on_result, &late);
	dns_route_host(r, "192.0.2.1", on_result, &late);
	run_loop(base, 0);
	assert_int_equal(late.calls, 1); /* the literal */
	late.calls = 0;
	dns_resolver_free(&r);
	run_loop(base, 200);
	assert_int_equal(late.calls, 0);

	r = resolver(base, f.servers);
	o.free_resolver = &r;
	dns_route_mx(r, "hole.test", NULL, on_result, &late);
	dns_route_mx(r, "flat.test", NULL, on_result, &o);
	run_loop(base, 10000);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.status, DNS_OK);
	assert_null(r);
	run_loop(base, 200);
	assert_int_equal(late.calls, 0);
	fake_stop(&f);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_normalize),
		cmocka_unit_test(test_ip_literal),
		cmocka_unit_test(test_mx_order_rules),
		cmocka_unit_test(test_mx_order_shuffle),
		cmocka_unit_test(test_resolver_servers),
		cmocka_unit_test(test_without_dns),
		cmocka_unit_test(test_cancel_before_callback),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_fake_answers),
		cmocka_unit_test(test_timeout_with_some_hosts),
		cmocka_unit_test(test_cancel_in_flight),
		cmocka_unit_test(test_free_resolver),
	};

	log_init("test_dns", LOG_SINK_STDERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
