/*
 * builtin.h: the subcommands.  Each lives in tools/cmd-<name>.c, parses its
 * own options and owns its usage text; main.c holds the table.
 */
#ifndef GILTRACE_BUILTIN_H
#define GILTRACE_BUILTIN_H

int cmd_run(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_dump(int argc, char **argv);

#endif
