/*
 * format.h: human-readable numbers shared by the text views.
 */
#ifndef GILTRACE_FORMAT_H
#define GILTRACE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* "812 ns", "12.3 us", "4.56 ms", "1.234 s"; returns buf. */
const char *format_duration(char *buf, size_t size, uint64_t ns);

#endif
