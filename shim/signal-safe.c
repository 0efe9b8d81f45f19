/*
 * signal-safe.c: output helpers the shim may use anywhere, including in a
 * fork child, at exit and (later) from a crash handler.  They only call
 * write(2) and keep errno, in the manner of CPython's faulthandler.c.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

/* async-signal-safe */
char *shim_format_u64(char *buf, uint64_t v)
{
	char tmp[21];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	buf[n] = '\0';
	return buf;
}

/* async-signal-safe: one line, assembled in a stack buffer so that it is
 * written with a single write(2) and does not interleave with others. */
void shim_say(const char *level, const char *const *parts, size_t n)
{
	char line[1024];
	size_t len = 0;
	const char *head[] = { "giltrace: ", level, ": " };
	int saved_errno = errno;
	for (size_t i = 0; i < 3 + n; i++) {
		const char *s = i < 3 ? head[i] : parts[i - 3];
		size_t l = s ? strlen(s) : 0;
		if (l > sizeof line - 2 - len)
			l = sizeof line - 2 - len;
		memcpy(line + len, s, l);
		len += l;
	}
	line[len++] = '\n';
	ssize_t ignored = write(STDERR_FILENO, line, len);
	(void)ignored;
	errno = saved_errno;
}
