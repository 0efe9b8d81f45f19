/*
 * json.c: the JSON writer's buffer, line breaks and escaping (json.h).
 */
#include "json.h"

#include "trace.h"

#include <errno.h>
#include <math.h>
#include <string.h>

void json_init(struct json *j, FILE *out)
{
	*j = (struct json){ .out = out, .pretty = true, .write_through = true };
	j->buf = j->p = j->own;
	j->end = j->own + sizeof j->own;
}

void json_init_compact(struct json *j, FILE *out, char *buf, size_t size)
{
	*j = (struct json){ .out = out, .buf = buf, .p = buf, .end = buf + size };
}

void json_flush(struct json *j)
{
	size_t n = (size_t)(j->p - j->buf);
	j->p = j->buf;
	errno = 0;
	if (n && !j->error && fwrite(j->buf, 1, n, j->out) != n)
		j->error = errno ? errno : EIO;
}

void json_finish(struct json *j)
{
	*json_reserve(j, 1) = '\n';
	j->p++;
	json_flush(j);
}

void json_new_line(struct json *j)
{
	*json_reserve(j, 1) = '\n';
	j->p++;
	for (int i = 0; j->pretty && i < j->depth; i++) {
		memcpy(json_reserve(j, 2), "  ", 2);
		j->p += 2;
	}
	j->line_break = false;
}

char *json_escape(char *dst, const char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)src, *end = p + len;
	while (p < end) {
		unsigned c = *p;
		if (json_byte_plain((unsigned char)c)) {
			*dst++ = (char)c;
			p++;
		} else if (c == '"' || c == '\\') {
			*dst++ = '\\';
			*dst++ = (char)c;
			p++;
		} else if (c < 0x80) { /* a control character or DEL */
			memcpy(dst, "\\u00", 4);
			dst[4] = hex[c >> 4];
			dst[5] = hex[c & 0xf];
			dst += 6;
			p++;
		} else {
			size_t n = trace_utf8_sequence(p, (size_t)(end - p));
			if (n) {
				memcpy(dst, p, n);
				dst += n;
				p += n;
			} else {
				memcpy(dst, "\\ufffd", 6);
				dst += 6;
				p++;
			}
		}
	}
	return dst;
}

static bool utf8_continuation(char c)
{
	return ((unsigned char)c & 0xc0) == 0x80;
}

/* A cut before a continuation byte moves back to the nearest byte that is
 * not one, at most 3 back (a sequence's lead); when there is none within 3,
 * the byte after the cut belongs to no valid sequence and the cut stays.
 * So the pieces escape to the same bytes as the whole string. */
size_t json_piece_length(const char *s, size_t len, size_t max)
{
	size_t n = len < max ? len : max;
	if (n < len && utf8_continuation(s[n]))
		for (size_t back = 1; back <= 3 && back < n; back++)
			if (!utf8_continuation(s[n - back]))
				return n - back;
	return n;
}

void json_put_string_slow(struct json *j, const char *s, size_t len)
{
	/* pieces that fit the buffer, escaped, with room for a quote */
	size_t max = ((size_t)(j->end - j->buf) - 1) / 6;
	*json_reserve(j, 1) = '"';
	j->p++;
	while (len) {
		size_t n = json_piece_length(s, len, max);
		j->p = json_escape(json_reserve(j, JSON_ESCAPED_MAX(n)), s, n);
		s += n;
		len -= n;
	}
	*json_reserve(j, 1) = '"';
	j->p++;
}

void json_double(struct json *j, const char *key, double value)
{
	json_item(j, key);
	char *p = json_reserve(j, 32);
	int n = isfinite(value) ? snprintf(p, 32, "%.6g", value) : -1;
	if (n > 0 && n < 32)
		j->p = p + n;
	else
		j->p = (char *)memcpy(p, "null", 4) + 4;
	json_call_done(j);
}
