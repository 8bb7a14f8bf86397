/*
 * daemonize.h - -d: detach from the terminal before anything is loaded
 * that must live in the daemon process itself (a PKCS#11 token session
 * does not survive fork), while start-up errors still reach the terminal
 * and the exit status of the command.
 *
 *   mqttd -d ── fork ──> parent: waits on a pipe ──> exit 0 on "ready",
 *                 |                                  else the child's status
 *                 v
 *               child: setsid, server_new (engine keys, listeners),
 *                      pid file, privileges, daemonize_ready -> runs
 */
#ifndef MQTTD_DAEMONIZE_H
#define MQTTD_DAEMONIZE_H

#include <stddef.h>

/*
 * daemonize_start: fork. The parent never returns: it exits 0 once the
 * child calls daemonize_ready, or with the child's exit status (1 if it
 * died otherwise) when the child ends first. The child starts a new
 * session, takes over a LISTEN_PID naming the parent (socket
 * activation), and returns 0 with *notify_fd to pass to daemonize_ready.
 * Returns -1 with err filled when pipe or fork fails (no child).
 */
int daemonize_start(int *notify_fd, char *err, size_t errlen);

/* daemonize_chdir: chdir("/") as daemon(3) does; called after the TLS
 * files are loaded and before the pid file is written (a relative
 * pid_file then names the same file when it is removed at exit). */
void daemonize_chdir(void);

/*
 * daemonize_ready: the child is up: stdin/stdout/stderr to /dev/null (as
 * daemon(3) does), tell the parent, close notify_fd.
 */
void daemonize_ready(int notify_fd);

#endif
