/*
 * main.c - command line (Mosquitto's: -c -d -p -v -h, plus -t and
 * --version), configuration load, daemonizing, pid file, privilege drop
 * after binding, then the server loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "conf.h"
#include "daemonize.h"
#include "log.h"
#include "server.h"
#include "util.h"

static void usage(FILE *f)
{
    fprintf(f,
            "mqttd version %s\n\n"
            "mqttd is an MQTT v5.0/v3.1.1/v3.1 broker.\n\n"
            "Usage: mqttd [-c config_file] [-d] [-h] [-p port] [-t] [-v]\n\n"
            " -c : specify the broker config file.\n"
            " -d : put the broker into the background after starting.\n"
            " -h : display this help.\n"
            " -p : start the broker listening on the specified port.\n"
            "      Not recommended in conjunction with the -c option.\n"
            " -t : test the configuration file and exit (0 = valid).\n"
            " -v : verbose mode - enable all logging types. This overrides\n"
            "      any logging options given in the config file.\n"
            " --version : print the version and exit.\n",
            MQTTD_VERSION);
}

static int write_pid_file(const char *path)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

    if (util_write_file_atomic(path, buf, (size_t)n, 0644) < 0) {
        fprintf(stderr, "mqttd: cannot write pid file %s: %s\n", path,
                strerror(errno));
        return -1;
    }
    return 0;
}

/* Drop root to 'user' after the listeners are bound and keys read.
 * An explicitly configured user that does not exist is an error; the
 * default user missing only warns (development runs as root). */
static int drop_privileges(const char *user, bool explicit_user, struct log *lg)
{
    struct passwd *pw;

    if (geteuid() != 0)
        return 0;
    pw = getpwnam(user);
    if (pw == NULL) {
        if (explicit_user) {
            LOG_E(lg, "Unable to drop privileges to '%s': no such user.", user);
            return -1;
        }
        LOG_W(lg, "Running as root: user '%s' does not exist (set 'user').",
              user);
        return 0;
    }
    if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 ||
        initgroups(user, pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
        LOG_E(lg, "Unable to drop privileges to '%s': %s.", user,
              strerror(errno));
        return -1;
    }
    LOG_I(lg, "Dropped privileges to user '%s'.", user);
    return 0;
}

/* Every connection is a descriptor: use the whole hard limit (as set by
 * systemd's LimitNOFILE or the shell), not the often lower soft one. */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* print_err: auth_check_password_files' fail callback. */
static void print_err(void *arg, const char *err)
{
    (void)arg;
    fprintf(stderr, "%s\n", err);
}

int main(int argc, char **argv)
{
    const char *conf_path = NULL;
    bool daemonize = false, test = false, verbose = false;
    long port = 0;
    struct conf *c;
    struct log *lg;
    struct server *srv;
    char err[4096];
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config-file") == 0) {
            if (++i >= argc) {
                fprintf(stderr, "Error: -c argument given, but no config "
                                "file specified.\n");
                return 1;
            }
            conf_path = argv[i];
        } else if (strcmp(a, "-d") == 0 || strcmp(a, "--daemon") == 0) {
            daemonize = true;
        } else if (strcmp(a, "-p") == 0 || strcmp(a, "--port") == 0) {
            long long v;
            const char *es;
            if (++i >= argc || util_strtonum(argv[i], 1, 65535, &v, &es) < 0) {
                fprintf(stderr, "Error: invalid port given to -p.\n");
                return 1;
            }
            port = (long)v;
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--test-config") == 0) {
            test = true;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            verbose = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("mqttd version %s\n", MQTTD_VERSION);
            return 0;
        } else {
            fprintf(stderr, "Error: unknown option '%s'.\n", a);
            usage(stderr);
            return 1;
        }
    }
    if (conf_path) {
        c = conf_load(conf_path, conf_err_stderr, NULL);
        if (c != NULL && auth_check_password_files(c, conf_err_stderr,
                                                   print_err, NULL) == -1) {
            conf_free(c);
            c = NULL;
        }
        if (c == NULL) {
            fprintf(stderr, "Error: configuration %s is invalid.\n", conf_path);
            return 1;
        }
        if (port) {
            /* Mosquitto: -p with -c adds/overrides the default port */
            if (c->nlisteners > 0 && c->implicit_listener)
                for (size_t i = 0; i < c->nlisteners; i++)
                    c->listeners[i].port = (uint16_t)port;
        }
    } else {
        c = conf_default((uint16_t)port);
    }
    if (test) {
        printf("Configuration %s is valid.\n",
               conf_path ? conf_path : "(defaults)");
        conf_free(c);
        return 0;
    }
    if (verbose)
        c->log_types = LOG_ALL;
    raise_nofile();
    lg = log_new();
    {
        const char *user = c->user ? c->user : "mqttd";
        /* the built-in default user may be absent on development boxes */
        bool explicit_user = strcmp(user, "mqttd") != 0;
        char *pid_file = c->pid_file ? xstrdup(c->pid_file) : NULL;
        char *user_copy = xstrdup(user);
        int notify = -1;

        /* detach first: keys in a token (tls_keyform engine) are loaded by
         * server_new in the process that serves with them; errors still
         * reach the terminal and the exit status (daemonize.h) */
        if (daemonize && daemonize_start(&notify, err, sizeof(err)) < 0) {
            fprintf(stderr, "Error: %s\n", err);
            free(pid_file);
            free(user_copy);
            log_free(lg);
            return 1;
        }
        srv = server_new(conf_path, c, lg, err, sizeof(err));
        if (srv == NULL) {
            fprintf(stderr, "Error: %s\n", err);
            free(pid_file);
            free(user_copy);
            log_free(lg);
            return 1;
        }
        if (notify >= 0)
            daemonize_chdir();
        if (pid_file && write_pid_file(pid_file) < 0) {
            server_free(srv);
            log_free(lg);
            return 1;
        }
        if (drop_privileges(user_copy, explicit_user, lg) < 0) {
            server_free(srv);
            log_free(lg);
            return 1;
        }
        if (notify >= 0)
            daemonize_ready(notify);
        rc = server_run(srv);
        server_free(srv);
        if (pid_file)
            unlink(pid_file);
        free(pid_file);
        free(user_copy);
    }
    log_free(lg);
    return rc;
}
