/*
 * fuzz-readers.c: a libFuzzer harness over every command that reads a
 * trace (docs/fuzzing.md).
 *
 * Each input is written to a file and handed, as a trace, to the commands
 * themselves (cmd_check, cmd_report, cmd_timeline, cmd_export, cmd_dump)
 * with the argument vectors below: the same code a user runs, option
 * parsing, output files and symbolising included, so that no reader path
 * is left out.  Standard output goes to /dev/null; report --html and
 * export -o write real files in a private folder (output.c's temporary
 * file and rename).
 *
 * The commands end with die() when a trace is unusable, and die() calls
 * exit().  The Makefile compiles tools/ with -Dexit=giltrace_fuzz_exit, so
 * that call lands here and jumps back to the harness instead of ending the
 * fuzzer: no fork, no change to tools/.  A command that dies leaves
 * nothing allocated on the paths it takes today (it frees the trace
 * first); if one ever did, LeakSanitizer would say so.
 *
 * GILTRACE_FUZZ_ONLY=dump (a command name, or a prefix of one of the
 * lines below such as "report --html") restricts the run to those
 * commands, for a quicker look at one reader.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builtin.h"

/* The harness itself exits for real: undo the -D that the tools get (and
 * that stdlib.h's declaration got too). */
#undef exit
__attribute__((noreturn)) void exit(int status);

/* Where giltrace_fuzz_exit() returns to while a command runs. */
static jmp_buf command_exit;
/* True while a command runs (command_exit is valid). */
static bool command_running;

__attribute__((noreturn)) void giltrace_fuzz_exit(int status);

/* The tools' exit(): back to run_command() while a command runs (die()
 * after its message), else a real exit. */
void giltrace_fuzz_exit(int status)
{
	if (command_running)
		longjmp(command_exit, 1);
	exit(status);
}

/* Placeholders in the argument vectors, replaced by paths in folder. */
#define TRACE "@trace"
#define HTML "@html"
#define JSON "@json"

struct command {
	int (*fn)(int argc, char **argv);
	const char *argv[10]; /* NULL-terminated; argv[0] is the command's name */
};

/* Every reader and the options that choose a different path through it. */
static const struct command commands[] = {
	{ cmd_check, { "check", TRACE } },
	{ cmd_check, { "check", "--json", TRACE } },
	{ cmd_report, { "report", TRACE } },
	{ cmd_report, { "report", "--json", TRACE } },
	{ cmd_report, { "report", "--html", HTML, TRACE } },
	{ cmd_report, { "report", "--html", HTML, "--around", "whole", TRACE } },
	{ cmd_report, { "report", "--html", HTML, "--from", "1ms", "--to", "20ms", TRACE } },
	{ cmd_timeline, { "timeline", "--color", "never", TRACE } },
	{ cmd_timeline, { "timeline", "--around", "whole", "--color", "always", "--width", "200", TRACE } },
	{ cmd_timeline, { "timeline", "--from", "5ms", "--to", "15ms", "--color", "never", TRACE } },
	{ cmd_export, { "export", "-o", JSON, TRACE } },
	{ cmd_dump, { "dump", TRACE } },
};

#define COMMAND_COUNT (sizeof commands / sizeof commands[0])

/* The private folder and the paths in it; set by LLVMFuzzerInitialize. */
static char folder[64], trace_path[96], html_path[96], json_path[96];
/* Which commands run (GILTRACE_FUZZ_ONLY), parallel to commands[]. */
static bool selected[COMMAND_COUNT];

static void remove_folder(void)
{
	unlink(trace_path);
	unlink(html_path);
	unlink(json_path);
	rmdir(folder);
}

static bool command_matches(const struct command *c, const char *only)
{
	char line[256] = "";
	for (size_t i = 0; c->argv[i]; i++) {
		if (i)
			strncat(line, " ", sizeof line - strlen(line) - 1);
		strncat(line, c->argv[i], sizeof line - strlen(line) - 1);
	}
	return !strncmp(line, only, strlen(only));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *tmp = getenv("TMPDIR");
	snprintf(folder, sizeof folder, "%s/giltrace-fuzz.XXXXXX", tmp && *tmp && strlen(tmp) < 32 ? tmp : "/tmp");
	if (!mkdtemp(folder)) {
		fprintf(stderr, "fuzz-readers: cannot make a folder: %s\n", strerror(errno));
		exit(1);
	}
	snprintf(trace_path, sizeof trace_path, "%s/input.gtr", folder);
	snprintf(html_path, sizeof html_path, "%s/page.html", folder);
	snprintf(json_path, sizeof json_path, "%s/export.json", folder);
	atexit(remove_folder);

	const char *only = getenv("GILTRACE_FUZZ_ONLY");
	size_t chosen = 0;
	for (size_t i = 0; i < COMMAND_COUNT; i++)
		chosen += selected[i] = !only || !*only || command_matches(&commands[i], only);
	if (!chosen) {
		fprintf(stderr, "fuzz-readers: GILTRACE_FUZZ_ONLY='%s' names no command\n", only);
		exit(1);
	}
	/* symbolising must stay on this machine: no debuginfod downloads */
	unsetenv("DEBUGINFOD_URLS");
	/* the commands' results are not looked at, only how they get there */
	if (!freopen("/dev/null", "w", stdout)) {
		fprintf(stderr, "fuzz-readers: cannot open /dev/null: %s\n", strerror(errno));
		exit(1);
	}
	return 0;
}

static bool write_input(const uint8_t *data, size_t size)
{
	int fd = open(trace_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;
	size_t done = 0;
	while (done < size) {
		ssize_t n = write(fd, data + done, size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	return close(fd) == 0 && done == size;
}

/* One command on the input; its status, or 2 when it died. */
static int run_command(const struct command *c)
{
	char *argv[sizeof c->argv / sizeof c->argv[0]];
	int argc = 0;
	for (; c->argv[argc]; argc++) {
		const char *a = c->argv[argc];
		argv[argc] = (char *)(!strcmp(a, TRACE) ? trace_path
		                      : !strcmp(a, HTML) ? html_path
		                      : !strcmp(a, JSON) ? json_path
		                                         : a);
	}
	argv[argc] = NULL;
	optind = 0; /* glibc: a full reset of getopt's state, for the next command */
	/* volatile: read after longjmp */
	volatile int status = 2;
	if (setjmp(command_exit) == 0) {
		command_running = true;
		status = c->fn(argc, argv);
	}
	command_running = false;
	fflush(stdout);
	return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!write_input(data, size)) {
		fprintf(stderr, "fuzz-readers: cannot write '%s': %s\n", trace_path, strerror(errno));
		abort(); /* a full disk would make every later input meaningless */
	}
	for (size_t i = 0; i < COMMAND_COUNT; i++) {
		if (!selected[i])
			continue;
		int status = run_command(&commands[i]);
		/* every reader's documented statuses: 0, 1 (check: findings), 2 */
		if (status < 0 || status > 2 || (status == 1 && commands[i].fn != cmd_check)) {
			fprintf(stderr, "fuzz-readers: '%s' returned %d\n", commands[i].argv[0], status);
			abort();
		}
	}
	return 0;
}
