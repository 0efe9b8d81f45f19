#include "docs.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* dir/rel/findings.md exists: then dir/rel, normalised, in out. */
static int try(char *out, size_t size, const char *dir, const char *rel)
{
	char probe[PATH_MAX + 64], real[PATH_MAX];
	snprintf(probe, sizeof probe, "%s/%s/findings.md", dir, rel);
	if (access(probe, R_OK) != 0 || !realpath(probe, real))
		return 0;
	*strrchr(real, '/') = '\0';
	snprintf(out, size, "%s", real);
	return 1;
}

const char *docs_dir(void)
{
	static char found[PATH_MAX];
	if (found[0])
		return found;
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			if (try(found, sizeof found, exe, "../share/doc/giltrace") || try(found, sizeof found, exe, "../docs") ||
			    try(found, sizeof found, exe, "../../docs"))
				return found;
		}
	}
	snprintf(found, sizeof found, "docs");
	return found;
}
