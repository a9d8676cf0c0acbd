/* dnsroute.c - a test-only command around libmail/dns: where would mail
 * for NAME go? The integration tests run it against a loopback DNS
 * server. Not installed.
 *
 *   dnsroute [-s SERVERS] [-m MYHOSTNAME] [-t SECONDS] [-n COUNT] [-H] NAME...
 *
 * -s is dns_resolvers ("" or absent: /etc/resolv.conf), -m the loop
 * check's own name, -t the query timeout, -H asks dns_route_host instead
 * of dns_route_mx. The names are resolved one after the other with one
 * resolver (and so one cache), the whole list COUNT times with -n. Each
 * result is printed as stable text:
 *
 *   STATUS DSN                      e.g. "ok 2.0.0", "nxdomain 5.1.2"
 *   PREF NAME ADDR ADDR...          one line per host, in the order to try
 *   temp NAME                       a host whose lookup failed temporarily
 *   reason: ...
 *
 * with an empty line between results. Exit status 0 when every lookup
 * gave a result (whatever it says), 2 on a usage or resolver error.
 */
#include "config.h"
#include "../../libmail/dns.h"
#include "../../libutil/log.h"
#include "../../libutil/strutil.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct run {
	struct event_base *base;
	struct dns_resolver *resolver;
	char **names;
	int nnames;
	int next;                /* index into names */
	const char *myhostname;
	bool host;
	long long remaining;     /* lookups still to print */
};

static void usage(void)
{
	fprintf(stderr, "usage: dnsroute [-s SERVERS] [-m MYHOSTNAME] [-t SECONDS] [-n COUNT] [-H] NAME...\n");
	exit(2);
}

static void start(struct run *run);

static void print_result(const struct dns_mx_result *res, void *arg)
{
	struct run *run = arg;
	char text[DNS_ADDR_STRLEN];

	printf("%s %s\n", dns_status_name(res->status), res->dsn);
	for (size_t i = 0; i < res->nhosts; i++) {
		const struct dns_host *h = &res->hosts[i];

		if (h->temp_error) {
			printf("temp %s\n", h->name);
			continue;
		}
		printf("%d %s", h->preference, h->name);
		for (size_t k = 0; k < h->naddrs; k++)
			printf(" %s", dns_address_str(&h->addrs[k], text, sizeof text));
		printf("\n");
	}
	printf("reason: %s\n", res->reason);
	if (--run->remaining > 0) {
		printf("\n");
		start(run);
	} else {
		event_base_loopbreak(run->base);
	}
}

static void start(struct run *run)
{
	const char *name = run->names[run->next++ % run->nnames];

	if (run->host)
		dns_route_host(run->resolver, name, print_result, run);
	else
		dns_route_mx(run->resolver, name, run->myhostname, print_result, run);
}

int main(int argc, char **argv)
{
	struct run run = { .remaining = 1 };
	long long count = 1;
	const char *servers = "", *error;
	long long timeout = DNS_QUERY_TIMEOUT;
	char *why;
	int c;

	log_init("dnsroute", LOG_SINK_STDERR);
	while ((c = getopt(argc, argv, "s:m:t:n:H")) != -1) {
		switch (c) {
		case 's':
			servers = optarg;
			break;
		case 'm':
			run.myhostname = optarg;
			break;
		case 't':
			if (str_to_ll(optarg, 1, 3600, &timeout, &error) < 0)
				usage();
			break;
		case 'n':
			if (str_to_ll(optarg, 1, 100000, &count, &error) < 0)
				usage();
			break;
		case 'H':
			run.host = true;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc)
		usage();
	run.names = argv + optind;
	run.nnames = argc - optind;
	run.remaining = count * run.nnames;
	run.base = event_base_new();
	if (run.base == NULL) {
		fprintf(stderr, "dnsroute: cannot create an event base\n");
		return 2;
	}
	run.resolver = dns_resolver_new(run.base, servers, &why);
	if (run.resolver == NULL) {
		fprintf(stderr, "dnsroute: %s\n", why);
		free(why);
		event_base_free(run.base);
		return 2;
	}
	dns_resolver_set_timeout(run.resolver, (int)timeout);
	start(&run);
	event_base_dispatch(run.base);
	dns_resolver_free(&run.resolver);
	event_base_free(run.base);
	fflush(stdout);
	return run.remaining == 0 ? 0 : 2;
}
