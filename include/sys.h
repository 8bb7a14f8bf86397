/*
 * sys.h - the $SYS topic tree (Mosquitto's names) and the same figures as
 * one JSON document at $SYS/broker/stats/json, published as retained
 * messages every sys_interval seconds.
 */
#ifndef MQTTD_SYS_H
#define MQTTD_SYS_H

struct broker;
struct sys;

/* sys_new: state for load averages. Never NULL. sys_free accepts NULL. */
struct sys *sys_new(void);
void sys_free(struct sys *s);

/*
 * sys_update: publish every $SYS topic of b now. 'interval' is the time
 * since the previous update in seconds (for the load averages).
 */
void sys_update(struct sys *s, struct broker *b, double interval);

#endif
