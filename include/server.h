/*
 * server.h - the process around the broker: the libev loop, listening
 * sockets (TCP v4/v6, unix, or inherited from systemd socket activation),
 * the accept loop, signals (TERM/INT stop, HUP reload, USR1 save) and the
 * once-a-second timer.
 */
#ifndef MQTTD_SERVER_H
#define MQTTD_SERVER_H

#include <stddef.h>

struct conf;
struct log;
struct server;

/*
 * server_new: bind every listener of c and build the broker. 'conf_path'
 * (may be NULL) is re-read on SIGHUP. Takes ownership of c. Returns NULL
 * with a message in err on failure (nothing is left bound).
 */
struct server *server_new(const char *conf_path, struct conf *c, struct log *lg,
                          char *err, size_t errlen);

/* server_run: run the loop until SIGTERM/SIGINT. Returns 0. */
int server_run(struct server *s);

/* server_free: close listeners, disconnect clients, free. Accepts NULL. */
void server_free(struct server *s);

#endif
