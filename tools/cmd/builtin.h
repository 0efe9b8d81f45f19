/*
 * builtin.h: the subcommands.  Each lives in tools/cmd-<name>.c, parses its
 * own options and owns its usage text; main.c holds the table.
 */
#ifndef GILTRACE_BUILTIN_H
#define GILTRACE_BUILTIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

int cmd_run(int argc, char **argv);
int cmd_stress(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_timeline(int argc, char **argv);
int cmd_export(int argc, char **argv);

struct suppressions;

/* check's work, shared with `run --check`: findings of the traces (or
 * folders) in paths, less those supp (or NULL) takes out, printed on out;
 * returns check's exit status. */
int check_paths(char *const *paths, size_t n, FILE *out, bool as_json, bool quiet_if_clean,
                struct suppressions *supp);

#endif
