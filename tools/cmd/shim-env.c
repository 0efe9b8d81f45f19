/*
 * shim-env.c: starting a program under the shim.  See shim-env.h.
 */
#include "shim-env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "usage.h"

int shim_find(char out[PATH_MAX])
{
	const char *env = getenv("GILTRACE_SHIM");
	if (env && *env) {
		if (!realpath(env, out))
			return print_error("GILTRACE_SHIM='%s' does not exist", env);
		return 0;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return print_error("cannot find my own executable (/proc/self/exe)");
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	*slash = '\0';
	const char *candidates[] = { "%s/" SHIM_NAME, "%s/../lib/giltrace/" SHIM_NAME };
	for (size_t i = 0; i < 2; i++) {
		char path[PATH_MAX + 64];
		snprintf(path, sizeof path, candidates[i], exe);
		if (access(path, R_OK) == 0 && realpath(path, out))
			return 0;
	}
	return print_error("cannot find %s next to %s; set GILTRACE_SHIM to its path", SHIM_NAME, exe);
}

char *shim_preload_value(const char *shim)
{
	const char *old = getenv("LD_PRELOAD");
	size_t len = strlen(shim) + (old ? strlen(old) : 0) + 2;
	char *value = malloc(len);
	if (!value)
		return NULL;
	if (old && *old)
		snprintf(value, len, "%s:%s", shim, old);
	else
		snprintf(value, len, "%s", shim);
	return value;
}

int shim_options(char *out, size_t size, const char *output, const char *mode, unsigned long ring_size,
                 bool verbose)
{
	const char *user = getenv("GILTRACE_OPTIONS");
	int n = snprintf(out, size, "%s%soutput=%s:mode=%s:ring_size=%lu:verbose=%d:check=0", user ? user : "",
	                 user && *user ? ":" : "", output, mode, ring_size, verbose);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int shim_options_add(char *options, size_t size, const char *key, const char *value)
{
	size_t len = strlen(options);
	int n = snprintf(options + len, size - len, ":%s=%s", key, value);
	if (n < 0 || (size_t)n >= size - len) {
		options[len] = '\0';
		return -1;
	}
	return 0;
}
