/*
 * html-assets.c: the HTML report's style and scripts, embedded at build time
 * from tools/render/html/ (real files, so that they are edited, linted and read as
 * CSS and JavaScript rather than as C string literals).
 *
 * The assembler's .incbin copies each file into .rodata with a NUL after it.
 * Its names are relative to the folder the compiler runs in: the Makefile
 * builds from the top of the tree, and lists the files as prerequisites of
 * everything that links the tools.
 */
#include "html-report.h"

#define EMBED(symbol, file)                                                                                \
	__asm__(".section .rodata\n"                                                                       \
	        ".global " #symbol "\n"                                                                    \
	        ".type " #symbol ", @object\n"                                                             \
	        ".balign 16\n" #symbol ":\n"                                                               \
	        ".incbin \"" file "\"\n"                                                                   \
	        ".byte 0\n"                                                                                \
	        ".size " #symbol ", . - " #symbol "\n"                                                     \
	        ".previous\n")

EMBED(html_page_css, "tools/render/html/page.css");
EMBED(html_onerror_js, "tools/render/html/onerror.js");
EMBED(html_page_js, "tools/render/html/page.js");
