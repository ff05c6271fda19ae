/* libgreet: a tiny shared library used by apps/hello. */
#ifndef GREET_H
#define GREET_H

/* Writes "Hello, <name>!" followed by a newline to stdout.
 * Returns the number of characters written, or a negative value on error. */
int greet(const char *name);

/* Version string of the library, e.g. "libgreet 1.0 (release)". */
const char *greet_version(void);

#endif
