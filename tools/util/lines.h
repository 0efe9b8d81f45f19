/*
 * lines.h: a bounded list of formatted one-line messages (the reader's
 * notes, the model's self-check errors).
 */
#ifndef GILTRACE_LINES_H
#define GILTRACE_LINES_H

#include <stdarg.h>
#include <stddef.h>

/* Append vsnprintf(fmt, ap) to the list (*items, *count) unless it holds max
 * lines; out of memory drops the line. */
void lines_vappend(char ***items, size_t *count, size_t max, const char *fmt, va_list ap);
__attribute__((format(printf, 4, 5))) void lines_append(char ***items, size_t *count, size_t max, const char *fmt,
                                                       ...);
void lines_free(char **items, size_t count);

#endif
