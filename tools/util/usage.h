/*
 * usage.h: one error style for the CLI (after git's usage.c).
 *
 * die() prints "giltrace: <message>" and exits with EXIT_UNUSABLE (and
 * die_of_signal() ends the process as a signal would);
 * print_error() and warning() print and return.  Messages are lowercase,
 * without a full stop, with the subject quoted.  Only the cmd_* layer calls
 * die().  Not error(): that is glibc's error(3), which libdw calls, and a
 * definition here would take its calls.
 */
#ifndef GILTRACE_USAGE_H
#define GILTRACE_USAGE_H

#include <stdbool.h>

/* Exit statuses shared by every command (documented in giltrace --help). */
enum {
	EXIT_CLEAN = 0,    /* no error findings */
	EXIT_FINDINGS = 1, /* error findings (check, run --check) */
	EXIT_UNUSABLE = 2, /* unusable input or usage error */
};

/* A command's usage text: on stdout, returning EXIT_CLEAN, when it was
 * asked for (-h); else on stderr, returning EXIT_UNUSABLE (a bad option or
 * operand). */
int usage(const char *text, bool asked);
__attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) int print_error(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void warning(const char *fmt, ...);
/* Die of sig, as the command run or stressed did, so that the calling
 * shell or CI job sees an interrupted or terminated job; no core file of
 * our own. */
__attribute__((noreturn)) void die_of_signal(int sig);

#endif
