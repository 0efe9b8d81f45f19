/*
 * exit-check.c: findings on stderr when the traced process ends.
 *
 * Design note.  With the shim preloaded by environment only (a buildbot
 * exporting LD_PRELOAD and GILTRACE_OPTIONS), nobody runs the CLI, so the
 * process reports its own findings at exit, the way a sanitizer does.  The
 * analysis is not repeated here: once the trace is closed, the shim runs
 * `giltrace check --quiet-if-clean TRACE` (found next to libgiltrace.so,
 * or at the `giltrace=` option) with posix_spawn, lets it write on our
 * stderr and waits for it.  The analysis so runs in its own process, with
 * its own heap: whatever the traced program did to its memory cannot
 * break it, and the one implementation of the detectors is the CLI's.
 * `giltrace run` turns this off (check=0) and reports by itself.
 *
 * What it cannot do: report a process that dies by a signal or SIGKILL
 * (no destructor runs); `giltrace check` on the trace left behind does.
 */
#include <dlfcn.h>
#include <errno.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"

extern char **environ;

/* dirname(libgiltrace.so) + "/giltrace" into out; false if unknown. */
static bool giltrace_next_to_shim(char *out, size_t size)
{
	Dl_info self;
	if (!dladdr((void *)giltrace_next_to_shim, &self) || !self.dli_fname)
		return false;
	const char *slash = strrchr(self.dli_fname, '/');
	size_t dir = slash ? (size_t)(slash - self.dli_fname) : 0;
	if (dir + sizeof "/giltrace" > size)
		return false;
	memcpy(out, slash ? self.dli_fname : ".", slash ? dir : 1);
	strcpy(out + (slash ? dir : 1), "/giltrace");
	return true;
}

void exit_check_run(const char *trace_path)
{
	static char program[4096];
	int saved_errno = errno;
	if (shim_options.giltrace[0])
		strcpy(program, shim_options.giltrace);
	else if (!giltrace_next_to_shim(program, sizeof program))
		return;
	if (access(program, X_OK) != 0) {
		const char *parts[] = { "cannot check the trace: ", program, " is not there (set GILTRACE_OPTIONS=giltrace=PATH, or check=0)" };
		shim_say("warning", parts, 3);
		errno = saved_errno;
		return;
	}
	char *argv[] = { program, (char *)"check", (char *)"--quiet-if-clean", (char *)trace_path, NULL };
	/* its report goes to our stderr, never into the program's stdout */
	posix_spawn_file_actions_t actions;
	pid_t pid;
	if (posix_spawn_file_actions_init(&actions) != 0) {
		errno = saved_errno;
		return;
	}
	posix_spawn_file_actions_adddup2(&actions, 2, 1);
	if (posix_spawn(&pid, program, &actions, NULL, argv, environ) == 0) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	posix_spawn_file_actions_destroy(&actions);
	errno = saved_errno;
}
