/* mailctl.c - the operator CLI: option parsing and the command table. */
#include "config.h"
#include "mailctl.h"
#include "../libmail/params.h"
#include "../libutil/log.h"
#include "../libutil/mem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmd_help(struct mailctl *ctl);

static const struct mailctl_command commands[] = {
	{ { "start" }, cmd_start, "[-f]", "start the suite; -f: stay in the foreground, log to stderr" },
	{ { "stop" }, cmd_stop, "", "stop the suite (workers finish, then are killed after stop_timeout)" },
	{ { "reload" }, cmd_reload, "", "re-read the configuration and replace workers gracefully" },
	{ { "status" }, cmd_status, "[--json]", "each service: state, workers, restarts" },
	{ { "config", "show" }, cmd_config_show, "[-n] [-d] [KEY...]",
	  "effective yubin.conf values; -n: only those set in the file, -d: with docs" },
	{ { "config", "check" }, cmd_config_check, "", "validate yubin.conf and master.conf, start nothing" },
	{ { "domain", "add" }, cmd_domain_add, "DOMAIN", "host a domain" },
	{ { "domain", "del" }, cmd_domain_del, "DOMAIN [--force]",
	  "stop hosting a domain; --force: with its users and aliases" },
	{ { "domain", "list" }, cmd_domain_list, "[--json]", "the hosted domains" },
	{ { "user", "add" }, cmd_user_add, "ADDRESS [--quota SIZE] [--disable] [--password-stdin]",
	  "add a mailbox user (asks for the password twice)" },
	{ { "user", "del" }, cmd_user_del, "ADDRESS", "remove a user (the mailbox stays on disk)" },
	{ { "user", "passwd" }, cmd_user_passwd, "ADDRESS [--password-stdin]", "set a user's password" },
	{ { "user", "set" }, cmd_user_set, "ADDRESS [--quota SIZE] [--enable|--disable]",
	  "change quota (0: unlimited) or whether the user may log in" },
	{ { "user", "list" }, cmd_user_list, "[DOMAIN] [--json]", "users, of one domain or all" },
	{ { "user", "show" }, cmd_user_show, "ADDRESS [--json]", "a user's mailbox, quota and state" },
	{ { "alias", "add" }, cmd_alias_add, "ADDRESS|@DOMAIN TARGET...",
	  "add targets to an alias (@DOMAIN: the catch-all)" },
	{ { "alias", "del" }, cmd_alias_del, "ADDRESS|@DOMAIN [TARGET]", "remove an alias, or one target" },
	{ { "alias", "list" }, cmd_alias_list, "[DOMAIN] [--json]", "aliases, of one domain or all" },
	{ { "queue", "list" }, cmd_queue_list, "[--sender S] [--rcpt S] [--domain D] [--age DURATION] [--json]",
	  "queued messages (selectors: sender/recipient substring, recipient domain, minimum age)" },
	{ { "queue", "show" }, cmd_queue_show, "ID [--json]", "a queued message and each recipient's state" },
	{ { "queue", "delete" }, cmd_queue_delete, "ID", "remove a message from the queue (no bounce)" },
	{ { "queue", "hold" }, cmd_queue_hold, "ID", "keep a message in the queue without delivering it" },
	{ { "queue", "release" }, cmd_queue_release, "ID", "let a held message be delivered again" },
	{ { "queue", "flush" }, cmd_queue_flush, "", "retry every deferred recipient now" },
	{ { "queue", "requeue" }, cmd_queue_requeue, "ID|all", "retry now with the attempt count reset" },
	{ { "queue", "stats" }, cmd_queue_stats, "[--json]",
	  "since qmgr started: messages queued, commits and log syncs (group commit), messages in delivery" },
	{ { "tls", "selfsigned" }, cmd_tls_selfsigned, "HOSTNAME [NAME...] [--days N] [--force]",
	  "write a self-signed certificate and key to tls_cert_file and tls_key_file" },
	{ { "user", "test-login" }, cmd_user_test_login, "ADDRESS [--password-stdin]",
	  "check a password against the user table: ok, or why a login would fail" },
	{ { "help" }, cmd_help, "", "this list" },
};

#define COMMAND_COUNT (sizeof commands / sizeof commands[0])

void mailctl_error(const char *fmt, ...)
{
	va_list ap;

	fputs("mailctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void print_usage(FILE *fp)
{
	fprintf(fp, "usage: mailctl [-c CONFIG_DIR] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < COMMAND_COUNT; i++) {
		char words[64] = "";

		for (int j = 0; j < 3 && commands[i].words[j] != NULL; j++) {
			if (j > 0)
				strcat(words, " ");
			strcat(words, commands[i].words[j]);
		}
		/* Arguments too long for their column push the text to the next line. */
		if (strlen(commands[i].args) > 20)
			fprintf(fp, "  %-14s %s\n  %-14s %-20s %s\n", words, commands[i].args, "", "", commands[i].doc);
		else
			fprintf(fp, "  %-14s %-20s %s\n", words, commands[i].args, commands[i].doc);
	}
	fprintf(fp, "\n-c CONFIG_DIR: configuration directory (default %s)\n", YB_CONFIG_DIR);
}

static int cmd_help(struct mailctl *ctl)
{
	(void)ctl;
	print_usage(stdout);
	return MAILCTL_OK;
}

/* match - how many words of cmd match argv, or 0 if it is not cmd. */
static int match(const struct mailctl_command *cmd, int argc, char **argv)
{
	int n = 0;

	for (; n < 3 && cmd->words[n] != NULL; n++)
		if (n >= argc || strcmp(argv[n], cmd->words[n]) != 0)
			return 0;
	return n;
}

int main(int argc, char **argv)
{
	struct mailctl ctl = { .config_dir = YB_CONFIG_DIR };
	int i = 1;

	log_init("mailctl", LOG_SINK_STDERR);
	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			ctl.config_dir = argv[i + 1];
			i += 2;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			print_usage(stdout);
			return MAILCTL_OK;
		} else {
			mailctl_error("unknown option %s", argv[i]);
			print_usage(stderr);
			return MAILCTL_USAGE;
		}
	}
	if (i == argc) {
		print_usage(stderr);
		return MAILCTL_USAGE;
	}
	for (size_t c = 0; c < COMMAND_COUNT; c++) {
		int n = match(&commands[c], argc - i, argv + i);

		if (n > 0) {
			ctl.argc = argc - i - n;
			ctl.argv = argv + i + n;
			return commands[c].run(&ctl);
		}
	}
	mailctl_error("unknown command \"%s\" (see mailctl help)", argv[i]);
	return MAILCTL_USAGE;
}
