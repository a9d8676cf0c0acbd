/* dns.h - DNS routing for outbound mail: MX selection (RFC 5321 5.1,
 * RFC 7505 null MX) and address lookups, asynchronous inside a libevent
 * loop. The glue to libunbound: no other file includes <unbound.h>.
 *
 * One resolver per process (it owns a libunbound context and, from the
 * first query on, one background thread of libunbound's). Queries report
 * through a callback that always runs later from the event loop, never
 * inside the call that started the query. The pure helpers at the end
 * (name checks, address literals, MX ordering) need no resolver.
 */
#ifndef YB_DNS_H
#define YB_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct dns_resolver;
struct dns_query;

#define DNS_MAX_HOSTS 10          /* hosts tried per destination, at most */
#define DNS_MAX_ADDRS 20          /* addresses over all hosts, at most */
#define DNS_NAME_MAX 253          /* a name's text length without the trailing dot */
#define DNS_ADDR_STRLEN 46        /* dns_address_str's buffer (INET6_ADDRSTRLEN) */
#define DNS_QUERY_TIMEOUT 30      /* seconds for a whole query, by default */

/* dns_resolver_new - a resolver on base. servers: the yubin.conf key
 * dns_resolvers, "ADDR[@PORT]" separated by blanks or commas (all used
 * as forwarders), or "" for the name servers of /etc/resolv.conf, read now:
 * call it before the chroot. Names under "test." are resolved like any
 * other (libunbound would answer them itself), so tests can use them.
 * NULL and *error_r (new memory) on failure. */
struct dns_resolver *dns_resolver_new(struct event_base *base, const char *servers, char **error_r);

/* dns_resolver_set_timeout - the limit for one whole query (MX and
 * address lookups together), in seconds (at least 1). A query that runs
 * out reports DNS_TEMP, or what it has if some hosts have addresses. */
void dns_resolver_set_timeout(struct dns_resolver *r, int seconds);

/* dns_resolver_free - queries still running are dropped without their
 * callbacks (and their dns_query pointers become invalid). Accepts a
 * NULL *r; sets *r to NULL. May be called from a query's callback. */
void dns_resolver_free(struct dns_resolver **r);

enum dns_status {
	DNS_OK,        /* hosts[] in the order to try */
	DNS_TEMP,      /* SERVFAIL, timeout, bogus, library error: defer (4.4.3) */
	DNS_NXDOMAIN,  /* the domain does not exist, or the name is malformed
			  (5.1.2; 4.4.4 from dns_route_host: the relay host
			  is our configuration, mail waits for it) */
	DNS_NULL_MX,   /* RFC 7505: the domain accepts no mail (5.1.10) */
	DNS_NO_HOSTS,  /* no host has an address, none failed temporarily:
			  5.1.2 for an implicit MX (the domain exists but has
			  neither MX nor A/AAAA); 4.4.4 when MX hosts exist
			  (RFC 5321 5.1: retry) and from dns_route_host;
			  5.4.4 when every MX record is malformed */
	DNS_LOOP,      /* every MX is us or worse than us (5.4.6) */
};

struct dns_address {
	int family;                  /* AF_INET or AF_INET6 */
	unsigned char addr[16];      /* network byte order; 4 bytes for AF_INET */
};

struct dns_host {
	char *name;                  /* the MX exchange, or the domain itself for an
					implicit MX (lower case, no trailing dot) */
	int preference;              /* 0 for an implicit MX and dns_route_host */
	struct dns_address *addrs;   /* IPv6 first, then IPv4, each in DNS order */
	size_t naddrs;
	bool temp_error;             /* no address because a lookup failed
					temporarily: skip it for now */
};

struct dns_mx_result {
	enum dns_status status;
	const char *dsn;             /* "2.0.0" for DNS_OK; "4.4.3", "4.4.4", "5.1.2",
					"5.1.10", "5.4.4" or "5.4.6": its class
					says defer (4) or bounce (5) */
	char *reason;                /* one printable line for logs and DSNs */
	struct dns_host *hosts;      /* DNS_OK: at least one has addresses (hosts
					without any may be listed, for the log);
					a failure of the address lookups: the
					hosts tried, none with addresses; other
					failures: none */
	size_t nhosts;
};

/* dns_mx_fn - the answer; res is valid only during the call, after which
 * the query is freed (do not dns_cancel it). */
typedef void dns_mx_fn(const struct dns_mx_result *res, void *arg);

/* dns_route_mx - where mail for domain goes (RFC 5321 5.1): its MX hosts
 * by preference, in random order among equal preferences; the exchange
 * equal to myhostname (NULL or "": no check) and every MX of the same or
 * a worse preference dropped (DNS_LOOP when nothing remains); without MX
 * records (NODATA), the domain itself (implicit MX); never the domain's
 * A/AAAA after an error; a null MX is DNS_NULL_MX, a "." among real MX
 * records is dropped and logged. Then the AAAA and A records of each host
 * (DNS_MAX_HOSTS hosts, DNS_MAX_ADDRS addresses in all). An address
 * literal "[192.0.2.1]" or "[IPv6:2001:db8::1]" is its own route. Names
 * are case-insensitive, a trailing dot is accepted; a malformed name is
 * DNS_NXDOMAIN without asking DNS. */
struct dns_query *dns_route_mx(struct dns_resolver *r, const char *domain, const char *myhostname,
			       dns_mx_fn *fn, void *arg);

/* dns_route_host - no MX lookup: the AAAA and A records of host (a
 * relayhost), as one host of preference 0. An IP address, bare or in
 * brackets, is its own route, without DNS. Failures have DSN 5.4.4
 * (DNS_NXDOMAIN, DNS_NO_HOSTS) or 4.4.3 (DNS_TEMP). */
struct dns_query *dns_route_host(struct dns_resolver *r, const char *host, dns_mx_fn *fn, void *arg);

/* dns_cancel - the callback will not run; frees the query. Accepts NULL. */
void dns_cancel(struct dns_query *q);

/* ---- helpers without a resolver ---------------------------------------- */

/* dns_status_name - "ok", "temp", "nxdomain", "nullmx", "nohosts", "loop". */
const char *dns_status_name(enum dns_status status);

/* dns_name_normalize - check a host or domain name (letters, digits, '-'
 * and '_' in labels of 1 to 63, no label starting or ending with '-', a
 * top-level label not all digits, DNS_NAME_MAX in all, one trailing dot
 * allowed) and copy it to out in lower case without the trailing dot.
 * 0, or -1 with a static reason in *error_r. */
int dns_name_normalize(const char *name, char out[DNS_NAME_MAX + 1], const char **error_r);

/* dns_ip_literal - s as an IP address: "192.0.2.1", "2001:db8::1", or in
 * brackets as in an address literal, "[192.0.2.1]", "[IPv6:2001:db8::1]"
 * (also "[2001:db8::1]"). True and *addr if it is one. */
bool dns_ip_literal(const char *s, struct dns_address *addr);

/* dns_address_str - the address as text in buf (DNS_ADDR_STRLEN); returns buf. */
const char *dns_address_str(const struct dns_address *a, char *buf, size_t size);

/* One MX record for dns_mx_order: the exchange ("" for ".") and its
 * preference. */
struct dns_mx {
	char *name;
	int preference;
};

enum dns_mx_verdict {
	DNS_MX_USABLE,  /* mx[0..*kept_r) in the order to try */
	DNS_MX_NULL,    /* only "." records: a null MX (RFC 7505) */
	DNS_MX_LOOP,    /* myhostname is the best MX: nothing left */
	DNS_MX_NONE,    /* no records at all */
};

/* dns_mx_order - put one MX RRset in the order to try, in place: "."
 * records dropped when real ones exist, sorted by preference, equal
 * preferences shuffled (random numbers from *seed, which advances),
 * repeated names dropped (the best preference stays), and if myhostname
 * is an exchange, it and every record of the same or a worse preference
 * dropped. The kept records come first, the dropped ones after them (the
 * caller still owns every name). Names compare without case. */
enum dns_mx_verdict dns_mx_order(struct dns_mx *mx, size_t n, const char *myhostname, uint64_t *seed,
				 size_t *kept_r);

#endif
