/* echod.c - a test-only service on the daemon skeleton: greets, echoes
 * lines, closes on QUIT. The integration tests run it under master to
 * check spawning, privilege drop, restart, reload and stop without
 * depending on any mail daemon. Not installed. */
#include "config.h"
#include "../../libmail/params.h"
#include "../../libutil/log.h"
#include "../../libutil/service.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ECHOD_LINE_MAX 1000

static struct yb_params params;

static void echod_close(struct bufferevent *bev, struct service_ctx *ctx)
{
	bufferevent_free(bev);
	service_client_closed(ctx);
}

/* on_drained - the goodbye has been written: now the connection can go. */
static void on_drained(struct bufferevent *bev, void *arg)
{
	echod_close(bev, arg);
}

/* echod_finish - send text, then close once it is on the wire. */
static void echod_finish(struct bufferevent *bev, struct service_ctx *ctx, const char *text)
{
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, on_drained, NULL, ctx);
	bufferevent_write(bev, text, strlen(text));
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct service_ctx *ctx = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t len;

	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		if (strcmp(line, "QUIT") == 0) {
			free(line);
			echod_finish(bev, ctx, "bye\r\n");
			return;
		}
		evbuffer_add_printf(bufferevent_get_output(bev), "echo: %s\r\n", line);
		free(line);
	}
	if (evbuffer_get_length(in) > ECHOD_LINE_MAX)
		echod_finish(bev, ctx, "error: line too long\r\n");
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	echod_close(bev, arg);
}

static void echod_accept(struct service_ctx *ctx, int fd, int index)
{
	struct bufferevent *bev = bufferevent_socket_new(ctx->base, fd, BEV_OPT_CLOSE_ON_FREE);

	service_client_opened(ctx);
	bufferevent_setcb(bev, on_read, NULL, on_event, ctx);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	evbuffer_add_printf(bufferevent_get_output(bev), "hello from %s pid %ld listener %d\r\n",
			    ctx->service_name, (long)getpid(), index);
}

int main(int argc, char **argv)
{
	static const struct service_desc desc = {
		.name = "yubin/echod",
		.conf_table = &params_table,
		.conf = &params,
		.load_conf = params_load_service,
		.on_accept = echod_accept,
	};
	return service_main(argc, argv, &desc);
}
