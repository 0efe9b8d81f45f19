#include "lines.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lines_vappend(char ***items, size_t *count, size_t max, const char *fmt, va_list ap)
{
	if (*count >= max)
		return;
	char line[512];
	vsnprintf(line, sizeof line, fmt, ap);
	char **grown = realloc(*items, (*count + 1) * sizeof *grown);
	if (!grown)
		return;
	*items = grown;
	if ((grown[*count] = strdup(line)))
		(*count)++;
}

void lines_append(char ***items, size_t *count, size_t max, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	lines_vappend(items, count, max, fmt, ap);
	va_end(ap);
}

void lines_free(char **items, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(items[i]);
	free(items);
}
