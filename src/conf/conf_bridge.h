/*
 * conf_bridge.h - private to conf.c and conf_bridge.c: the parser of
 * Mosquitto's bridge sections ("connection NAME" and the keys after it).
 */
#ifndef MQTTD_CONF_BRIDGE_H
#define MQTTD_CONF_BRIDGE_H

#include <stdbool.h>

#include "conf.h"

/* Where bridge errors and warnings go (conf.c's perr/pwarn). */
typedef void (*conf_bridge_report_fn)(void *arg, const char *file, int line,
                                      bool warning, const char *msg);

/* The bridge part of one parse. */
struct conf_bridge_parser {
    struct conf *c;
    conf_bridge_report_fn report;
    void *arg;
    bool check_files;
    struct conf_bridge_meta *meta; /* parallel to c->bridges */
};

/*
 * conf_bridge_line: handle key/val (val the trimmed rest of the line) when
 * key is a bridge key. Returns true when it was one (handled, errors
 * reported), false when the caller should look the key up itself.
 */
bool conf_bridge_line(struct conf_bridge_parser *bp, const char *file, int line,
                      const char *key, char *val);

/* conf_bridge_finalize: defaults and whole-bridge checks (address and
 * topics given, TLS files readable, ...). Frees the parse state. */
void conf_bridge_finalize(struct conf_bridge_parser *bp);

/* conf_bridge_parser_free: free the parse state only (after an abort). */
void conf_bridge_parser_free(struct conf_bridge_parser *bp);

/* conf_bridges_free: free c's bridges. */
void conf_bridges_free(struct conf *c);

#endif
