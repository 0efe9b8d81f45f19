/*
 * json.h: the JSON writer, for report --json and check --json and for the
 * Chrome export (export-chrome.c).
 *
 * Calls nest like the document: json_object_begin(j, "key") opens a member
 * (key NULL inside arrays or at the top), json_*_end closes it.  Commas,
 * line breaks and indentation are the writer's; strings, keys too, are
 * escaped here and nowhere else (json_escape()), into valid JSON whatever
 * bytes they hold.
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
 * Rooms, for speed: an export writes ten items for each of 10^7 events,
 * and a call that keeps the writer's position in memory costs more than
 * formatting the item (each byte stored may alias the position, so it is
 * stored and loaded again call after call).  json_room() reserves room for
 * a run of items and hands out the position as a cursor, a local variable
 * the compiler keeps in registers; the inline json_c_* calls write at the
 * cursor without a check, and json_room_done() puts it back.  Their keys,
 * and the strings of json_c_name(), are names the program spells (below).
 * The calls above are the same ones, each in a room of its own (and their
 * keys escaped, in pieces that fit the buffer as every string).
 */
#ifndef GILTRACE_JSON_H
#define GILTRACE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Where the next item goes and what precedes it: the writer's state that
 * a room's calls change. */
struct json_cursor {
	char *p;
	int depth;               /* containers open */
	bool pretty;             /* the layout */
	bool need_comma;         /* the innermost open container (or the top
	                            level) has an item */
	bool line_break;         /* json_line_break() was called and the next
	                            item or closing bracket is still to come */
};

/* json_init()'s buffer, and the smallest one json_init_compact() takes */
#define JSON_OWN_BUFFER_SIZE 1024

struct json {
	struct json_cursor at;   /* at.p: the end of what was formatted */
	char *buf, *end;         /* [buf, at.p) is not yet given to out */
	FILE *out;
	int error;               /* errno of the first write that failed, 0 none;
	                            nothing more is written after it */
	bool write_through;      /* give each call's bytes to out before it returns */
	char own[JSON_OWN_BUFFER_SIZE]; /* json_init()'s buffer */
};

/* Pretty, each call written through to out. */
void json_init(struct json *j, FILE *out);
/* Compact, collected in buf (size >= JSON_OWN_BUFFER_SIZE) and written to out
 * when it is full, by json_flush() and by json_finish(); j->error says
 * whether a write failed. */
void json_init_compact(struct json *j, FILE *out, char *buf, size_t size);
/* Give what was formatted to out (fwrite; out's own buffer is not flushed). */
void json_flush(struct json *j);
/* Ends the document with a newline and flushes. */
void json_finish(struct json *j);

/* The next item, or the next closing bracket, begins a new line (after the
 * comma that separates it from the one before): the compact layout's only
 * line breaks. */
void json_line_break(struct json *j);
void json_object_begin(struct json *j, const char *key);
void json_object_end(struct json *j);
void json_array_begin(struct json *j, const char *key);
void json_array_end(struct json *j);
void json_string(struct json *j, const char *key, const char *value); /* NULL -> null */
void json_u64(struct json *j, const char *key, uint64_t value);
void json_i64(struct json *j, const char *key, int64_t value);
/* Nanoseconds as microseconds with the nanoseconds as decimals, trailing
 * zeros dropped: 1234567 -> 1234.567, 1234500 -> 1234.5, 1234000 -> 1234
 * (Chrome's trace-event timestamps). */
void json_ns_as_us(struct json *j, const char *key, uint64_t ns);
void json_double(struct json *j, const char *key, double value); /* not finite -> null */
void json_bool(struct json *j, const char *key, bool value);
void json_null(struct json *j, const char *key);

/* ---- rooms --------------------------------------------------------------------- */

/* Levels indented; deeper ones are indented as the last. */
#define JSON_MAX_INDENT 32
/* The room each call of a room may take: */
/* the separator before an item or a closing bracket (comma, line break,
 * indentation) */
#define JSON_SEPARATOR_ROOM (2 + 2 * JSON_MAX_INDENT)
/* a string of `len` bytes, escaped and quoted */
#define JSON_STRING_ROOM(len) (6 * (size_t)(len) + 2)
/* a name of `len` bytes, quoted */
#define JSON_NAME_ROOM(len) ((size_t)(len) + 2)
/* a number */
#define JSON_NUMBER_ROOM 24
/* an item: its separator, its key (a name of key_len bytes) with ": ",
 * and a value that takes value_room */
#define JSON_ITEM_ROOM(key_len, value_room) (JSON_SEPARATOR_ROOM + JSON_NAME_ROOM(key_len) + 2 + (value_room))

#define JSON_INLINE static inline __attribute__((always_inline))

/* The cursor, with room for n more bytes (at most the buffer's size) at
 * it.  Until json_room_done(), only json_c_* calls on the cursor write. */
JSON_INLINE struct json_cursor json_room(struct json *j, size_t n)
{
	if ((size_t)(j->end - j->at.p) < n)
		json_flush(j);
	return j->at;
}

JSON_INLINE void json_room_done(struct json *j, const struct json_cursor *c)
{
	j->at = *c;
	if (j->write_through)
		json_flush(j);
}

/* A byte that strings keep as it is: printable ASCII but '"' and '\\'. */
JSON_INLINE bool json_byte_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* Writes the `len` bytes at src as the inside of a JSON string (no quotes)
 * to dst, which must have room for JSON_STRING_ROOM(len) - 2 bytes, and
 * returns the end of what it wrote.  '"' and '\\' are escaped, control
 * characters and DEL become \u00XX, valid UTF-8 is copied, and every byte
 * that does not start a valid UTF-8 sequence becomes \ufffd, so that the
 * result is always valid JSON whatever the input (strings from a trace,
 * paths). */
char *json_escape(char *dst, const char *src, size_t len);

/* Names: the keys in a room, and strings like "GIL held", that the program
 * spells itself in plain bytes (json_byte_plain).  They are copied without
 * a look: in an export the test would cost as much as the rest of an
 * event.  The sanitizer builds, which the tests run, check them all the
 * same.  A string from anywhere else goes through json_string(). */
#if defined(__SANITIZE_ADDRESS__)
#define JSON_CHECK_NAMES 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define JSON_CHECK_NAMES 1
#endif
#endif
#ifdef JSON_CHECK_NAMES
/* Aborts, naming the name, unless its bytes are all plain. */
void json_check_name(const char *name, size_t len);
#endif

JSON_INLINE void json_c_put_name(struct json_cursor *c, const char *name)
{
	size_t len = strlen(name);
#ifdef JSON_CHECK_NAMES
	json_check_name(name, len);
#endif
	*c->p++ = '"';
	memcpy(c->p, name, len);
	c->p += len;
	*c->p++ = '"';
}

JSON_INLINE void json_c_put_literal(struct json_cursor *c, const char *s)
{
	size_t len = strlen(s);
	memcpy(c->p, s, len);
	c->p += len;
}

/* "00" to "99"; 0, 10, 100, ... 10^19 (json.c) */
extern const char json_digit_pairs[200];
extern const uint64_t json_powers_of_ten[20];

/* The digits in v: from its bit length (log10(2) ~ 1233 / 4096), one too
 * few when v is at or past the next power of ten. */
JSON_INLINE unsigned json_decimal_digits(uint64_t v)
{
	unsigned t = ((64 - (unsigned)__builtin_clzll(v | 1)) * 1233) >> 12;
	return t + (v >= json_powers_of_ten[t]);
}

/* Written from the last digit back, two at a time: a number is a chain of
 * divisions, and this one is half as long. */
JSON_INLINE void json_c_put_u64(struct json_cursor *c, uint64_t v)
{
	char *end = c->p + json_decimal_digits(v), *q = end;
	while (v >= 100) {
		q -= 2;
		memcpy(q, json_digit_pairs + 2 * (v % 100), 2);
		v /= 100;
	}
	if (v >= 10)
		memcpy(q - 2, json_digit_pairs + 2 * v, 2);
	else
		q[-1] = (char)('0' + v);
	c->p = end;
}

JSON_INLINE void json_c_put_i64(struct json_cursor *c, int64_t v)
{
	if (v < 0) {
		*c->p++ = '-';
		json_c_put_u64(c, (uint64_t)0 - (uint64_t)v);
	} else {
		json_c_put_u64(c, (uint64_t)v);
	}
}

JSON_INLINE void json_c_put_ns_as_us(struct json_cursor *c, uint64_t ns)
{
	unsigned frac = (unsigned)(ns % 1000);
	json_c_put_u64(c, ns / 1000);
	if (frac) {
		char *p = c->p;
		*p++ = '.';
		*p++ = (char)('0' + frac / 100);
		if ((frac %= 100)) {
			*p++ = (char)('0' + frac / 10);
			if ((frac %= 10))
				*p++ = (char)('0' + frac);
		}
		c->p = p;
	}
}

/* A line break, and in the pretty layout the indentation. */
JSON_INLINE void json_c_new_line(struct json_cursor *c)
{
	*c->p++ = '\n';
	if (c->pretty) {
		int levels = c->depth < JSON_MAX_INDENT ? c->depth : JSON_MAX_INDENT;
		memset(c->p, ' ', 2 * (size_t)levels);
		c->p += 2 * (size_t)levels;
	}
	c->line_break = false;
}

/* The separator before an item.  Then its key, if any, and the value. */
JSON_INLINE void json_c_separator(struct json_cursor *c)
{
	if (c->need_comma)
		*c->p++ = ',';
	c->need_comma = true;
	if (c->line_break || (c->pretty && c->depth > 0))
		json_c_new_line(c);
}

JSON_INLINE void json_c_put_key(struct json_cursor *c, const char *key)
{
	json_c_put_name(c, key);
	*c->p++ = ':';
	if (c->pretty)
		*c->p++ = ' ';
}

/* The separator, and the key (a name) if any. */
JSON_INLINE void json_c_item(struct json_cursor *c, const char *key)
{
	json_c_separator(c);
	if (key)
		json_c_put_key(c, key);
}

/* An opening bracket, after the item's key. */
JSON_INLINE void json_c_put_open(struct json_cursor *c, char bracket)
{
	*c->p++ = bracket;
	c->depth++;
	c->need_comma = false;
}

JSON_INLINE void json_c_open(struct json_cursor *c, const char *key, char bracket)
{
	json_c_item(c, key);
	json_c_put_open(c, bracket);
}

JSON_INLINE void json_c_close(struct json_cursor *c, char bracket)
{
	bool had_items = c->need_comma;
	if (c->depth > 0)
		c->depth--;
	if (c->line_break || (c->pretty && had_items))
		json_c_new_line(c);
	*c->p++ = bracket;
	c->need_comma = true;
}

/* A number formatted once and written many times (a thread's tid in each
 * of its events). */
struct json_number {
	char text[JSON_NUMBER_ROOM];
	size_t len;
};

JSON_INLINE void json_number_i64(struct json_number *n, int64_t value)
{
	struct json_cursor c = { .p = n->text };
	json_c_put_i64(&c, value);
	n->len = (size_t)(c.p - n->text);
}

/* The calls of json_* above that the export needs, at a cursor; their keys
 * are names. */
JSON_INLINE void json_c_line_break(struct json_cursor *c) { c->line_break = true; }
JSON_INLINE void json_c_object_begin(struct json_cursor *c, const char *key) { json_c_open(c, key, '{'); }
JSON_INLINE void json_c_object_end(struct json_cursor *c) { json_c_close(c, '}'); }

/* A string that is a name. */
JSON_INLINE void json_c_name(struct json_cursor *c, const char *key, const char *name)
{
	json_c_item(c, key);
	json_c_put_name(c, name);
}

JSON_INLINE void json_c_u64(struct json_cursor *c, const char *key, uint64_t value)
{
	json_c_item(c, key);
	json_c_put_u64(c, value);
}

JSON_INLINE void json_c_ns_as_us(struct json_cursor *c, const char *key, uint64_t ns)
{
	json_c_item(c, key);
	json_c_put_ns_as_us(c, ns);
}

/* A number formatted by json_number_i64(). */
JSON_INLINE void json_c_number(struct json_cursor *c, const char *key, const struct json_number *n)
{
	json_c_item(c, key);
	memcpy(c->p, n->text, n->len);
	c->p += n->len;
}

#endif
