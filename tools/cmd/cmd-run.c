/*
 * cmd-run.c: `giltrace run [-o PATH] [--mode full|ring] -- CMD...`
 *
 * Runs CMD with libgiltrace.so preloaded, passes its exit status through,
 * says where the traces went and prints their findings on stderr (with
 * --check, error findings make the exit status 1).
 *
 * Where traces go.  The shim writes every trace straight to its final
 * name: run hands it PATH made absolute against run's own folder (so a
 * child that changes folder still writes there), and the shim creates the
 * first trace as PATH and every later one as PATH with its pid before the
 * extension (trace.4242.gtr), never over an existing file; %p in PATH, in
 * the file name or in a folder name, is the pid.  Nothing is moved
 * afterwards, so a trace is where -o says even when run itself dies of
 * SIGKILL (a CI timeout), and run never renames a file a process still
 * writes (the shim stops growing a trace whose name has moved).  Afterwards
 * run finds the traces of the run by name: those matching PATH that did not
 * exist before CMD started (so another run writing to the same names at the
 * same time, e.g. -o 'ci/%p.gtr' in parallel jobs, has its traces listed
 * too: a trace does not record which run started it).  An existing PATH is
 * refused, not replaced.
 *
 * Signals.  CMD starts with the signal dispositions and mask run was given
 * (nothing ignored that was not ignored before: python's Ctrl-C works).
 * run catches SIGINT, SIGQUIT, SIGTERM and SIGHUP (unless they were
 * ignored when it started), so that it outlives CMD and lists its traces:
 * - one sent by the terminal (si_code SI_KERNEL) went to the whole
 *   foreground process group, CMD included: run only waits;
 * - one sent to run by a process (kill, a CI timeout) is forwarded to CMD.
 * If CMD then dies of that signal, run dies of it too once the traces are
 * listed (the calling shell or CI sees an interrupted or terminated job,
 * as without giltrace); if CMD handles it and exits, run exits as CMD did.
 * A signal sent by a process to run's whole process group reaches CMD
 * twice (directly and forwarded): run cannot tell it from one sent to run
 * alone.
 *
 * --timeout and --exit-timeout.  While a limit runs, run polls for CMD's
 * end (every 50 ms) instead of blocking in waitid.  Past --timeout, each
 * traced process of CMD still running gets its hang snapshot
 * (hang-snapshot.h), then CMD and its descendants get --timeout-signal:
 * not the process group, which is run's own (CMD stays in the terminal's
 * foreground group, see above).  For --exit-timeout run reads the headers
 * of CMD's traces every 200 ms: one whose process began finalization
 * longer ago than the limit (finalizing_mono_ns, which the shim sets) and
 * still runs is the hang of bpo-36469 and gh-96387, at exit; that process
 * alone gets its snapshot and the signal, and CMD, if it was another
 * process, goes on as it would after a worker died.
 */
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <limits.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "builtin.h"
#include "format.h"
#include "hang-snapshot.h"
#include "shim-env.h"
#include "suppressions.h"
#include "trace.h"
#include "usage.h"

static const char usage_text[] =
        "usage: giltrace run [-o PATH] [--mode full|ring] [--ring-size MIB] [--check] [--verbose]\n"
        "                    [--timeout T] [--exit-timeout T] [--timeout-signal SIG]\n"
        "                    [--provoke SPEC] [--suppressions FILE] -- CMD [ARGS...]\n\n"
        "  -o, --output PATH   trace of the first python process (default giltrace.gtr);\n"
        "                      other python processes get PATH with their pid added;\n"
        "                      %p in PATH (also in a folder name) names every trace\n"
        "                      by its pid; a relative PATH is relative to the\n"
        "                      current folder, whatever folder CMD changes to; an\n"
        "                      existing PATH is never replaced: run refuses to start\n"
        "  --mode full|ring    full: keep every event (default); ring: keep the last\n"
        "                      --ring-size MiB per thread (default 4)\n"
        "  --check             exit with status 1 if a finding of severity error\n"
        "                      appeared (findings are printed on stderr either way)\n"
        "  --verbose           the shim says when it starts and stops tracing\n"
        "  --timeout T         if CMD still runs after T (30s, 500ms, 10m; a bare\n"
        "                      number is seconds), take a snapshot of every thread's\n"
        "                      stack of each traced process still running (beside\n"
        "                      its trace, TRACE.snapshot), then end CMD and its\n"
        "                      descendants; check reports the hang (exit-hang)\n"
        "  --exit-timeout T    if a traced process of CMD has not exited T after\n"
        "                      its finalization began (Py_FinalizeEx), take the\n"
        "                      snapshot of its threads, then end it and its\n"
        "                      descendants (CMD goes on if it was not CMD);\n"
        "                      check reports the hang (exit-hang)\n"
        "  --timeout-signal SIG  what ends them after the snapshot (KILL, TERM,\n"
        "                      ABRT, ... or a number; default KILL)\n"
        "  --provoke SPEC      make finalization's races happen on purpose (the\n"
        "                      shim's provoke=, docs/options.md): a comma list of\n"
        "                      exit-delay[=DURATION], exit-delay-after-free[=DURATION],\n"
        "                      poison, jitter[=US][,seed=N]; reports say so\n"
        "  --suppressions FILE take out the findings FILE's rules match (as check's\n"
        "                      --suppressions): counted, not shown, not in the status\n\n"
        "Traces are written in place while CMD runs, so they are at PATH even if\n"
        "run is killed.  CMD gets the terminal's signals as without giltrace;\n"
        "SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to run are passed on to CMD.\n\n"
        "GILTRACE_OPTIONS in the environment is passed on (e.g. stacks=all,\n"
        "stack_depth=48; see README.md); run sets output, mode, ring_size,\n"
        "verbose and check itself.\n\n"
        "exit status: CMD's own (128+N if a signal N killed it; if run was sent\n"
        "that signal itself, run dies of it too); 124 when --timeout or\n"
        "--exit-timeout ended it;\n"
        "with --check, 1 when a trace has error findings; 2 usage error\n";

/* ---- where the traces go --------------------------------------------------- */

/* -o made absolute against our folder: the shim would resolve a relative
 * one against the folder of each process when it starts tracing. */
static void absolute_template(char *out, size_t size, const char *output)
{
	char cwd[PATH_MAX];
	int n;
	if (output[0] == '/')
		n = snprintf(out, size, "%s", output);
	else if (!getcwd(cwd, sizeof cwd))
		die("-o '%s': cannot name the current folder (%s); give an absolute path", output, strerror(errno));
	else
		n = snprintf(out, size, "%s/%s", cwd, output);
	if (n < 0 || (size_t)n >= size)
		die("-o '%s': the trace path is longer than the shim takes (%d bytes)", output, SHIM_OUTPUT_MAX - 1);
	if (strchr(out, ':'))
		die("-o '%s': the trace path '%s' contains ':', which separates GILTRACE_OPTIONS; "
		    "give a path without ':'", output, out);
}

/* The template without %p, as the shim names the file (%% is %). */
static void expand_fixed(char *out, size_t size, const char *tmpl)
{
	size_t n = 0;
	for (const char *s = tmpl; *s && n + 1 < size; s++) {
		if (s[0] == '%' && s[1] == '%')
			s++;
		out[n++] = *s;
	}
	out[n] = '\0';
}

/* Where the shim inserts its tag (pid or number) into a name made from
 * tmpl: before the extension of the last component, else at the end (the
 * shim's insert_tag; %p expands to digits, which moves neither). */
static size_t tag_position(const char *tmpl)
{
	const char *slash = strrchr(tmpl, '/');
	const char *dot = strrchr(slash ? slash : tmpl, '.');
	if (!dot || dot == (slash ? slash + 1 : tmpl))
		return strlen(tmpl);
	return (size_t)(dot - tmpl);
}

/* A growing string: a glob pattern or a regular expression being built. */
struct pattern_buf {
	char *s;
	size_t len, size;
};

static void pattern_append(struct pattern_buf *b, const char *s)
{
	size_t n = strlen(s);
	if (b->len + n + 1 > b->size) {
		b->size = (b->len + n + 1) * 2;
		b->s = realloc(b->s, b->size);
		if (!b->s)
			die("out of memory");
	}
	memcpy(b->s + b->len, s, n + 1);
	b->len += n;
}

/* tmpl[from, to) as a glob pattern (want_regex false) or an extended
 * regular expression: %p is any digits, %% is %, the rest literal. */
static void pattern_append_template(struct pattern_buf *b, const char *tmpl, size_t from, size_t to, bool want_regex)
{
	for (size_t i = from; i < to; i++) {
		char c[3] = { tmpl[i], 0, 0 };
		if (tmpl[i] == '%' && i + 1 < to && (tmpl[i + 1] == 'p' || tmpl[i + 1] == '%')) {
			i++;
			if (tmpl[i] == 'p') {
				pattern_append(b, want_regex ? "[0-9]+" : "[0-9]*");
				continue;
			}
			c[0] = '%';
		}
		if (strchr(want_regex ? "\\.[]()*+?{}|^$" : "\\*?[", c[0])) {
			c[1] = c[0];
			c[0] = '\\';
		}
		pattern_append(b, c);
	}
}

/* A file that may be a trace of this run. */
struct found_trace {
	char *path;
	dev_t dev;
	ino_t ino;
	bool have_header;
	struct gtr_file_header header;
};

struct trace_list {
	struct found_trace *items;
	size_t n;
};

static void trace_list_free(struct trace_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i].path);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static bool trace_list_has(const struct trace_list *l, const struct found_trace *t)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->items[i].dev == t->dev && l->items[i].ino == t->ino && !strcmp(l->items[i].path, t->path))
			return true;
	return false;
}

/* Every regular file the shim could have created from tmpl: the name
 * itself (%p any pid) and its numbered neighbours (name.<pid>.gtr,
 * name.<pid>.<n>.gtr; with %p name.<n>.gtr), minus those in `skip`. */
static void list_traces(const char *tmpl, const struct trace_list *skip, struct trace_list *out)
{
	bool has_pid = strstr(tmpl, "%p") != NULL;
	size_t tag = tag_position(tmpl), end = strlen(tmpl);
	struct pattern_buf g = { 0 }, r = { 0 };
	pattern_append_template(&g, tmpl, 0, tag, false);
	pattern_append(&g, "*");
	pattern_append_template(&g, tmpl, tag, end, false);
	pattern_append(&r, "^");
	pattern_append_template(&r, tmpl, 0, tag, true);
	pattern_append(&r, has_pid ? "(\\.[0-9]+)?" : "(\\.[0-9]+(\\.[0-9]+)?)?");
	pattern_append_template(&r, tmpl, tag, end, true);
	pattern_append(&r, "$");

	regex_t re;
	if (regcomp(&re, r.s, REG_EXTENDED | REG_NOSUB) != 0)
		die("cannot make a pattern of the trace path '%s'", tmpl);
	glob_t gl;
	out->items = NULL;
	out->n = 0;
	if (glob(g.s, GLOB_NOSORT | GLOB_PERIOD, NULL, &gl) == 0) {
		for (size_t i = 0; i < gl.gl_pathc; i++) {
			const char *path = gl.gl_pathv[i];
			struct stat st;
			if (regexec(&re, path, 0, NULL, 0) != 0 || lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
				continue;
			struct found_trace t = { .path = (char *)path, .dev = st.st_dev, .ino = st.st_ino };
			if (skip && trace_list_has(skip, &t))
				continue;
			struct found_trace *grown = realloc(out->items, (out->n + 1) * sizeof *grown);
			if (!grown || !(t.path = strdup(path)))
				die("out of memory");
			out->items = grown;
			out->items[out->n++] = t;
		}
		globfree(&gl);
	}
	regfree(&re);
	free(g.s);
	free(r.s);
}

/* The command's pid, listed first by compare_traces (qsort has no context
 * argument); set just before the sort. */
static pid_t sort_first_pid;

/* The command's own trace first, then by start time. */
static int compare_traces(const void *a, const void *b)
{
	const struct found_trace *x = a, *y = b;
	bool xf = x->have_header && x->header.pid == sort_first_pid;
	bool yf = y->have_header && y->header.pid == sort_first_pid;
	if (xf != yf)
		return xf ? -1 : 1;
	if (x->have_header != y->have_header)
		return x->have_header ? -1 : 1;
	if (x->header.start_realtime_ns != y->header.start_realtime_ns)
		return x->header.start_realtime_ns < y->header.start_realtime_ns ? -1 : 1;
	return strcmp(x->path, y->path);
}

/* Refuse a PATH that would not be a new trace file. */
static void refuse_unusable_output(const char *output, const char *tmpl)
{
	size_t len = strlen(tmpl);
	if (tmpl[len - 1] == '/')
		die("-o '%s' names a folder; give a file name in it (e.g. '%s%%p.gtr')", output, output);
	if (strstr(tmpl, "%p"))
		return; /* a name taken by another pid gets a numbered neighbour */
	char path[SHIM_OUTPUT_MAX];
	struct stat st;
	expand_fixed(path, sizeof path, tmpl);
	if (lstat(path, &st) != 0)
		return;
	if (S_ISDIR(st.st_mode))
		die("-o '%s' is a folder; give a file name in it (e.g. '%s/%%p.gtr')", output, output);
	die("-o '%s' exists; run never replaces it: remove it, or choose another name "
	    "(%%p in the name makes one per process id)", output);
}

/* Refuse a PATH whose folder we cannot write, before the command runs
 * (the shim would only say so from inside it, and trace nothing): try to
 * make an entry in the deepest folder that exists on the way, where the
 * shim makes its first missing folder or the trace. */
static void refuse_unwritable_folder(const char *output, const char *tmpl)
{
	char head[SHIM_OUTPUT_MAX], dir[SHIM_OUTPUT_MAX + 32];
	const char *pid = strstr(tmpl, "%p");
	/* up to the first %p: the folders that are the same for every pid */
	snprintf(head, sizeof head, "%.*s", (int)(pid ? (size_t)(pid - tmpl) : strlen(tmpl)), tmpl);
	expand_fixed(dir, sizeof dir, head);
	struct stat st;
	int r;
	do {
		char *slash = strrchr(dir, '/');
		slash[slash == dir] = '\0'; /* "/x" -> "/" */
	} while ((r = stat(dir, &st)) != 0 && errno == ENOENT && strcmp(dir, "/"));
	if (r != 0)
		die("-o '%s': cannot write traces in '%s': %s", output, dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		die("-o '%s': '%s' is not a folder", output, dir);
	size_t n = strlen(dir);
	snprintf(dir + n, sizeof dir - n, "%s.giltrace-probe.XXXXXX", n > 1 ? "/" : "");
	if (!mkdtemp(dir)) {
		int saved = errno;
		dir[n > 1 ? n : 1] = '\0';
		die("-o '%s': cannot write traces in '%s': %s", output, dir, strerror(saved));
	}
	rmdir(dir);
}

/* ---- signals ------------------------------------------------------------------ */

/* What run catches and passes on to the command (see the note above). */
static const int forwarded_signals[] = { SIGINT, SIGQUIT, SIGTERM, SIGHUP };
#define N_FORWARDED (sizeof forwarded_signals / sizeof forwarded_signals[0])

/* The command's pid while it can be signalled (0 before it starts and once
 * it is reaped); read by the handler. */
static volatile sig_atomic_t child_pid;
/* Bit 1<<sig for each forwarded signal run itself was sent; set by the
 * handler, read after the command ended. */
static volatile sig_atomic_t received_signals;

/* async-signal-safe */
static void on_signal(int sig, siginfo_t *info, void *context)
{
	(void)context;
	int saved = errno;
	received_signals |= 1 << sig;
	/* The terminal (SI_KERNEL) signalled the whole foreground process
	 * group, the command included; a second copy would interrupt its
	 * KeyboardInterrupt handling. */
	if (info->si_code != SI_KERNEL && child_pid > 0)
		kill((pid_t)child_pid, sig);
	errno = saved;
}

static void block_forwarded(sigset_t *old)
{
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < N_FORWARDED; i++)
		sigaddset(&set, forwarded_signals[i]);
	sigprocmask(SIG_BLOCK, &set, old);
}

/* Catch the forwarded signals that were not ignored when we started (an
 * ignored one stays ignored, for us and, inherited, for the command).
 * Called with them blocked. */
static void catch_forwarded(bool caught[N_FORWARDED])
{
	for (size_t i = 0; i < N_FORWARDED; i++) {
		struct sigaction old, sa = { .sa_sigaction = on_signal, .sa_flags = SA_SIGINFO | SA_RESTART };
		caught[i] = false;
		if (sigaction(forwarded_signals[i], NULL, &old) != 0 || old.sa_handler == SIG_IGN)
			continue;
		sigemptyset(&sa.sa_mask);
		for (size_t j = 0; j < N_FORWARDED; j++)
			sigaddset(&sa.sa_mask, forwarded_signals[j]);
		caught[i] = sigaction(forwarded_signals[i], &sa, NULL) == 0;
	}
}

/* Back to the default action, for the time run spends on the traces after
 * the command ended: they are in place, nothing is lost if run dies. */
static void release_forwarded(const bool caught[N_FORWARDED])
{
	for (size_t i = 0; i < N_FORWARDED; i++)
		if (caught[i])
			signal(forwarded_signals[i], SIG_DFL);
}

/* Start the command with the signal mask run was started with (the caller
 * blocked the forwarded signals) and the dispositions it inherited. */
static pid_t run_child(char **cmd, const char *shim, const char *options, const sigset_t *mask)
{
	char *preload = shim_preload_value(shim);
	if (!preload)
		die("out of memory");
	pid_t pid = fork();
	if (pid < 0)
		die("cannot fork: %s", strerror(errno));
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, mask, NULL);
		setenv("LD_PRELOAD", preload, 1);
		setenv("GILTRACE_OPTIONS", options, 1);
		execvp(cmd[0], cmd);
		fprintf(stderr, "giltrace: cannot run '%s': %s\n", cmd[0], strerror(errno));
		_exit(127);
	}
	free(preload);
	return pid;
}

/* Wait for the command to end and reap it; no signal is forwarded to its
 * pid once it is reaped (the pid may be reused).  Returns the wait status. */
static int wait_child(pid_t pid)
{
	siginfo_t info;
	/* WNOWAIT: a zombie keeps its pid, so the handler may still kill() it */
	while (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) != 0 && errno == EINTR)
		;
	sigset_t old;
	block_forwarded(&old);
	int wstatus = 0;
	while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	child_pid = 0;
	sigprocmask(SIG_SETMASK, &old, NULL);
	return wstatus;
}

/* ---- --timeout ------------------------------------------------------------------ */

/* run's status when --timeout ended the command, as timeout(1)'s. */
#define EXIT_TIMED_OUT 124

#define NS_PER_S 1000000000ull
/* After --timeout-signal, how long the command gets before SIGKILL. */
#define KILL_GRACE_NS (2 * NS_PER_S)
/* How often run looks whether the command ended, while a limit runs. */
#define POLL_NS (50 * 1000000ull)

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* "KILL", "SIGKILL" or a number; -1 if none. */
static int parse_signal(const char *text)
{
	char *end;
	long n = strtol(text, &end, 10);
	if (*text && !*end)
		return n > 0 && n < NSIG ? (int)n : -1;
	if (!strncmp(text, "SIG", 3))
		text += 3;
	for (int sig = 1; sig < NSIG; sig++) {
		const char *abbrev = sigabbrev_np(sig);
		if (abbrev && !strcmp(abbrev, text))
			return sig;
	}
	return -1;
}

/* The limits on the command: --timeout on CMD, --exit-timeout on each of
 * its traced processes once it began finalization. */
struct limits {
	uint64_t timeout_ns;        /* 0: none */
	uint64_t exit_timeout_ns;   /* 0: none */
	int signal;                 /* --timeout-signal */
	const char *cmd;            /* CMD's name, for the messages */
	const char *tmpl;           /* where its traces go, and those that */
	const struct trace_list *before; /* were there before it started */
};

/* How often run reads the headers of the command's traces for
 * --exit-timeout: a limit of a few seconds is met within this. */
#define EXIT_POLL_NS (200 * 1000000ull)

/* The paths of a trace list, for the hang-snapshot calls. */
static char **paths_of(const struct trace_list *traces)
{
	char **paths = calloc(traces->n ? traces->n : 1, sizeof *paths);
	if (!paths)
		die("out of memory");
	for (size_t i = 0; i < traces->n; i++)
		paths[i] = traces->items[i].path;
	return paths;
}

/* The command outlived --timeout: the snapshot of each of its traced
 * processes, then the signal to it and its descendants. */
static void end_timed_out_command(pid_t pid, const struct limits *l)
{
	char limit[32];
	fprintf(stderr, "giltrace: '%s' still runs after --timeout %s: taking a snapshot of its threads\n", l->cmd,
	        format_duration(limit, sizeof limit, l->timeout_ns));
	struct trace_list traces;
	list_traces(l->tmpl, l->before, &traces);
	char **paths = paths_of(&traces);
	hang_snapshot_traces(paths, traces.n, pid, SNAPSHOT_TIMEOUT, l->timeout_ns, true);
	free(paths);
	trace_list_free(&traces);
	const char *abbrev = sigabbrev_np(l->signal);
	fprintf(stderr, "giltrace: ending '%s' (pid %d) and its descendants with SIG%s\n", l->cmd, (int)pid,
	        abbrev ? abbrev : "?");
	hang_end_tree(pid, l->signal, KILL_GRACE_NS);
}

/* A traced process of the command that has not exited --exit-timeout after
 * finalization began: its snapshot, then the signal to it and its
 * descendants; the command goes on (a test runner sees its worker end).
 * Returns the pid ended, 0 if none was overdue. */
static pid_t end_process_hung_at_exit(pid_t pid, const struct limits *l)
{
	struct trace_list traces;
	list_traces(l->tmpl, l->before, &traces);
	char **paths = paths_of(&traces);
	size_t which = 0;
	pid_t hung = hang_exit_overdue(paths, traces.n, pid, l->exit_timeout_ns, &which);
	if (hung) {
		char limit[32], err[512] = "";
		fprintf(stderr,
		        "giltrace: pid %d began finalization and has not exited after --exit-timeout %s: taking a "
		        "snapshot of its threads\n",
		        (int)hung, format_duration(limit, sizeof limit, l->exit_timeout_ns));
		char *snap = snapshot_path_of(paths[which]);
		if (hang_snapshot_take(hung, paths[which], SNAPSHOT_FINALIZATION, l->exit_timeout_ns, err, sizeof err) == 0)
			fprintf(stderr, "giltrace: snapshot of pid %d's threads written to %s\n", (int)hung, snap);
		else
			fprintf(stderr, "giltrace: pid %d: %s\n", (int)hung, err);
		free(snap);
		const char *abbrev = sigabbrev_np(l->signal);
		fprintf(stderr, "giltrace: ending pid %d and its descendants with SIG%s\n", (int)hung,
		        abbrev ? abbrev : "?");
		hang_end_tree(hung, l->signal, KILL_GRACE_NS);
	}
	free(paths);
	trace_list_free(&traces);
	return hung;
}

/* Wait for the command to end, without reaping it, polling every POLL_NS
 * while a limit runs.  Returns true if run ended CMD itself (--timeout,
 * or --exit-timeout on CMD's own process). */
static bool wait_within_limits(pid_t pid, const struct limits *l)
{
	uint64_t start = now_ns(), next_exit_poll = start + EXIT_POLL_NS;
	for (;;) {
		siginfo_t info = { 0 };
		int r = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT | WNOHANG);
		if ((r == 0 && info.si_pid == pid) || (r != 0 && errno != EINTR))
			return false;
		uint64_t now = now_ns();
		if (l->timeout_ns && now - start >= l->timeout_ns) {
			end_timed_out_command(pid, l);
			return true;
		}
		if (l->exit_timeout_ns && now >= next_exit_poll) {
			if (end_process_hung_at_exit(pid, l) == pid)
				return true;
			next_exit_poll = now_ns() + EXIT_POLL_NS;
		}
		struct timespec nap = { 0, (long)POLL_NS };
		nanosleep(&nap, NULL);
	}
}

/* ---- the command -------------------------------------------------------------- */

int cmd_run(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "mode", required_argument, NULL, 'm' },
		{ "ring-size", required_argument, NULL, 'r' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "check", no_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "timeout-signal", required_argument, NULL, 's' },
		{ "exit-timeout", required_argument, NULL, 'x' },
		{ "provoke", required_argument, NULL, 'P' },
		{ "suppressions", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *output = "giltrace.gtr", *mode = "full", *provoke = NULL;
	unsigned long ring_size = 4;
	bool verbose = false, check = false;
	struct limits limits = { .signal = SIGKILL };
	struct suppressions supp = { 0 };
	char err[600];
	int c;
	/* "+": stop at the first non-option, CMD's own options are CMD's */
	while ((c = getopt_long(argc, argv, "+o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			output = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "full") && strcmp(optarg, "ring"))
				die("--mode must be full or ring, not '%s'", optarg);
			mode = optarg;
			break;
		case 'r': {
			char *end;
			ring_size = strtoul(optarg, &end, 10);
			if (*end || ring_size < 1 || ring_size > 4096)
				die("--ring-size must be a number of MiB from 1 to 4096, not '%s'", optarg);
			break;
		}
		case 'v':
			verbose = true;
			break;
		case 'c':
			check = true;
			break;
		case 't':
			if (parse_duration(optarg, &limits.timeout_ns) != 0)
				die("--timeout: '%s' is not a time; write it like 30 (seconds), 30s, 500ms, 10m", optarg);
			break;
		case 'x':
			if (parse_duration(optarg, &limits.exit_timeout_ns) != 0)
				die("--exit-timeout: '%s' is not a time; write it like 10 (seconds), 10s, 500ms", optarg);
			break;
		case 's':
			if ((limits.signal = parse_signal(optarg)) < 0)
				die("--timeout-signal: '%s' is not a signal; write it like KILL, TERM or 9", optarg);
			break;
		case 'S':
			suppressions_free(&supp);
			if (suppressions_load(&supp, optarg, err, sizeof err) != 0)
				die("%s", err);
			break;
		case 'P':
			if (!*optarg || strchr(optarg, ':'))
				die("--provoke '%s' must be non-empty and contain no ':'", optarg);
			provoke = optarg;
			break;
		case 'h':
			return usage(usage_text, true);
		default:
			return usage(usage_text, false);
		}
	}
	if (optind >= argc)
		return usage(usage_text, false);
	if (!*output || strchr(output, ':'))
		die("-o '%s': the trace path must be non-empty and contain no ':'", output);

	char shim[PATH_MAX], tmpl[SHIM_OUTPUT_MAX];
	if (shim_find(shim) != 0)
		return EXIT_UNUSABLE;
	absolute_template(tmpl, sizeof tmpl, output);
	refuse_unusable_output(output, tmpl);
	refuse_unwritable_folder(output, tmpl);
	char options[GTR_OPTIONS_MAX];
	if (shim_options(options, sizeof options, tmpl, mode, ring_size, verbose) != 0 ||
	    (provoke && shim_options_add(options, sizeof options, "provoke", provoke) != 0))
		die("GILTRACE_OPTIONS and the trace path '%s' make options longer than the shim reads (%d bytes)",
		    tmpl, GTR_OPTIONS_MAX - 1);

	/* Traces of earlier runs that match the name are not this run's. */
	struct trace_list before;
	list_traces(tmpl, NULL, &before);

	/* Blocked across fork, so a signal sent meanwhile is forwarded once
	 * the handler knows the command's pid. */
	sigset_t mask;
	bool caught[N_FORWARDED];
	block_forwarded(&mask);
	pid_t pid = run_child(argv + optind, shim, options, &mask);
	catch_forwarded(caught);
	child_pid = pid;
	sigprocmask(SIG_SETMASK, &mask, NULL);

	limits.cmd = argv[optind];
	limits.tmpl = tmpl;
	limits.before = &before;
	bool timed_out = (limits.timeout_ns || limits.exit_timeout_ns) && wait_within_limits(pid, &limits);
	int wstatus = wait_child(pid);
	release_forwarded(caught);
	int status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
	if (WIFSIGNALED(wstatus))
		fprintf(stderr, "giltrace: '%s' was killed by signal %d\n", argv[optind], WTERMSIG(wstatus));

	struct trace_list traces;
	list_traces(tmpl, &before, &traces);
	trace_list_free(&before);
	for (size_t i = 0; i < traces.n; i++)
		traces.items[i].have_header = trace_read_header(traces.items[i].path, &traces.items[i].header) == 0;
	sort_first_pid = pid;
	if (traces.n > 1)
		qsort(traces.items, traces.n, sizeof *traces.items, compare_traces);
	char **paths = paths_of(&traces);
	for (size_t i = 0; i < traces.n; i++) {
		const struct found_trace *t = &traces.items[i];
		if (!t->have_header) {
			fprintf(stderr, "giltrace: trace written to %s (its header is unreadable)\n", t->path);
			continue;
		}
		const struct gtr_file_header *h = &t->header;
		bool running = !(h->flags & GTR_FLAG_CLOSED) && h->pid > 0 &&
		               (kill((pid_t)h->pid, 0) == 0 || errno == EPERM);
		fprintf(stderr, "giltrace: trace of pid %d (python %.*s) written to %s%s\n", (int)h->pid,
		        (int)strcspn(h->py_version, " "), h->py_version, t->path,
		        running ? " (the process still runs: the trace is still being written)" : "");
	}
	if (traces.n == 0)
		fprintf(stderr, "giltrace: no python process ran under '%s'; no trace written\n", argv[optind]);
	/* the findings, like the shim prints them at exit when run without us */
	int findings = traces.n ? check_paths(paths, traces.n, stderr, false, true, supp.count ? &supp : NULL)
	                        : EXIT_CLEAN;
	suppressions_free(&supp);
	free(paths);
	trace_list_free(&traces);

	/* Sent the signal that ended the command: end the same way, so that a
	 * shell or CI job sees an interrupted or terminated job. */
	if (WIFSIGNALED(wstatus) && (received_signals & (1 << WTERMSIG(wstatus))))
		die_of_signal(WTERMSIG(wstatus));
	if (check && findings == EXIT_FINDINGS)
		return EXIT_FINDINGS;
	return timed_out ? EXIT_TIMED_OUT : status;
}
