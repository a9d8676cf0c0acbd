/* base64.h - RFC 4648 base64 (the standard alphabet, with padding), as
 * SASL exchanges carry it in SMTP, POP3 and IMAP (RFC 4954, 5034, 3501). */
#ifndef YB_BASE64_H
#define YB_BASE64_H

#include <stddef.h>

#include "buf.h"

/* base64_encode - append the encoding of data[0..len) to out. */
void base64_encode(struct buf *out, const void *data, size_t len);

/* base64_decode - append the octets text[0..len) encodes to out; -1 (out
 * unchanged) unless text is canonical base64: only the 64 letters of the
 * alphabet, a length that is a multiple of 4, '=' only as the final one
 * or two characters, and no bits set in the padding. Empty text decodes
 * to nothing. No whitespace is skipped. */
int base64_decode(struct buf *out, const char *text, size_t len);

#endif
