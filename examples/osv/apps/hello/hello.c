/* hello: an OSv-style application. OSv runs position-independent shared
 * objects: the loader maps hello.so and calls its main(). */
#include <stdio.h>
#include <string.h>

#include "greet.h"

static int print_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char buf[256];
    size_t n;

    if (!f) {
        perror(path);
        return 1;
    }
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        fwrite(buf, 1, n, stdout);
    }
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "--motd") == 0) {
        return print_file(argv[2]);
    }
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("hello using %s\n", greet_version());
        return 0;
    }
    return greet(argc > 1 ? argv[1] : NULL) < 0;
}
