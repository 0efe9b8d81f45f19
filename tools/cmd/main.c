/*
 * main.c: giltrace's entry point and command table (after git's
 * commands[]): the table drives both dispatch and `giltrace help`.
 */
#include <stdio.h>
#include <string.h>

#include "builtin.h"
#include "usage.h"
#include "version.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "run", cmd_run, "run a command with the shim preloaded and collect its traces" },
	{ "stress", cmd_stress, "run a command many times under the shim; keep the failed runs' traces" },
	{ "check", cmd_check, "findings only, for CI: traces or folders of traces" },
	{ "report", cmd_report, "GIL statistics, handoffs and the finalization timeline of traces" },
	{ "timeline", cmd_timeline, "GIL lanes per thread in the terminal, around finalization by default" },
	{ "export", cmd_export, "a trace as Chrome trace-event JSON, for ui.perfetto.dev and chrome://tracing" },
	{ "dump", cmd_dump, "every event of a trace in time order, one per line" },
};

static void print_help(FILE *out)
{
	fputs("usage: giltrace <command> [options] [args]\n\n"
	      "Trace GIL handoffs and interpreter finalization in CPython processes.\n\n"
	      "commands:\n",
	      out);
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fputs("  version  this giltrace's version (also --version)\n"
	      "\n'giltrace <command> --help' describes a command.\n\n"
	      "exit status:\n"
	      "  run          the command's own status (128+N if signal N killed it);\n"
	      "               with --check, 1 if a finding of severity error appeared\n"
	      "  stress       0 no run failed, 1 a run failed\n"
	      "  check        1 error findings; else 2 missing, unreadable or incomplete\n"
	      "               evidence (a cut copy, a killed process, no trace found);\n"
	      "               else 0: every trace complete, no error findings\n"
	      "  report, timeline, export, dump\n"
	      "               0 success, 2 unusable input\n"
	      "  every command: 2 on a usage error\n",
	      out);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		print_help(stderr);
		return EXIT_UNUSABLE;
	}
	const char *name = argv[1];
	if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")) {
		print_help(stdout);
		return EXIT_CLEAN;
	}
	if (!strcmp(name, "version") || !strcmp(name, "--version")) {
		printf("giltrace %s\n", GILTRACE_VERSION);
		return EXIT_CLEAN;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(name, commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	die("'%s' is not a giltrace command; see 'giltrace help'", name);
}
