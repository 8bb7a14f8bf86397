/*
 * mem_conn.h - the harness side of tests/fuzz/mem_conn.c, an in-memory
 * implementation of include/conn.h (no sockets) used by the whole-session
 * fuzzer and its replay test.
 */
#ifndef MQTTD_MEM_CONN_H
#define MQTTD_MEM_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"

/* Hooks of the harness (all optional). */
struct memconn_hooks {
    /* a conn was created (before on_open runs) */
    void (*on_new)(void *arg, struct conn *c);
    /* bytes the peer received (flushed output); ud is the handler's ud */
    void (*on_output)(void *arg, struct conn *c, void *ud, const uint8_t *p,
                      size_t n);
    /* the conn is about to be freed, after on_close; 'complete' is true when
     * every byte written was handed to on_output */
    void (*on_free)(void *arg, struct conn *c, bool complete);
};

void memconn_set_hooks(struct conn_loop *cl, const struct memconn_hooks *h,
                       void *arg);
void memconn_push(struct conn *c, const void *p, size_t n);
void memconn_peer_eof(struct conn *c);
void memconn_set_read_max(struct conn *c, size_t n);
void memconn_set_drain(struct conn *c, size_t per_iter);
bool memconn_timer_armed(const struct conn *c, enum conn_timeout why);
bool memconn_fire_timer(struct conn *c, enum conn_timeout why);
bool memconn_readable(const struct conn *c);
unsigned memconn_run(struct conn_loop *cl);

#endif
