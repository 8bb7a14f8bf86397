/*
 * persist.h - snapshots of the broker's durable state: retained messages
 * and persistent sessions (subscriptions, queued and inflight QoS 1/2
 * messages, incoming QoS 2 ids, wills).
 *
 * File layout (all integers big-endian):
 *
 *   +---------+---------+----------------------------+-----------+
 *   | magic 8 | version | records ...                | checksum  |
 *   | MQTTDDB | u32     | (type u8, length u32, body)| SHA-256   |
 *   +---------+---------+----------------------------+-----------+
 *
 * Saving writes a temporary file, fsyncs it, renames it over the old one
 * and fsyncs the directory, so a crash leaves either the old or the new
 * snapshot. Large stores are written by a forked child (copy-on-write), so
 * the event loop is never blocked for long.
 */
#ifndef MQTTD_PERSIST_H
#define MQTTD_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct broker;

/*
 * persist_load: restore retained messages and sessions from 'path' into b
 * (which must be empty). A missing file is not an error (returns 0). A
 * corrupt, truncated or unknown-version file is renamed to
 * "PATH.corrupt-UNIXTIME", logged, and 0 is returned (the broker starts
 * empty). Returns -1 only when the file exists but cannot be read or moved
 * aside (err filled).
 */
int persist_load(struct broker *b, const char *path, char *err, size_t errlen);

/*
 * persist_save: write a snapshot of b to 'path' synchronously, crash-safely.
 * Returns 0, or -1 with err filled; the previous file is then untouched.
 */
int persist_save(struct broker *b, const char *path, char *err, size_t errlen);

/*
 * persist_save_bg: fork a child that writes the snapshot (persist_save in
 * the child, _exit status 0/1). Returns the child's pid, or -1 with err
 * filled when fork failed (the caller may then save synchronously).
 */
pid_t persist_save_bg(struct broker *b, const char *path, char *err,
                      size_t errlen);

#endif
