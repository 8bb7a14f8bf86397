/*
 * daemonize.c - detach with a ready report to the parent (daemonize.h).
 */
#include "daemonize.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define READY 'R'

/* parent_wait: the parent's side; never returns. */
static void parent_wait(int rfd, pid_t child)
{
    char c = 0;
    ssize_t n;
    int status = 0;

    do
        n = read(rfd, &c, 1);
    while (n < 0 && errno == EINTR);
    if (n == 1 && c == READY)
        _exit(0);
    /* the child ended (or closed the pipe) before it was ready */
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        _exit(WEXITSTATUS(status));
    _exit(1);
}

int daemonize_start(int *notify_fd, char *err, size_t errlen)
{
    int p[2];
    pid_t parent = getpid(), pid;
    const char *lp;

    if (pipe2(p, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "cannot daemonize: pipe: %s", strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot daemonize: fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid > 0) {
        close(p[1]);
        parent_wait(p[0], pid);
    }
    close(p[0]);
    (void)setsid();
    /* socket activation: the sockets were passed to the parent's pid */
    lp = getenv("LISTEN_PID");
    if (lp != NULL && strtol(lp, NULL, 10) == (long)parent) {
        char buf[24];

        snprintf(buf, sizeof(buf), "%ld", (long)getpid());
        setenv("LISTEN_PID", buf, 1);
    }
    *notify_fd = p[1];
    return 0;
}

void daemonize_chdir(void)
{
    if (chdir("/") != 0) {
        /* as daemon(3): carry on in the current directory */
    }
}

void daemonize_ready(int notify_fd)
{
    int fd;
    char c = READY;

    fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        (void)dup2(fd, STDIN_FILENO);
        (void)dup2(fd, STDOUT_FILENO);
        (void)dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    while (write(notify_fd, &c, 1) < 0 && errno == EINTR)
        ;
    close(notify_fd);
}
