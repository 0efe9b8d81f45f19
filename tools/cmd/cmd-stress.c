/*
 * cmd-stress.c: `giltrace stress [-n N | --until-fail | --duration T]
 * [-j J] [--timeout T] [-o DIR] -- CMD...`: run CMD many times under the
 * shim, J at a time, to catch a flaky failure, and keep the evidence of
 * the runs that failed.
 *
 * Each run is started as `run` starts its command (shim-env.h), in ring
 * mode by default, so that a trace stays a few MiB however long the run,
 * and with the shim's at-exit check off: stress analyses the traces itself
 * (stress-verdict.c), in this process, while the next runs go on.  The
 * loop starts a new run as soon as one ends, before judging the one that
 * ended, so the analysis costs no wall time when a core is free for it.
 *
 * Each run is the leader of a process group of its own, so that a timeout
 * (after the hang snapshot of its traced processes: hang-snapshot.h)
 * or Ctrl-C ends everything it started (SIGTERM to the group, SIGKILL
 * KILL_GRACE_NS later).  Being outside the terminal's foreground group, the
 * runs never see the terminal's Ctrl-C themselves: stress gets it, ends
 * them, and prints the summary of the runs that ended before.  Their stdin
 * is /dev/null, their stdout and stderr go to run-N.log, kept only if the
 * run fails; they inherit no descriptor giltrace opened (all close-on-exec).
 *
 * The loop waits in sigtimedwait() with SIGCHLD, SIGINT, SIGTERM and SIGHUP
 * blocked (the runs get the mask stress was started with): no handler, no
 * race between a child's end and the wait, and the timeout of the wait is
 * the next deadline (a run's timeout, its SIGKILL, the progress line).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
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
#include "stress.h"
#include "trace.h"
#include "usage.h"

static const char usage_text[] =
        "usage: giltrace stress (-n N | --until-fail | --duration T) [-j J] [--timeout T]\n"
        "                       [--exit-timeout T] [--expect-status N] [-o DIR]\n"
        "                       [--keep failed|all] [--json]\n"
        "                       [--mode ring|full] [--ring-size MIB] [--provoke SPEC]\n"
        "                       -- CMD [ARGS...]\n\n"
        "Runs CMD again and again under the shim, J at a time, and keeps the traces\n"
        "and output of the runs that failed.\n\n"
        "  -n, --runs N          run CMD N times\n"
        "  --until-fail          stop at the first failed run\n"
        "  --duration T          start no run after T (30s, 10m, 2h; a bare number is\n"
        "                        seconds); with several of these, the first reached stops\n"
        "  -j, --jobs J          runs at a time (default: the number of CPUs)\n"
        "  --timeout T           a run that lasts longer fails: a snapshot of its\n"
        "                        threads' stacks is kept beside each trace, then its\n"
        "                        process group gets SIGTERM, then SIGKILL 2 s later\n"
        "                        (default: no limit)\n"
        "  --exit-timeout T      a run with a process that has not exited T after\n"
        "                        its finalization began fails the same way (that\n"
        "                        process's snapshot is kept)\n"
        "  --expect-status N     the exit status of a good run (default 0)\n"
        "  -o, --output DIR      where the failed runs' files go: run-N.PID.gtr,\n"
        "                        run-N.log (default: a new stress-YYYYmmdd-HHMMSS);\n"
        "                        a new or empty folder\n"
        "  --keep failed|all     keep the files of failed runs (default) or of all\n"
        "  --json                the summary as JSON\n"
        "  --mode ring|full      ring: keep the last --ring-size MiB per thread\n"
        "                        (default 4); full: every event\n"
        "  --provoke SPEC        provoke finalization's races in every run (the\n"
        "                        shim's provoke=, as run --provoke; jitter without\n"
        "                        seed= gets another seed in each run, in its trace)\n\n"
        "A run fails when a trace has an error finding, it outlives --timeout or\n"
        "--exit-timeout, dies of a signal, exits with another status, or its trace\n"
        "is unusable or missing.  The summary groups the failures by signature.  GILTRACE_OPTIONS\n"
        "in the environment is passed on, as run does.\n\n"
        "exit status: 0 no run failed; 1 a run failed; 2 usage error; on Ctrl-C\n"
        "with no failure, stress dies of the signal after its summary\n";

#define NS_PER_S 1000000000ull
/* From a run's SIGTERM (timeout, Ctrl-C) to its SIGKILL. */
#define KILL_GRACE_NS (2 * NS_PER_S)
/* How often a run's trace headers are read for --exit-timeout. */
#define EXIT_POLL_NS (NS_PER_S / 5)
/* How often the progress line is redrawn. */
#define PROGRESS_EVERY_NS (NS_PER_S / 4)

/* A run under way. */
struct slot {
	bool active;
	unsigned long number;
	pid_t pid;                  /* also its process group */
	uint64_t start_ns;
	uint64_t kill_at_ns;        /* SIGKILL due, 0 none */
	uint64_t exit_poll_ns;      /* next look at its traces for --exit-timeout */
	bool timed_out;
	bool exit_hung;             /* timed out by --exit-timeout */
	bool ended_by_us;           /* Ctrl-C or --until-fail: not counted */
};

enum stop {
	STOP_NONE,
	STOP_FAILED,                /* --until-fail met a failure */
	STOP_SIGNAL,                /* SIGINT, SIGTERM or SIGHUP */
	STOP_ERROR,                 /* cannot start a run */
};

struct stress {
	/* options */
	unsigned long max_runs;     /* 0: no limit */
	bool until_fail;
	uint64_t duration_ns;       /* 0: no limit */
	uint64_t timeout_ns;        /* 0: no limit */
	uint64_t exit_timeout_ns;   /* 0: no limit */
	unsigned jobs;
	const char *mode;
	unsigned long ring_size;
	const char *provoke;        /* the shim's provoke=, or NULL */
	bool as_json;
	char **cmd;

	/* the runs' environment: ours, with LD_PRELOAD and GILTRACE_OPTIONS
	 * set; envp[options_at] is rewritten for each run */
	char **envp;
	size_t options_at;
	char options[GTR_OPTIONS_MAX + 32];
	char shim_dir[PATH_MAX * 2];  /* DIR absolute, % doubled, for output= */
	int devnull;

	struct stress_session session;
	struct stress_results results;
	struct slot *slots;
	unsigned running;
	struct run_end *ended;      /* reaped, not yet judged */
	unsigned ended_count;
	unsigned long started;
	enum stop stop;
	int stop_signal;
	bool log_warned;

	sigset_t waitset;           /* blocked, taken by sigtimedwait */
	sigset_t child_mask;        /* the mask we were started with */
	struct sigaction child_sigchld; /* SIGCHLD's disposition, for the runs */

	uint64_t t0;
	bool progress;              /* stderr is a terminal */
	uint64_t next_progress_ns;
	int progress_width;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static unsigned long parse_count(const char *text, const char *what, unsigned long max)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(text, &end, 10);
	if (!*text || *end || errno || v < 1 || v > max || *text == '-')
		die("%s must be a number from 1 to %lu, not '%s'", what, max, text);
	return v;
}

static unsigned cpu_count(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

/* Whether execvp would find cmd: said before the first run rather than
 * as N runs that exit 127. */
static bool command_exists(const char *cmd)
{
	if (strchr(cmd, '/'))
		return access(cmd, X_OK) == 0;
	const char *path = getenv("PATH");
	if (!path)
		path = "/bin:/usr/bin";
	for (const char *p = path;; p++) {
		const char *colon = strchrnul(p, ':');
		char full[PATH_MAX];
		int n = snprintf(full, sizeof full, "%.*s%s%s", (int)(colon - p), p, colon > p ? "/" : "", cmd);
		struct stat st;
		if (n > 0 && (size_t)n < sizeof full && stat(full, &st) == 0 && S_ISREG(st.st_mode) &&
		    access(full, X_OK) == 0)
			return true;
		if (!*colon)
			return false;
		p = colon;
	}
}

/* ---- the folder of the kept files ---------------------------------------------------- */

static bool folder_is_empty(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return false;
	struct dirent *de;
	bool empty = true;
	while (empty && (de = readdir(d)))
		empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
	closedir(d);
	return empty;
}

/* DIR made (or found empty), its name without trailing slashes in *dir;
 * returns whether we made it. */
static bool prepare_folder(char **dir)
{
	size_t len = strlen(*dir);
	while (len > 1 && (*dir)[len - 1] == '/')
		(*dir)[--len] = '\0';
	if (mkdir(*dir, 0777) == 0)
		return true;
	if (errno != EEXIST)
		die("-o '%s': cannot make the folder: %s", *dir, strerror(errno));
	struct stat st;
	if (stat(*dir, &st) != 0 || !S_ISDIR(st.st_mode))
		die("-o '%s' exists and is not a folder", *dir);
	if (!folder_is_empty(*dir))
		die("-o '%s' is not empty; give a new or empty folder (stress names its files run-N)", *dir);
	return false;
}

/* dir for the shim's output=: absolute (the runs may change folder), %
 * doubled, no ':' (GILTRACE_OPTIONS's separator). */
static void shim_folder(const char *dir, char *out, size_t size)
{
	char abs[PATH_MAX];
	if (!realpath(dir, abs))
		die("-o '%s': %s", dir, strerror(errno));
	if (strchr(abs, ':'))
		die("-o '%s': the path '%s' contains ':', which separates GILTRACE_OPTIONS", dir, abs);
	size_t n = 0;
	for (const char *s = abs; *s && n + 2 < size; s++) {
		if (*s == '%')
			out[n++] = '%';
		out[n++] = *s;
	}
	out[n] = '\0';
}

/* ---- starting and ending runs -------------------------------------------------------- */

/* Our environment with LD_PRELOAD set to the shim first and a slot for
 * GILTRACE_OPTIONS. */
static void build_environment(struct stress *st, const char *shim)
{
	extern char **environ;
	size_t n = 0;
	while (environ[n])
		n++;
	st->envp = calloc(n + 3, sizeof *st->envp);
	char *preload = shim_preload_value(shim);
	if (!st->envp || !preload)
		die("out of memory");
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) && strncmp(environ[i], "GILTRACE_OPTIONS=", 17))
			st->envp[k++] = environ[i];
	if (asprintf(&st->envp[k++], "LD_PRELOAD=%s", preload) < 0)
		die("out of memory");
	free(preload);
	st->options_at = k;
	st->envp[k++] = st->options;
	st->envp[k] = NULL;
}

/* GILTRACE_OPTIONS= for run `number`: its traces are DIR/run-N.PID.gtr. */
static int set_run_options(struct stress *st, unsigned long number)
{
	char output[sizeof st->shim_dir + 64];
	snprintf(output, sizeof output, "%s/run-%lu.%%p.gtr", st->shim_dir, number);
	size_t prefix = strlen("GILTRACE_OPTIONS=");
	memcpy(st->options, "GILTRACE_OPTIONS=", prefix);
	if (shim_options(st->options + prefix, sizeof st->options - prefix, output, st->mode, st->ring_size, false) != 0)
		return -1;
	return st->provoke ? shim_options_add(st->options + prefix, sizeof st->options - prefix, "provoke", st->provoke)
	                   : 0;
}

/* Send sig to a run's process group (to the run alone if it has none). */
static void signal_run(const struct slot *s, int sig)
{
	if (kill(-s->pid, sig) != 0 && errno == ESRCH)
		kill(s->pid, sig);
}

static void start_run(struct stress *st, struct slot *s)
{
	unsigned long number = st->started + 1;
	set_run_options(st, number); /* fits: checked with the largest number */
	char log[PATH_MAX + 64];
	snprintf(log, sizeof log, "%s/run-%lu.log", st->session.dir, number);
	int out = open(log, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		if (!st->log_warned)
			warning("cannot write '%s': %s; the runs' output is discarded", log, strerror(errno));
		st->log_warned = true;
		out = st->devnull;
	}
	pid_t pid = fork();
	if (pid < 0) {
		print_error("cannot start run %lu: %s", number, strerror(errno));
		if (out != st->devnull)
			close(out);
		unlink(log);
		st->stop = STOP_ERROR;
		return;
	}
	if (pid == 0) {
		setpgid(0, 0);
		sigaction(SIGCHLD, &st->child_sigchld, NULL);
		sigprocmask(SIG_SETMASK, &st->child_mask, NULL);
		dup2(st->devnull, 0);
		dup2(out, 1);
		dup2(out, 2);
		execvpe(st->cmd[0], st->cmd, st->envp);
		dprintf(2, "giltrace: cannot run '%s': %s\n", st->cmd[0], strerror(errno));
		_exit(127);
	}
	/* also here: a signal to the group must not find it missing */
	setpgid(pid, pid);
	if (out != st->devnull)
		close(out);
	st->started = number;
	*s = (struct slot){ .active = true, .number = number, .pid = pid, .start_ns = now_ns() };
	s->exit_poll_ns = s->start_ns + EXIT_POLL_NS;
	st->running++;
}

/* End every run under way: SIGTERM now, SIGKILL after the grace period,
 * or at once with sig SIGKILL.  Those not already failed are not counted. */
static void end_all(struct stress *st, int sig)
{
	uint64_t now = now_ns();
	for (unsigned i = 0; i < st->jobs; i++) {
		struct slot *s = &st->slots[i];
		if (!s->active)
			continue;
		if (!s->timed_out)
			s->ended_by_us = true;
		signal_run(s, sig);
		if (sig != SIGKILL && !s->kill_at_ns)
			s->kill_at_ns = now + KILL_GRACE_NS;
	}
}

static void free_paths(char **paths, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

/* A run that outlived --timeout: the snapshot of each of its traced
 * processes still running (run-N.PID.gtr.snapshot beside its trace),
 * before it is ended.  The loop waits meanwhile: a hung run hardly moves,
 * a snapshot takes some tens of ms. */
static void snapshot_run(const struct stress *st, const struct slot *s)
{
	size_t n;
	char **paths = stress_run_traces(st->session.dir, s->number, s->pid, &n);
	hang_snapshot_traces(paths, n, s->pid, SNAPSHOT_TIMEOUT, st->timeout_ns, false);
	free_paths(paths, n);
}

/* --exit-timeout: true if a process of the run began finalization longer
 * ago than the limit and still runs; it got its snapshot. */
static bool snapshot_if_hung_at_exit(const struct stress *st, const struct slot *s)
{
	size_t n, which = 0;
	char **paths = stress_run_traces(st->session.dir, s->number, s->pid, &n);
	pid_t hung = hang_exit_overdue(paths, n, s->pid, st->exit_timeout_ns, &which);
	char err[512];
	if (hung)
		(void)hang_snapshot_take(hung, paths[which], SNAPSHOT_FINALIZATION, st->exit_timeout_ns, err,
		                         sizeof err); /* without stacks it still names the threads */
	free_paths(paths, n);
	return hung != 0;
}

/* Runs past their timeout get their snapshot and SIGTERM, past their
 * grace SIGKILL. */
static void enforce_deadlines(struct stress *st, uint64_t now)
{
	for (unsigned i = 0; i < st->jobs; i++) {
		struct slot *s = &st->slots[i];
		if (!s->active)
			continue;
		if (st->timeout_ns && !s->timed_out && !s->ended_by_us && now - s->start_ns >= st->timeout_ns) {
			s->timed_out = true;
			snapshot_run(st, s);
		} else if (st->exit_timeout_ns && !s->timed_out && !s->ended_by_us && now >= s->exit_poll_ns) {
			s->exit_hung = s->timed_out = snapshot_if_hung_at_exit(st, s);
			s->exit_poll_ns = now_ns() + EXIT_POLL_NS;
		}
		if (s->timed_out && !s->kill_at_ns) {
			signal_run(s, SIGTERM);
			s->kill_at_ns = now_ns() + KILL_GRACE_NS; /* after the snapshot */
		}
		if (s->kill_at_ns && now >= s->kill_at_ns) {
			signal_run(s, SIGKILL);
			s->kill_at_ns = UINT64_MAX; /* sent */
		}
	}
}

/* The next deadline of a run, or UINT64_MAX. */
static uint64_t next_deadline(const struct stress *st)
{
	uint64_t next = UINT64_MAX;
	for (unsigned i = 0; i < st->jobs; i++) {
		const struct slot *s = &st->slots[i];
		if (!s->active)
			continue;
		if (st->timeout_ns && !s->timed_out && !s->ended_by_us && s->start_ns + st->timeout_ns < next)
			next = s->start_ns + st->timeout_ns;
		if (st->exit_timeout_ns && !s->timed_out && !s->ended_by_us && s->exit_poll_ns < next)
			next = s->exit_poll_ns;
		if (s->kill_at_ns && s->kill_at_ns < next)
			next = s->kill_at_ns;
	}
	return next;
}

/* Reap every run that ended into st->ended. */
static void reap(struct stress *st)
{
	int wstatus;
	pid_t pid;
	while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
		for (unsigned i = 0; i < st->jobs; i++) {
			struct slot *s = &st->slots[i];
			if (!s->active || s->pid != pid)
				continue;
			uint64_t now = now_ns();
			st->ended[st->ended_count++] = (struct run_end){
				.number = s->number,
				.pid = pid,
				.wstatus = wstatus,
				.timed_out = s->timed_out,
				.exit_hung = s->exit_hung,
				.ended_by_us = s->ended_by_us,
				.duration_ns = now - s->start_ns,
			};
			s->active = false;
			st->running--;
			break;
		}
	}
}

static bool may_start(const struct stress *st)
{
	if (st->stop != STOP_NONE || (st->max_runs && st->started >= st->max_runs))
		return false;
	return !st->duration_ns || now_ns() - st->t0 < st->duration_ns;
}

/* ---- progress ------------------------------------------------------------------------ */

static void format_left(char *buf, size_t size, double seconds)
{
	unsigned long s = (unsigned long)(seconds + 0.5);
	if (s < 60)
		snprintf(buf, size, "%lus", s);
	else if (s < 3600)
		snprintf(buf, size, "%lum%02lus", s / 60, s % 60);
	else
		snprintf(buf, size, "%luh%02lum", s / 3600, s / 60 % 60);
}

/* One line on the terminal, redrawn in place. */
static void draw_progress(struct stress *st, uint64_t now)
{
	if (!st->progress || now < st->next_progress_ns)
		return;
	st->next_progress_ns = now + PROGRESS_EVERY_NS;
	double elapsed = (double)(now - st->t0) / 1e9;
	double rate = elapsed > 0 ? (double)st->results.runs / elapsed : 0;
	char line[200], runs[48], left[48] = "";
	if (st->max_runs)
		snprintf(runs, sizeof runs, "%lu/%lu runs", st->results.runs, st->max_runs);
	else
		snprintf(runs, sizeof runs, "%lu runs", st->results.runs);
	double remaining = -1;
	if (st->max_runs && rate > 0)
		remaining = (double)(st->max_runs - st->results.runs) / rate;
	if (st->duration_ns) {
		double d = (double)st->duration_ns / 1e9 - elapsed;
		remaining = remaining < 0 || d < remaining ? (d > 0 ? d : 0) : remaining;
	}
	if (remaining >= 0 && st->stop == STOP_NONE) {
		char t[32];
		format_left(t, sizeof t, remaining);
		snprintf(left, sizeof left, ", %s left", t);
	}
	int n = snprintf(line, sizeof line, "giltrace stress: %s, %zu failed, %.1f runs/s%s%s", runs, st->results.failed,
	                 rate, left, st->stop != STOP_NONE ? ", stopping" : "");
	fprintf(stderr, "\r%s%*s", line, st->progress_width > n ? st->progress_width - n : 0, "");
	if (st->progress_width > n)
		fprintf(stderr, "\r%s", line);
	st->progress_width = n;
	fflush(stderr);
}

static void clear_progress(struct stress *st)
{
	if (st->progress && st->progress_width)
		fprintf(stderr, "\r%*s\r", st->progress_width, "");
	st->progress_width = 0;
}

/* ---- the loop ------------------------------------------------------------------------ */

static void judge_ended(struct stress *st)
{
	for (unsigned i = 0; i < st->ended_count; i++) {
		const struct run_end *e = &st->ended[i];
		if (e->ended_by_us) {
			stress_discard(&st->session, e->number);
			continue;
		}
		bool failed = stress_judge(&st->session, e, &st->results);
		if (failed && st->until_fail && st->stop == STOP_NONE) {
			st->stop = STOP_FAILED;
			end_all(st, SIGTERM);
		}
	}
	st->ended_count = 0;
}

/* Wait for a run to end, a deadline or a signal, and act on it. */
static void wait_for_event(struct stress *st)
{
	uint64_t now = now_ns();
	enforce_deadlines(st, now);
	draw_progress(st, now);
	uint64_t until = next_deadline(st);
	if (st->progress && st->next_progress_ns < until)
		until = st->next_progress_ns;
	siginfo_t info;
	int sig;
	if (until == UINT64_MAX) {
		sig = sigwaitinfo(&st->waitset, &info);
	} else {
		uint64_t wait = until > now ? until - now : 0;
		struct timespec ts = { (time_t)(wait / NS_PER_S), (long)(wait % NS_PER_S) };
		sig = sigtimedwait(&st->waitset, &info, &ts);
	}
	if (sig > 0 && sig != SIGCHLD) {
		/* first: end the runs, gently; again: at once */
		bool again = st->stop == STOP_SIGNAL;
		st->stop = STOP_SIGNAL;
		st->stop_signal = sig;
		end_all(st, again ? SIGKILL : SIGTERM);
	}
	reap(st);
}

static void run_loop(struct stress *st)
{
	for (;;) {
		for (unsigned i = 0; i < st->jobs && may_start(st); i++)
			if (!st->slots[i].active)
				start_run(st, &st->slots[i]);
		/* after starting the next runs: judging overlaps them */
		judge_ended(st);
		if (!st->running) {
			if (may_start(st))
				continue;
			break;
		}
		wait_for_event(st);
	}
}

/* Block what the loop waits for; the runs get the mask and SIGCHLD
 * disposition we were started with.  A signal ignored when we started
 * (nohup) stays ignored. */
static void setup_signals(struct stress *st)
{
	static const int stops[] = { SIGINT, SIGTERM, SIGHUP };
	sigemptyset(&st->waitset);
	sigaddset(&st->waitset, SIGCHLD);
	for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
		struct sigaction old;
		if (sigaction(stops[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
			sigaddset(&st->waitset, stops[i]);
	}
	sigprocmask(SIG_BLOCK, &st->waitset, &st->child_mask);
	/* SIGCHLD ignored would reap the runs for us */
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGCHLD, &dfl, &st->child_sigchld);
}

int cmd_stress(int argc, char **argv)
{
	enum { OPT_UNTIL_FAIL = 256, OPT_DURATION, OPT_TIMEOUT, OPT_EXIT_TIMEOUT, OPT_EXPECT, OPT_KEEP, OPT_JSON, OPT_MODE, OPT_RING,
	       OPT_PROVOKE };
	static const struct option longopts[] = {
		{ "runs", required_argument, NULL, 'n' },
		{ "until-fail", no_argument, NULL, OPT_UNTIL_FAIL },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "jobs", required_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "exit-timeout", required_argument, NULL, OPT_EXIT_TIMEOUT },
		{ "expect-status", required_argument, NULL, OPT_EXPECT },
		{ "output", required_argument, NULL, 'o' },
		{ "keep", required_argument, NULL, OPT_KEEP },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "ring-size", required_argument, NULL, OPT_RING },
		{ "provoke", required_argument, NULL, OPT_PROVOKE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct stress st = { .mode = "ring", .ring_size = 4, .devnull = -1 };
	char *dir = NULL;
	int c;
	/* "+": stop at the first non-option, CMD's own options are CMD's */
	while ((c = getopt_long(argc, argv, "+n:j:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			st.max_runs = parse_count(optarg, "-n", ULONG_MAX / 2);
			break;
		case OPT_UNTIL_FAIL:
			st.until_fail = true;
			break;
		case OPT_DURATION:
			if (parse_duration(optarg, &st.duration_ns) != 0)
				die("--duration: '%s' is not a time; write it like 30s, 10m, 2h", optarg);
			break;
		case 'j':
			st.jobs = (unsigned)parse_count(optarg, "-j", 1024);
			break;
		case OPT_TIMEOUT:
			if (parse_duration(optarg, &st.timeout_ns) != 0)
				die("--timeout: '%s' is not a time; write it like 30 (seconds), 30s, 500ms, 10m", optarg);
			break;
		case OPT_EXIT_TIMEOUT:
			if (parse_duration(optarg, &st.exit_timeout_ns) != 0)
				die("--exit-timeout: '%s' is not a time; write it like 10 (seconds), 10s, 500ms", optarg);
			break;
		case OPT_EXPECT: {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (!*optarg || *end || v < 0 || v > 255)
				die("--expect-status must be an exit status from 0 to 255, not '%s'", optarg);
			st.session.expect_status = (int)v;
			break;
		}
		case 'o':
			free(dir);
			dir = strdup(optarg);
			if (!dir || !*dir)
				die("-o must name a folder");
			break;
		case OPT_KEEP:
			if (strcmp(optarg, "failed") && strcmp(optarg, "all"))
				die("--keep must be failed or all, not '%s'", optarg);
			st.session.keep_all = !strcmp(optarg, "all");
			break;
		case OPT_JSON:
			st.as_json = true;
			break;
		case OPT_MODE:
			if (strcmp(optarg, "full") && strcmp(optarg, "ring"))
				die("--mode must be ring or full, not '%s'", optarg);
			st.mode = optarg;
			break;
		case OPT_RING:
			st.ring_size = parse_count(optarg, "--ring-size (MiB)", 4096);
			break;
		case OPT_PROVOKE:
			if (!*optarg || strchr(optarg, ':'))
				die("--provoke '%s' must be non-empty and contain no ':'", optarg);
			st.provoke = optarg;
			break;
		case 'h':
			return usage(usage_text, true);
		default:
			return usage(usage_text, false);
		}
	}
	if (optind >= argc)
		return usage(usage_text, false);
	if (!st.max_runs && !st.until_fail && !st.duration_ns)
		die("say when to stop: -n N, --until-fail or --duration T");
	st.cmd = argv + optind;
	if (!command_exists(st.cmd[0]))
		die("cannot run '%s': not found or not executable", st.cmd[0]);
	if (!st.jobs)
		st.jobs = cpu_count();

	char shim[PATH_MAX];
	if (shim_find(shim) != 0)
		return EXIT_UNUSABLE;
	if (!dir) {
		char name[64];
		time_t t = time(NULL);
		strftime(name, sizeof name, "stress-%Y%m%d-%H%M%S", localtime(&t));
		dir = strdup(name);
		if (!dir)
			die("out of memory");
	}
	bool made_dir = prepare_folder(&dir);
	st.session.dir = dir;
	shim_folder(dir, st.shim_dir, sizeof st.shim_dir);
	if (set_run_options(&st, ULONG_MAX) != 0) {
		if (made_dir)
			rmdir(dir);
		die("GILTRACE_OPTIONS and the folder '%s' make options longer than the shim reads (%d bytes)", dir,
		    GTR_OPTIONS_MAX - 1);
	}
	build_environment(&st, shim);
	st.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	st.slots = calloc(st.jobs, sizeof *st.slots);
	st.ended = calloc(st.jobs, sizeof *st.ended);
	if (st.devnull < 0 || !st.slots || !st.ended)
		die("cannot set up: %s", st.devnull < 0 ? "no /dev/null" : "out of memory");
	st.progress = isatty(2);
	setup_signals(&st);

	st.t0 = now_ns();
	run_loop(&st);
	clear_progress(&st);

	struct stress_summary sum = {
		.elapsed_ns = now_ns() - st.t0,
		.jobs = st.jobs,
		.interrupted = st.stop == STOP_SIGNAL,
		.until_fail_hit = st.stop == STOP_FAILED,
		.dir = dir,
	};
	if (folder_is_empty(dir)) {
		if (made_dir)
			rmdir(dir);
		sum.dir = NULL;
	}
	if (st.as_json)
		stress_print_json(stdout, &st.results, &sum);
	else
		stress_print_text(stdout, &st.results, &sum);
	fflush(stdout);
	int status = st.results.failed ? EXIT_FINDINGS : st.stop == STOP_ERROR ? EXIT_UNUSABLE : EXIT_CLEAN;
	stress_results_free(&st.results);
	free(st.envp[st.options_at - 1]);
	free(st.envp);
	free(st.slots);
	free(st.ended);
	free(dir);
	close(st.devnull);
	if (st.stop == STOP_SIGNAL && status == EXIT_CLEAN)
		die_of_signal(st.stop_signal);
	return status;
}
