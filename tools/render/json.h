/*
 * json.h: the JSON writer, for report --json and check --json and for the
 * Chrome export (export-chrome.c).
 *
 * Calls nest like the document: json_object_begin(j, "key") opens a member
 * (key NULL inside arrays or at the top), json_*_end closes it.  Commas,
 * line breaks and indentation are the writer's; strings are escaped here
 * and nowhere else, into valid JSON whatever bytes they hold.
 *
 * Two layouts:
 *
 *   pretty   (json_init) one member per line, indented by two spaces,
 *            "key": value.  Each call hands its bytes to the FILE before it
 *            returns, so that the caller may write to it too (a message on
 *            stderr between two traces stays in place once it flushes).
 *   compact  (json_init_compact) no spaces, a line break only where
 *            json_line_break() asks for one.  The bytes collect in the
 *            caller's buffer and go to the FILE when it is full, and at
 *            json_flush() and json_finish(): an export writes a gigabyte.
 *
 * Speed: an export makes about ten calls per trace event, 10^8 for a large
 * trace, so the calls are inline (below).  A constant key or string of
 * plain ASCII then costs a copy; everything else (escaping, indentation,
 * writes) is in json.c.
 */
#ifndef GILTRACE_JSON_H
#define GILTRACE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* json_init()'s buffer: the most one call writes before it flushes */
#define JSON_OWN_BUFFER_SIZE 1024
/* the smallest buffer json_init_compact() takes */
#define JSON_BUFFER_MIN 256

struct json {
	FILE *out;
	char *buf, *p, *end;     /* [buf, p) formatted, not yet given to out */
	int error;               /* errno of the first write that failed, 0 none;
	                            nothing more is written after it */
	int depth;               /* containers open */
	bool pretty;             /* the layout */
	bool write_through;      /* give each call's bytes to out before it returns */
	bool need_comma;         /* the innermost open container (or the top
	                            level) has an item */
	bool line_break;         /* json_line_break() was called and the next item
	                            or closing bracket has not been written */
	char own[JSON_OWN_BUFFER_SIZE]; /* json_init()'s buffer */
};

/* Pretty, each call written through to out. */
void json_init(struct json *j, FILE *out);
/* Compact, collected in buf (size >= JSON_BUFFER_MIN) and written to out
 * when it is full, by json_flush() and by json_finish(); j->error says
 * whether a write failed. */
void json_init_compact(struct json *j, FILE *out, char *buf, size_t size);
/* Give what was formatted to out (fwrite; out's own buffer is not flushed). */
void json_flush(struct json *j);
/* Ends the document with a newline and flushes. */
void json_finish(struct json *j);

/* Compact layout: the next item, or the next closing bracket, begins a new
 * line (after the comma that separates it from the one before). */
static inline void json_line_break(struct json *j);

static inline void json_object_begin(struct json *j, const char *key);
static inline void json_object_end(struct json *j);
static inline void json_array_begin(struct json *j, const char *key);
static inline void json_array_end(struct json *j);
static inline void json_string(struct json *j, const char *key, const char *value); /* NULL -> null */
static inline void json_u64(struct json *j, const char *key, uint64_t value);
static inline void json_i64(struct json *j, const char *key, int64_t value);
/* Nanoseconds as microseconds with the nanoseconds as decimals, trailing
 * zeros dropped: 1234567 -> 1234.567, 1234500 -> 1234.5, 1234000 -> 1234
 * (Chrome's trace-event timestamps). */
static inline void json_ns_as_us(struct json *j, const char *key, uint64_t ns);
void json_double(struct json *j, const char *key, double value); /* not finite -> null */
static inline void json_bool(struct json *j, const char *key, bool value);
static inline void json_null(struct json *j, const char *key);

/* The bytes json_escape() may write for `len` bytes of input. */
#define JSON_ESCAPED_MAX(len) (6 * (size_t)(len))

/* Writes the `len` bytes at src as the inside of a JSON string (no quotes)
 * to dst, which must have room for JSON_ESCAPED_MAX(len) bytes, and returns
 * the end of what it wrote.  '"' and '\\' are escaped, control characters
 * and DEL become \u00XX, valid UTF-8 is copied, and every byte that does
 * not start a valid UTF-8 sequence becomes \ufffd, so that the result is
 * always valid JSON whatever the input (strings from a trace, paths). */
char *json_escape(char *dst, const char *src, size_t len);
/* How many of the `len` bytes at s to escape in one piece of at most
 * `max` bytes (max >= 4): fewer when the piece would end inside a valid
 * UTF-8 sequence, which json_escape() would take for invalid bytes. */
size_t json_piece_length(const char *s, size_t len, size_t max);

/* ---- the inline calls: internals ---------------------------------------------- */

/* The longest key or string written by the inline path; a longer one
 * goes through json_put_string_slow(). */
#define JSON_INLINE_STRING_MAX 64

/* The work of the inline calls that is not worth inlining (json.c). */
void json_new_line(struct json *j);
void json_put_string_slow(struct json *j, const char *s, size_t len);

/* Room for n more bytes (at most the buffer's size) at the returned j->p. */
static inline char *json_reserve(struct json *j, size_t n)
{
	if ((size_t)(j->end - j->p) < n)
		json_flush(j);
	return j->p;
}

/* The end of every call. */
static inline void json_call_done(struct json *j)
{
	if (j->write_through)
		json_flush(j);
}

/* A byte that json_put_string copies as it is: printable ASCII but '"'
 * and '\\'. */
static inline bool json_byte_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* s quoted and escaped.  For a constant s the compiler folds the test. */
static inline void json_put_string(struct json *j, const char *s)
{
	size_t len = strlen(s);
	if (len <= JSON_INLINE_STRING_MAX) {
		size_t i = 0;
		while (i < len && json_byte_plain((unsigned char)s[i]))
			i++;
		if (i == len) {
			char *p = json_reserve(j, len + 2);
			*p++ = '"';
			memcpy(p, s, len);
			p += len;
			*p++ = '"';
			j->p = p;
			return;
		}
	}
	json_put_string_slow(j, s, len);
}

/* The separator before an item and its key, if any. */
static inline void json_item(struct json *j, const char *key)
{
	if (j->need_comma) {
		*json_reserve(j, 1) = ',';
		j->p++;
	}
	j->need_comma = true;
	if (j->line_break || (j->pretty && j->depth > 0))
		json_new_line(j);
	if (key) {
		json_put_string(j, key);
		char *p = json_reserve(j, 2);
		*p++ = ':';
		if (j->pretty)
			*p++ = ' ';
		j->p = p;
	}
}

static inline void json_open(struct json *j, const char *key, char bracket)
{
	json_item(j, key);
	*json_reserve(j, 1) = bracket;
	j->p++;
	j->depth++;
	j->need_comma = false;
	json_call_done(j);
}

static inline void json_close(struct json *j, char bracket)
{
	bool had_items = j->need_comma;
	if (j->depth > 0)
		j->depth--;
	if (j->line_break || (j->pretty && had_items))
		json_new_line(j);
	*json_reserve(j, 1) = bracket;
	j->p++;
	j->need_comma = true;
	json_call_done(j);
}

static inline char *json_put_u64(char *p, uint64_t v)
{
	char digits[20];
	int n = 0;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = digits[--n];
	return p;
}

/* ---- the inline calls ---------------------------------------------------------- */

static inline void json_line_break(struct json *j) { j->line_break = true; }
static inline void json_object_begin(struct json *j, const char *key) { json_open(j, key, '{'); }
static inline void json_object_end(struct json *j) { json_close(j, '}'); }
static inline void json_array_begin(struct json *j, const char *key) { json_open(j, key, '['); }
static inline void json_array_end(struct json *j) { json_close(j, ']'); }

static inline void json_string(struct json *j, const char *key, const char *value)
{
	json_item(j, key);
	if (value)
		json_put_string(j, value);
	else
		j->p = (char *)memcpy(json_reserve(j, 4), "null", 4) + 4;
	json_call_done(j);
}

static inline void json_u64(struct json *j, const char *key, uint64_t value)
{
	json_item(j, key);
	j->p = json_put_u64(json_reserve(j, 20), value);
	json_call_done(j);
}

static inline void json_i64(struct json *j, const char *key, int64_t value)
{
	json_item(j, key);
	char *p = json_reserve(j, 21);
	if (value < 0) {
		*p++ = '-';
		p = json_put_u64(p, (uint64_t)0 - (uint64_t)value);
	} else {
		p = json_put_u64(p, (uint64_t)value);
	}
	j->p = p;
	json_call_done(j);
}

static inline void json_ns_as_us(struct json *j, const char *key, uint64_t ns)
{
	json_item(j, key);
	unsigned frac = (unsigned)(ns % 1000);
	char *p = json_put_u64(json_reserve(j, 24), ns / 1000);
	if (frac) {
		*p++ = '.';
		*p++ = (char)('0' + frac / 100);
		if ((frac %= 100)) {
			*p++ = (char)('0' + frac / 10);
			if ((frac %= 10))
				*p++ = (char)('0' + frac);
		}
	}
	j->p = p;
	json_call_done(j);
}

static inline void json_bool(struct json *j, const char *key, bool value)
{
	json_item(j, key);
	j->p = value ? (char *)memcpy(json_reserve(j, 4), "true", 4) + 4
	             : (char *)memcpy(json_reserve(j, 5), "false", 5) + 5;
	json_call_done(j);
}

static inline void json_null(struct json *j, const char *key)
{
	json_item(j, key);
	j->p = (char *)memcpy(json_reserve(j, 4), "null", 4) + 4;
	json_call_done(j);
}

#endif
