#include <stdio.h>

#include "greet.h"

#ifndef GREET_MODE
#define GREET_MODE "unknown"
#endif

int greet(const char *name)
{
    if (!name || !*name) {
        name = "world";
    }
    return printf("Hello, %s!\n", name);
}

const char *greet_version(void)
{
    return "libgreet 1.0 (" GREET_MODE ")";
}
