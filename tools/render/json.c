#include "json.h"

#include "trace.h"

#include <math.h>
#include <string.h>

void json_init(struct json *j, FILE *out)
{
	j->out = out;
	j->depth = 0;
	j->has_items[0] = false;
}

char *json_escape(char *dst, const char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)src, *end = p + len;
	while (p < end) {
		unsigned c = *p;
		if (c == '"' || c == '\\') {
			*dst++ = '\\';
			*dst++ = (char)c;
			p++;
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(dst, "\\u00", 4);
			dst[4] = hex[c >> 4];
			dst[5] = hex[c & 0xf];
			dst += 6;
			p++;
		} else if (c < 0x80) {
			*dst++ = (char)c;
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

size_t json_piece_length(const char *s, size_t len, size_t max)
{
	size_t n = len < max ? len : max;
	/* back up over continuation bytes: at most 3, a longer run is
	 * invalid anyway */
	for (size_t back = 0; n < len && back < 3 && ((unsigned char)s[n] & 0xc0) == 0x80; back++)
		n--;
	return n;
}

static void put_string(FILE *out, const char *s)
{
	char buf[JSON_ESCAPED_MAX(256)];
	size_t len = strlen(s);
	fputc('"', out);
	while (len) {
		size_t n = json_piece_length(s, len, 256);
		fwrite(buf, 1, (size_t)(json_escape(buf, s, n) - buf), out);
		s += n;
		len -= n;
	}
	fputc('"', out);
}

static void member(struct json *j, const char *key)
{
	if (j->has_items[j->depth])
		fputc(',', j->out);
	if (j->depth > 0) {
		fputc('\n', j->out);
		for (int i = 0; i < j->depth; i++)
			fputs("  ", j->out);
	}
	j->has_items[j->depth] = true;
	if (key) {
		put_string(j->out, key);
		fputs(": ", j->out);
	}
}

static void open_container(struct json *j, const char *key, char c)
{
	member(j, key);
	fputc(c, j->out);
	if (j->depth + 1 < JSON_MAX_DEPTH)
		j->depth++;
	j->has_items[j->depth] = false;
}

static void close_container(struct json *j, char c)
{
	bool had = j->has_items[j->depth];
	if (j->depth > 0)
		j->depth--;
	if (had) {
		fputc('\n', j->out);
		for (int i = 0; i < j->depth; i++)
			fputs("  ", j->out);
	}
	fputc(c, j->out);
}

void json_object_begin(struct json *j, const char *key) { open_container(j, key, '{'); }
void json_object_end(struct json *j) { close_container(j, '}'); }
void json_array_begin(struct json *j, const char *key) { open_container(j, key, '['); }
void json_array_end(struct json *j) { close_container(j, ']'); }

void json_string(struct json *j, const char *key, const char *value)
{
	member(j, key);
	if (value)
		put_string(j->out, value);
	else
		fputs("null", j->out);
}

void json_u64(struct json *j, const char *key, uint64_t value)
{
	member(j, key);
	fprintf(j->out, "%llu", (unsigned long long)value);
}

void json_i64(struct json *j, const char *key, int64_t value)
{
	member(j, key);
	fprintf(j->out, "%lld", (long long)value);
}

void json_double(struct json *j, const char *key, double value)
{
	member(j, key);
	if (isfinite(value))
		fprintf(j->out, "%.6g", value);
	else
		fputs("null", j->out);
}

void json_bool(struct json *j, const char *key, bool value)
{
	member(j, key);
	fputs(value ? "true" : "false", j->out);
}

void json_null(struct json *j, const char *key)
{
	member(j, key);
	fputs("null", j->out);
}

void json_finish(struct json *j)
{
	fputc('\n', j->out);
}
