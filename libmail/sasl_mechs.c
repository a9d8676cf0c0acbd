/* sasl_mechs.c - the SASL mechanism list (sasl_mechs.h). */
#include "config.h"
#include "sasl_mechs.h"

#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	bool plaintext;
} mechs[] = {
	{ "PLAIN", true },
	{ "LOGIN", true },
	{ "SCRAM-SHA-256", false },
};

#define N_MECHS (sizeof mechs / sizeof mechs[0])

/* find - the table index of a name (len octets, any case), or -1. */
static int find(const char *name, size_t len)
{
	for (size_t i = 0; i < N_MECHS; i++)
		if (strlen(mechs[i].name) == len && strncasecmp(mechs[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

bool sasl_mech_known(const char *mech)
{
	int i = find(mech, strlen(mech));

	return i >= 0 && strcmp(mechs[i].name, mech) == 0;
}

bool sasl_mech_plaintext(const char *mech)
{
	int i = find(mech, strlen(mech));

	return i < 0 || mechs[i].plaintext;
}

/* next_word - the next space-separated word of *p: its start, length in
 * *len; NULL at the end. */
static const char *next_word(const char **p, size_t *len)
{
	const char *s = *p;

	while (*s == ' ' || *s == '\t' || *s == ',')
		s++;
	if (*s == '\0')
		return NULL;
	*len = strcspn(s, " \t,");
	*p = s + *len;
	return s;
}

void sasl_mechs_offered(const char *configured, bool secure, struct buf *out)
{
	bool used[N_MECHS] = { false };
	const char *p = configured, *w;
	size_t len;

	buf_reset(out);
	while ((w = next_word(&p, &len)) != NULL) {
		int i = find(w, len);

		if (i < 0 || used[i] || (mechs[i].plaintext && !secure))
			continue;
		used[i] = true;
		if (out->len > 0)
			buf_append_byte(out, ' ');
		buf_append_str(out, mechs[i].name);
	}
}

int sasl_mechs_check(const char *configured, const char **error_r)
{
	const char *p = configured, *w;
	size_t len, n = 0;

	while ((w = next_word(&p, &len)) != NULL) {
		if (find(w, len) < 0) {
			*error_r = "unknown SASL mechanism (known: PLAIN, LOGIN, SCRAM-SHA-256)";
			return -1;
		}
		n++;
	}
	if (n == 0) {
		*error_r = "no SASL mechanism";
		return -1;
	}
	return 0;
}
