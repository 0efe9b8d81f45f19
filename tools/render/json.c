/*
 * json.c: the JSON writer's calls (json.h): each writes at the cursor in
 * a room of its own, strings in pieces that fit the buffer.
 */
#include "json.h"

#include "trace.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char json_digit_pairs[200] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                   "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                   "8081828384858687888990919293949596979899";

const uint64_t json_powers_of_ten[20] = {
	0, /* so that 0 has a digit */
	10u, 100u, 1000u, 10000u, 100000u, 1000000u, 10000000u, 100000000u, 1000000000u, 10000000000u,
	100000000000u, 1000000000000u, 10000000000000u, 100000000000000u, 1000000000000000u,
	10000000000000000u, 100000000000000000u, 1000000000000000000u, 10000000000000000000u,
};

void json_init(struct json *j, FILE *out)
{
	*j = (struct json){ .at = { .pretty = true }, .out = out, .write_through = true };
	j->buf = j->at.p = j->own;
	j->end = j->own + sizeof j->own;
}

void json_init_compact(struct json *j, FILE *out, char *buf, size_t size)
{
	*j = (struct json){ .at = { .p = buf }, .buf = buf, .end = buf + size, .out = out };
}

void json_flush(struct json *j)
{
	size_t n = (size_t)(j->at.p - j->buf);
	j->at.p = j->buf;
	errno = 0;
	if (n && !j->error && fwrite(j->buf, 1, n, j->out) != n)
		j->error = errno ? errno : EIO;
}

void json_finish(struct json *j)
{
	struct json_cursor c = json_room(j, 1);
	*c.p++ = '\n';
	j->at = c;
	json_flush(j);
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

#ifdef JSON_CHECK_NAMES
void json_check_name(const char *name, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!json_byte_plain((unsigned char)name[i])) {
			fprintf(stderr, "giltrace: bug: JSON name '%s' needs escaping\n", name);
			abort();
		}
}
#endif

static bool utf8_continuation(char c)
{
	return ((unsigned char)c & 0xc0) == 0x80;
}

/* How many of the `len` bytes at s to escape in one piece of at most `max`
 * bytes (max >= 4): fewer when the piece would end inside a valid UTF-8
 * sequence, which json_escape() would take for invalid bytes.  A cut
 * before a continuation byte moves back to the nearest byte that is not
 * one, at most 3 back (a sequence's lead); when there is none within 3,
 * the byte after the cut belongs to no valid sequence and the cut stays.
 * So the pieces escape to the same bytes as the whole string. */
static size_t piece_length(const char *s, size_t len, size_t max)
{
	size_t n = len < max ? len : max;
	if (n < len && utf8_continuation(s[n]))
		for (size_t back = 1; back <= 3 && back < n; back++)
			if (!utf8_continuation(s[n - back]))
				return n - back;
	return n;
}

/* s quoted and escaped, of any length: in pieces that fit the buffer. */
static void put_string(struct json *j, const char *s)
{
	size_t len = strlen(s), max = ((size_t)(j->end - j->buf) - 2) / 6;
	struct json_cursor c = json_room(j, 2);
	*c.p++ = '"';
	while (len) {
		size_t n = piece_length(s, len, max);
		j->at = c;
		c = json_room(j, JSON_STRING_ROOM(n)); /* and the closing quote */
		c.p = json_escape(c.p, s, n);
		s += n;
		len -= n;
	}
	*c.p++ = '"';
	j->at = c;
}

/* The end of each call that writes at j->at itself. */
static void call_done(struct json *j)
{
	if (j->write_through)
		json_flush(j);
}

/* The separator before an item and its key. */
static void item(struct json *j, const char *key)
{
	struct json_cursor c = json_room(j, JSON_SEPARATOR_ROOM);
	json_c_separator(&c);
	j->at = c;
	if (key) {
		put_string(j, key);
		c = json_room(j, 2);
		*c.p++ = ':';
		if (c.pretty)
			*c.p++ = ' ';
		j->at = c;
	}
}

void json_line_break(struct json *j)
{
	j->at.line_break = true;
}

static void open_container(struct json *j, const char *key, char bracket)
{
	item(j, key);
	struct json_cursor c = json_room(j, 1);
	json_c_put_open(&c, bracket);
	json_room_done(j, &c);
}

static void close_container(struct json *j, char bracket)
{
	struct json_cursor c = json_room(j, JSON_SEPARATOR_ROOM + 1);
	json_c_close(&c, bracket);
	json_room_done(j, &c);
}

void json_object_begin(struct json *j, const char *key) { open_container(j, key, '{'); }
void json_object_end(struct json *j) { close_container(j, '}'); }
void json_array_begin(struct json *j, const char *key) { open_container(j, key, '['); }
void json_array_end(struct json *j) { close_container(j, ']'); }

void json_string(struct json *j, const char *key, const char *value)
{
	item(j, key);
	if (value) {
		put_string(j, value);
		call_done(j);
	} else {
		struct json_cursor c = json_room(j, 4);
		json_c_put_literal(&c, "null");
		json_room_done(j, &c);
	}
}

void json_u64(struct json *j, const char *key, uint64_t value)
{
	item(j, key);
	struct json_cursor c = json_room(j, JSON_NUMBER_ROOM);
	json_c_put_u64(&c, value);
	json_room_done(j, &c);
}

void json_i64(struct json *j, const char *key, int64_t value)
{
	item(j, key);
	struct json_cursor c = json_room(j, JSON_NUMBER_ROOM);
	json_c_put_i64(&c, value);
	json_room_done(j, &c);
}

void json_ns_as_us(struct json *j, const char *key, uint64_t ns)
{
	item(j, key);
	struct json_cursor c = json_room(j, JSON_NUMBER_ROOM);
	json_c_put_ns_as_us(&c, ns);
	json_room_done(j, &c);
}

void json_double(struct json *j, const char *key, double value)
{
	item(j, key);
	struct json_cursor c = json_room(j, 32);
	int n = isfinite(value) ? snprintf(c.p, 32, "%.6g", value) : -1;
	if (n > 0 && n < 32)
		c.p += n;
	else
		json_c_put_literal(&c, "null");
	json_room_done(j, &c);
}

void json_bool(struct json *j, const char *key, bool value)
{
	item(j, key);
	struct json_cursor c = json_room(j, 5);
	json_c_put_literal(&c, value ? "true" : "false");
	json_room_done(j, &c);
}

void json_null(struct json *j, const char *key)
{
	item(j, key);
	struct json_cursor c = json_room(j, 4);
	json_c_put_literal(&c, "null");
	json_room_done(j, &c);
}
