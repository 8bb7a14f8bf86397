/*
 * sysd.h - the two pieces of systemd's protocols mqttd speaks without
 * libsystemd: sd_notify datagrams to $NOTIFY_SOCKET, and the "is this
 * variable meant for this process" check of LISTEN_PID / WATCHDOG_PID.
 */
#ifndef MQTTD_SYSD_H
#define MQTTD_SYSD_H

#include <stdbool.h>

/* sysd_notify: send msg ("READY=1", "WATCHDOG=1", ...) to the socket in
 * $NOTIFY_SOCKET (path or abstract "@name"); nothing when it is unset or
 * invalid. Errors are ignored, as sd_notify(3) allows. */
void sysd_notify(const char *msg);

/* sysd_pid_is_self: true when the decimal string pid names this process;
 * garbage or an out-of-range number is "not us". */
bool sysd_pid_is_self(const char *pid);

#endif
