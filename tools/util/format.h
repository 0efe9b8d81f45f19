/*
 * format.h: human-readable numbers shared by the text views.
 */
#ifndef GILTRACE_FORMAT_H
#define GILTRACE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* "812 ns", "12.3 us", "4.56 ms", "1.234 s"; returns buf. */
const char *format_duration(char *buf, size_t size, uint64_t ns);

/* "30" (seconds), "30s", "500ms", "10m", "2h" to ns: 0, or -1 when it is
 * not a positive time. */
int parse_duration(const char *text, uint64_t *ns);

#endif
