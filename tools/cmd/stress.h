/*
 * stress.h: what `giltrace stress` shares between its loop (cmd-stress.c:
 * starting, timing and reaping the runs) and its verdicts (stress-verdict.c:
 * whether a run failed and why, which files stay, the summary).
 */
#ifndef GILTRACE_STRESS_H
#define GILTRACE_STRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Why a run failed, in the order the first that applies names it: a
 * finding says most (a crash or a hang often follows from it). */
enum run_reason {
	REASON_PASSED,
	REASON_FINDING,         /* a trace has an error finding */
	REASON_TIMEOUT,         /* outlived --timeout: killed */
	REASON_SIGNAL,          /* died of a signal */
	REASON_STATUS,          /* exited with another status than --expect-status */
	REASON_TRACE_UNUSABLE,  /* a trace unreadable, cut short or out of space */
	REASON_NO_TRACE,        /* no python process left a trace */
};

/* The session, as the verdicts need it. */
struct stress_session {
	const char *dir;        /* where traces and logs go, as the user named it */
	int expect_status;
	bool keep_all;          /* keep every run's files, not only failed ones' */
};

/* A run that ended, as the loop saw it. */
struct run_end {
	unsigned long number;   /* from 1 */
	pid_t pid;
	int wstatus;            /* waitpid's */
	bool timed_out;
	bool exit_hung;         /* timed out by --exit-timeout */
	bool ended_by_us;       /* by Ctrl-C or --until-fail: not judged */
	uint64_t duration_ns;
};

/* A failed run. */
struct failure {
	unsigned long run;
	pid_t pid;
	enum run_reason reason;
	char *label;            /* "freed-tstate-use (PyEval_RestoreThread)", "timeout" */
	char *signature;        /* label and, for a finding with a stack, its top frames */
	char **reasons;         /* every reason that applied, in order, as text */
	size_t reason_count;
	char **traces;          /* kept, paths under dir */
	size_t trace_count;
	char *log;              /* kept stdout+stderr, or NULL (none, or empty) */
	uint64_t duration_ns;
	uint64_t jitter_seed;   /* provoke=jitter's seed in its trace, 0 none */
};

struct stress_results {
	unsigned long runs;     /* ended and judged (interrupted ones are not) */
	struct failure *failures;
	size_t failed, cap;
};

/* The traces of run `number` so far (run-N.*.gtr in dir), the leader's
 * (pid `leader`, 0 none) first; the count in *n.  Free each and the array. */
char **stress_run_traces(const char *dir, unsigned long number, pid_t leader, size_t *n);

/* Judge a run that ended: analyse its traces, keep its files (traces
 * run-N.PID.gtr, log run-N.log) if it failed or keep_all, else remove
 * them, and count it in res.  Returns true if it failed.  Dies only when
 * out of memory. */
bool stress_judge(const struct stress_session *s, const struct run_end *e, struct stress_results *res);
/* Remove the files of run `number`, which was ended by stress itself
 * (Ctrl-C, --until-fail) and is not counted. */
void stress_discard(const struct stress_session *s, unsigned long number);

/* How the session ended, for the summary. */
struct stress_summary {
	uint64_t elapsed_ns;
	unsigned jobs;
	bool interrupted;       /* by a signal */
	bool until_fail_hit;    /* stopped at the first failure */
	const char *dir;        /* where the kept files are, NULL if none */
};

void stress_print_text(FILE *out, const struct stress_results *res, const struct stress_summary *sum);
void stress_print_json(FILE *out, const struct stress_results *res, const struct stress_summary *sum);
void stress_results_free(struct stress_results *res);

#endif
