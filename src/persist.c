/*
 * persist.c - snapshot save/load (placeholder until the format lands).
 */
#include "persist.h"

#include <stdio.h>

int persist_load(struct broker *b, const char *path, char *err, size_t errlen)
{
    (void)b;
    (void)path;
    (void)err;
    (void)errlen;
    return 0;
}

int persist_save(struct broker *b, const char *path, char *err, size_t errlen)
{
    (void)b;
    (void)path;
    snprintf(err, errlen, "persistence not implemented");
    return -1;
}

pid_t persist_save_bg(struct broker *b, const char *path, char *err,
                      size_t errlen)
{
    (void)b;
    (void)path;
    snprintf(err, errlen, "persistence not implemented");
    return -1;
}
