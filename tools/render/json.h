/*
 * json.h: a small streaming JSON writer for --json output.
 *
 * Calls nest like the document: json_object_begin(j, "key") opens a member
 * (key NULL inside arrays or at the top), json_*_end closes it.  Commas and
 * indentation are handled here; strings are escaped.
 */
#ifndef GILTRACE_JSON_H
#define GILTRACE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 32

struct json {
	FILE *out;
	int depth;
	bool has_items[JSON_MAX_DEPTH];
};

void json_init(struct json *j, FILE *out);
void json_object_begin(struct json *j, const char *key);
void json_object_end(struct json *j);
void json_array_begin(struct json *j, const char *key);
void json_array_end(struct json *j);
void json_string(struct json *j, const char *key, const char *value); /* NULL -> null */
void json_u64(struct json *j, const char *key, uint64_t value);
void json_i64(struct json *j, const char *key, int64_t value);
void json_double(struct json *j, const char *key, double value);
void json_bool(struct json *j, const char *key, bool value);
void json_null(struct json *j, const char *key);
/* Ends the document with a newline. */
void json_finish(struct json *j);

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
 * `max` bytes (max >= 4): fewer when the piece would end inside a UTF-8
 * sequence, which json_escape() would take for invalid. */
size_t json_piece_length(const char *s, size_t len, size_t max);

#endif
