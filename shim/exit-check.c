/*
 * exit-check.c: the process's findings, reported when it ends.
 *
 * Design note.  With the shim preloaded by environment only (a buildbot
 * exporting LD_PRELOAD and GILTRACE_OPTIONS), nobody runs the CLI, so the
 * process reports its own errors at exit, the way a sanitizer does: only
 * when there is an error (option check_severity=error, the default; notes
 * such as "finalization ended a daemon thread" are CPython's normal path
 * and stay in the trace for `report` and `check`), on stderr or in the
 * file of option log_path=.  The analysis is not repeated here: once the
 * trace is closed, the shim runs `giltrace check` (found next to
 * libgiltrace.so, or at the `giltrace=` option) in a process of its own,
 * with its own heap, so that whatever the traced program did to its
 * memory cannot break it, and the one implementation of the detectors is
 * the CLI's.
 *
 * The child gets the trace as descriptor 3, opened by the shim and checked
 * to be the file it wrote (not a name someone could swap), /dev/null as
 * stdin, a pipe as stdout and stderr, and none of the program's other
 * descriptors.  The shim copies what comes through the pipe to the
 * destination, so that an empty report leaves no file, and stops the child
 * after check_timeout= seconds, so that a slow or stuck checker cannot
 * hold the program's exit.  Only the destructor runs this: _exit() is
 * reachable from signal handlers and stays async-signal-safe (init.c).
 * `giltrace run` turns it off (check=0) and reports by itself.
 *
 * What it cannot do: report a process that dies by a signal, SIGKILL or
 * _exit() (no destructor runs); `giltrace check` on the trace left behind
 * does.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

extern char **environ;

/* Descriptors handed to the child are first moved to at least this, so
 * that the dup2 actions cannot overwrite one another. */
#define HIGH_FD 10
/* The trace's number in the child: `giltrace check /dev/fd/3`. */
#define CHILD_TRACE_FD 3

/* The giltrace beside the shim, into out: PREFIX/bin/giltrace for an
 * installed shim (PREFIX/lib/giltrace), else dirname(libgiltrace.so) +
 * "/giltrace"; false if unknown. */
static bool giltrace_next_to_shim(char *out, size_t size)
{
	/* a build tree has both in build/; `make install` puts the shim in
	 * PREFIX/lib/giltrace and giltrace in PREFIX/bin: ../../bin only from
	 * there, never a giltrace that merely happens to be two folders up */
	static const char installed_dir[] = "/lib/giltrace";
	Dl_info self;
	if (!dladdr((void *)giltrace_next_to_shim, &self) || !self.dli_fname)
		return false;
	const char *slash = strrchr(self.dli_fname, '/');
	size_t dir = slash ? (size_t)(slash - self.dli_fname) : 1;
	bool installed = dir >= sizeof installed_dir - 1 &&
	                 memcmp(self.dli_fname + dir - (sizeof installed_dir - 1), installed_dir,
	                        sizeof installed_dir - 1) == 0;
	const char *name = installed ? "/../../bin/giltrace" : "/giltrace";
	if (dir + strlen(name) + 1 > size)
		return false;
	memcpy(out, slash ? self.dli_fname : ".", dir);
	strcpy(out + dir, name);
	return true;
}

static int move_high(int fd)
{
	if (fd < 0 || fd >= HIGH_FD)
		return fd;
	int high = fcntl(fd, F_DUPFD_CLOEXEC, HIGH_FD);
	close(fd);
	return high;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Where the report goes: stderr, or the log_path= file, made on first use
 * (0600, never through a symbolic link, appended to). */
struct sink {
	int fd;          /* the log file once opened, else -1 */
	bool to_stderr;  /* no log_path=, or it could not be opened */
};

static void sink_write(struct sink *s, const char *buf, size_t len)
{
	if (s->fd < 0 && !s->to_stderr) {
		char path[sizeof shim_options.log_path + 32];
		shim_expand_log_path(path, sizeof path);
		s->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
		if (s->fd < 0) {
			s->to_stderr = true;
			const char *parts[] = { "cannot write the at-exit report to '", path, "': ", strerror(errno),
				                "; it follows on stderr" };
			shim_say("warning", parts, 5);
		}
	}
	int fd = s->fd >= 0 ? s->fd : STDERR_FILENO;
	while (len > 0) {
		ssize_t w = write(fd, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		buf += w;
		len -= (size_t)w;
	}
}

/* Copy the child's output to the sink until it closes the pipe or the
 * deadline passes; false on the deadline. */
static bool relay(int from, struct sink *to, uint64_t deadline_ms)
{
	char buf[4096];
	for (;;) {
		uint64_t now = now_ms();
		if (now >= deadline_ms)
			return false;
		struct pollfd p = { .fd = from, .events = POLLIN };
		int r = poll(&p, 1, (int)(deadline_ms - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0; /* 0: timed out */
		ssize_t n = read(from, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return true;
		sink_write(to, buf, (size_t)n);
	}
}

static pid_t spawn_check(const char *program, int trace, int out)
{
	static const char *const severities[] = { [CHECK_SEVERITY_ERROR] = "error", [CHECK_SEVERITY_NOTE] = "note" };
	char trace_name[32];
	snprintf(trace_name, sizeof trace_name, "/dev/fd/%d", CHILD_TRACE_FD);
	char *argv[] = { (char *)program, (char *)"check", (char *)"--quiet-if-clean", (char *)"--min-severity",
		         (char *)severities[shim_options.check_severity], trace_name, NULL, NULL, NULL };
	if (shim_options.suppressions[0]) { /* before the trace: options first */
		argv[5] = (char *)"--suppressions";
		argv[6] = shim_options.suppressions;
		argv[7] = trace_name;
	}
	posix_spawn_file_actions_t actions;
	pid_t pid = -1;
	if (posix_spawn_file_actions_init(&actions) != 0)
		return -1;
	if (posix_spawn_file_actions_adddup2(&actions, trace, CHILD_TRACE_FD) == 0 &&
	    posix_spawn_file_actions_adddup2(&actions, out, STDOUT_FILENO) == 0 &&
	    posix_spawn_file_actions_adddup2(&actions, out, STDERR_FILENO) == 0 &&
	    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0) == 0 &&
	    posix_spawn_file_actions_addclosefrom_np(&actions, CHILD_TRACE_FD + 1) == 0 &&
	    posix_spawn(&pid, program, &actions, NULL, argv, environ) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&actions);
	return pid;
}

int exit_check_run(void)
{
	static char program[4096];
	int saved_errno = errno, status = -1;
	if (shim_options.giltrace[0])
		strcpy(program, shim_options.giltrace);
	else if (!giltrace_next_to_shim(program, sizeof program))
		goto out;
	if (access(program, X_OK) != 0) {
		const char *parts[] = { "cannot check the trace: ", program,
			                " is not there (set GILTRACE_OPTIONS=giltrace=PATH, or check=0)" };
		shim_say("warning", parts, 3);
		goto out;
	}
	if (recorder_stopped_early())
		goto out; /* its one warning said so, and where the trace is */
	int trace = move_high(recorder_reopen_for_reading());
	if (trace < 0) {
		const char *parts[] = { "cannot check the trace: '", recorder_path(),
			                "' leads to another file now; run giltrace check on the trace where it is" };
		shim_say("warning", parts, 3);
		goto out;
	}
	int pipe_fds[2];
	if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
		close(trace);
		goto out;
	}
	int from = move_high(pipe_fds[0]), to = move_high(pipe_fds[1]);
	pid_t pid = from >= 0 && to >= 0 ? spawn_check(program, trace, to) : -1;
	close(trace);
	if (to >= 0)
		close(to);
	if (pid > 0) {
		struct sink sink = { .fd = -1, .to_stderr = !shim_options.log_path[0] };
		if (!relay(from, &sink, now_ms() + (uint64_t)shim_options.check_timeout * 1000)) {
			kill(pid, SIGKILL);
			char n[24];
			const char *parts[] = { "the at-exit check took longer than ", shim_format_u64(n, shim_options.check_timeout),
				                " s and was stopped (option check_timeout=); run: giltrace check ",
				                recorder_path() };
			shim_say("warning", parts, 4);
		}
		int wstatus = 0;
		pid_t reaped;
		while ((reaped = waitpid(pid, &wstatus, 0)) < 0 && errno == EINTR)
			;
		/* not reaped (SIGCHLD ignored, another thread's waitpid(-1)): no
		 * status, so exitcode= does nothing */
		if (reaped == pid && WIFEXITED(wstatus))
			status = WEXITSTATUS(wstatus);
		if (sink.fd >= 0)
			close(sink.fd);
	}
	if (from >= 0)
		close(from);
out:
	errno = saved_errno;
	return status;
}
