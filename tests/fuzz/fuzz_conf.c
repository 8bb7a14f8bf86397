/*
 * fuzz_conf.c - libFuzzer harness for the mosquitto.conf parser: any bytes
 * as a configuration file, file checks off, errors discarded.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
 *       tests/fuzz/fuzz_conf.c src/conf.c src/util.c -o fuzz_conf
 *   ./fuzz_conf -max_total_time=60 [corpus_dir]
 *
 * Note that include_dir lines are followed on disk, as in production.
 */
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void sink(void *arg, const char *file, int line, const char *msg)
{
    unsigned *n = arg;

    (void)file;
    (void)line;
    (void)msg;
    (*n)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned nerr = 0;
    struct conf *c = conf_load_buf("fuzz.conf", (const char *)data, size, false,
                                   sink, &nerr);

    /* a snapshot comes back exactly when no error was reported */
    if ((c == NULL) != (nerr > 0))
        __builtin_trap();
    if (c != NULL && c->nlisteners == 0)
        __builtin_trap();
    conf_free(c);
    return 0;
}
