/*
 * mqttd_passwd.c - mqttd-passwd: manage Mosquitto-compatible password
 * files (the mosquitto_passwd 2.0 command line, plus -I).
 *
 *   mqttd-passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c | -D]
 *                passwordfile username
 *   mqttd-passwd [-H ...] [-I iterations] [-c] -b passwordfile username
 *                password
 *   mqttd-passwd [-H ...] [-I iterations] -U passwordfile
 *
 * Differences from mosquitto_passwd: the default $7$ iteration count is
 * PASSWD_DEFAULT_ITERATIONS (210,000) instead of 101; an existing file is
 * parsed first and left untouched when it cannot be read; lines the broker
 * would skip are named as warnings and written back unchanged; comment
 * and blank lines are kept; an empty password is stored with a warning
 * that it can never authenticate (the broker denies empty passwords); -U keeps
 * lines that already hold a valid hash; files are replaced atomically (temp +
 * fsync + rename), created 0600, an existing file's mode is kept minus world
 * bits and its owner kept.
 *
 * Exit status as mosquitto_passwd: 0 success, 1 error, 2 when the two
 * typed passwords differ.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "passwd.h"
#include "util.h"

#define MAX_PASSWORD 65535

struct opts {
    enum passwd_type type;
    unsigned long iterations;
    bool iter_set, batch, create, del, update;
};

static void usage(void)
{
    printf("mqttd-passwd is a tool for managing password files for mqttd "
           "(and mosquitto).\n\n"
           "Usage: mqttd-passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] "
           "[-c | -D] passwordfile username\n"
           "       mqttd-passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] "
           "[-c] -b passwordfile username password\n"
           "       mqttd-passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] "
           "-U passwordfile\n"
           " -b : run in batch mode to allow passing passwords on the command "
           "line.\n"
           " -c : create a new password file. This will overwrite existing "
           "files.\n"
           " -D : delete the username rather than adding/updating its "
           "password.\n"
           " -H : specify the hashing algorithm. Defaults to sha512-pbkdf2.\n"
           " -I : PBKDF2 iterations for sha512-pbkdf2 (1..10000000, default "
           "%d; mosquitto_passwd uses 101).\n"
           " -U : update a plain text password file to use hashed passwords.\n",
           PASSWD_DEFAULT_ITERATIONS);
}

/* read_line: one line of stdin without its newline into a new buffer. */
static char *read_line(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);

    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    return line;
}

/* prompt: print 'text', read a line with echo off when stdin is a tty. */
static char *prompt(const char *text)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    char *line;

    printf("%s", text);
    fflush(stdout);
    if (tty) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ECHONL;
        tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    line = read_line();
    if (tty)
        tcsetattr(STDIN_FILENO, TCSANOW, &old);
    else
        printf("\n");
    return line;
}

static void free_secret(char *s)
{
    if (s != NULL) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

/* get_password: 0 and *out, 1 on error, 2 when the passwords differ. */
static int get_password(char **out)
{
    char *a = prompt("Password: "), *b;
    int rc;

    if (a == NULL || a[0] == '\0') {
        fprintf(stderr, "Error: Empty password.\n");
        free_secret(a);
        return 1;
    }
    b = prompt("Reenter password: ");
    if (b == NULL || strcmp(a, b) != 0) {
        fprintf(stderr, "Error: Passwords do not match.\n");
        rc = 2;
        free_secret(a);
        free_secret(b);
        return rc;
    }
    free_secret(b);
    *out = a;
    return 0;
}

static int check_username(const char *u)
{
    size_t n = strlen(u);

    if (n == 0) {
        fprintf(stderr, "Error: Empty username.\n");
        return -1;
    }
    if (strchr(u, ':') != NULL) {
        fprintf(stderr,
                "Error: Username must not contain the ':' character.\n");
        return -1;
    }
    if (n > PASSWD_MAX_USERNAME || !util_utf8_valid(u, n)) {
        fprintf(stderr, "Error: Username must be valid UTF-8 of at most "
                        "65535 bytes.\n");
        return -1;
    }
    return 0;
}

static int make_hash(const struct opts *o, const char *password, char *out,
                     size_t outlen)
{
    size_t n = strlen(password);

    if (n > MAX_PASSWORD) {
        fprintf(stderr, "Error: Password longer than %d bytes.\n",
                MAX_PASSWORD);
        return -1;
    }
    if (n == 0)
        fprintf(stderr, "Warning: empty password: mqttd never authenticates "
                        "an empty password.\n");
    if (passwd_hash_make(o->type, o->iterations, (const uint8_t *)password, n,
                         out, outlen) == -1) {
        fprintf(stderr, "Error: Unable to hash password.\n");
        return -1;
    }
    return 0;
}

/*
 * save: write text to path atomically. A new file gets 0600; an existing
 * one keeps its mode without world bits, and its owner when we may.
 */
static int save(const char *path, const char *text, size_t len)
{
    struct stat st;
    char real[PATH_MAX];
    const char *target = path;
    unsigned mode = 0600;
    bool existed = false;

    if (realpath(path, real) != NULL)
        target = real; /* replace a symlink's target, not the link */
    if (stat(target, &st) == 0) {
        existed = true;
        mode = (unsigned)(st.st_mode & 0660) | 0600;
    }
    if (util_write_file_atomic(target, text, len, mode) == -1) {
        fprintf(stderr, "Error: Unable to write password file %s: %s.\n", path,
                strerror(errno));
        return -1;
    }
    if (existed && (st.st_uid != geteuid() || st.st_gid != getegid()))
        (void)!chown(target, st.st_uid, st.st_gid);
    return 0;
}

/* warn_stderr: a passwd_warn_fn; *arg (an int, may be NULL) counts. */
static void warn_stderr(void *arg, const char *file, int line, const char *msg)
{
    int *n = arg;

    fprintf(stderr, "Warning: %s:%d: %s.\n", file, line, msg);
    if (n != NULL)
        (*n)++;
}

static struct passwd *load(const char *path)
{
    char err[512];
    struct passwd *pw =
        passwd_load_warn(path, warn_stderr, NULL, err, sizeof(err));

    if (pw == NULL)
        fprintf(stderr, "Error: %s\n", err);
    return pw;
}

/* read_all: the whole file for -U, at most PASSWD_MAX_FILE bytes. */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t cap = 0, n = 0;

    if (f == NULL) {
        fprintf(stderr, "Error: Unable to open password file %s. %s.\n", path,
                strerror(errno));
        return NULL;
    }
    for (;;) {
        size_t r;
        if (n == cap) {
            if (cap > PASSWD_MAX_FILE) {
                fprintf(stderr, "Error: %s: file too large.\n", path);
                goto fail;
            }
            cap = cap ? cap * 2 : 4096;
            buf = xrealloc(buf, cap + 1);
        }
        r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "Error: %s: read error.\n", path);
        goto fail;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
fail:
    fclose(f);
    free(buf);
    return NULL;
}

/* do_update: -U, hash the "user:password" lines of a plain text file. */
static int do_update(const struct opts *o, const char *path)
{
    size_t len = 0, pos = 0, olen = 0, ocap = 0;
    char *in = read_all(path, &len), *out = NULL, err[512];
    struct passwd *check;
    int line = 0, rc = 1, skipped = 0;

    if (in == NULL)
        return 1;
    while (pos < len) {
        char *s = in + pos, *nl = memchr(s, '\n', len - pos), *colon;
        size_t ll = nl ? (size_t)(nl - s) : len - pos;
        char hash[PASSWD_HASH_TEXT_MAX], *user = NULL, *pass = NULL;
        const char *w;
        const char *piece;
        size_t plen;

        line++;
        pos += ll + (nl ? 1 : 0);
        while (ll > 0 && s[ll - 1] == '\r')
            ll--;
        s[ll] = '\0';
        piece = s;
        plen = ll;
        colon = strchr(s, ':');
        if (s[strspn(s, " \t")] != '\0' && s[strspn(s, " \t")] != '#') {
            if (colon == NULL) {
                fprintf(stderr, "Error: %s:%d: no ':' in line.\n", path, line);
                goto fail;
            }
            *colon = '\0';
            user = s;
            pass = colon + 1;
            if (check_username(user) == -1) {
                fprintf(stderr, "Error: %s:%d: bad username.\n", path, line);
                goto fail;
            }
            if (passwd_hash_verify(pass, NULL, 0, &w) >= 0) {
                fprintf(stderr,
                        "Warning: %s:%d: user %s already has a "
                        "hashed password; kept.\n",
                        path, line, user);
                *colon = ':';
            } else {
                if (make_hash(o, pass, hash, sizeof(hash)) == -1)
                    goto fail;
                OPENSSL_cleanse(pass, strlen(pass));
                *colon = ':';
                colon[1] = '\0';
                plen = strlen(piece);
            }
        }
        while (out == NULL || olen + plen + sizeof(hash) + 2 > ocap) {
            ocap = ocap ? ocap * 2 : 4096;
            out = xrealloc(out, ocap);
        }
        memcpy(out + olen, piece, plen);
        olen += plen;
        if (user != NULL && colon[1] == '\0') {
            size_t hl = strlen(hash);
            memcpy(out + olen, hash, hl);
            olen += hl;
        }
        out[olen++] = '\n';
    }
    /* Never write a file the broker would refuse or partly skip. */
    check = passwd_parse_warn(path, out ? out : "", olen, warn_stderr, &skipped,
                              err, sizeof(err));
    if (check == NULL) {
        fprintf(stderr, "Error: %s\n", err);
        goto fail;
    }
    passwd_free(check);
    if (skipped > 0) {
        fprintf(stderr,
                "Error: %s: %d line(s) the broker would skip; file "
                "left unchanged.\n",
                path, skipped);
        goto fail;
    }
    rc = save(path, out ? out : "", olen) == 0 ? 0 : 1;
fail:
    if (in != NULL)
        OPENSSL_cleanse(in, len);
    free(in);
    free(out);
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o = {PASSWD_SHA512_PBKDF2,
                     PASSWD_DEFAULT_ITERATIONS,
                     false,
                     false,
                     false,
                     false,
                     false};
    struct passwd *pw = NULL;
    const char *file, *user;
    char *password = NULL, hash[PASSWD_HASH_TEXT_MAX], err[512], *text;
    size_t tlen;
    int c, rc = 1, nargs;

    while ((c = getopt(argc, argv, "+bcDH:I:Uh")) != -1) {
        switch (c) {
        case 'b':
            o.batch = true;
            break;
        case 'c':
            o.create = true;
            break;
        case 'D':
            o.del = true;
            break;
        case 'U':
            o.update = true;
            break;
        case 'H':
            if (strcmp(optarg, "sha512") == 0) {
                o.type = PASSWD_SHA512;
            } else if (strcmp(optarg, "sha512-pbkdf2") == 0) {
                o.type = PASSWD_SHA512_PBKDF2;
            } else {
                fprintf(stderr, "Error: Unknown hash type '%s'\n", optarg);
                return 1;
            }
            break;
        case 'I': {
            long long v;
            const char *e;
            if (util_strtonum(optarg, PASSWD_ITER_MIN, PASSWD_ITER_MAX, &v,
                              &e) == -1) {
                fprintf(stderr, "Error: Iterations %s: must be 1..10000000.\n",
                        e);
                return 1;
            }
            o.iterations = (unsigned long)v;
            o.iter_set = true;
            break;
        }
        default:
            usage();
            return 1;
        }
    }
    nargs = argc - optind;
    if (o.iter_set && o.type != PASSWD_SHA512_PBKDF2) {
        fprintf(stderr, "Error: -I only applies to -H sha512-pbkdf2.\n");
        return 1;
    }
    if (o.create && o.del) {
        fprintf(stderr, "Error: -c and -D cannot be used together.\n");
        return 1;
    }
    if (o.update) {
        if (o.create || o.del || o.batch || nargs != 1) {
            usage();
            return 1;
        }
        return do_update(&o, argv[optind]);
    }
    if (o.batch && o.del) {
        fprintf(stderr, "Error: -b and -D cannot be used together.\n");
        return 1;
    }
    if (nargs != (o.batch ? 3 : 2)) {
        if (o.create)
            fprintf(stderr, "Error: -c argument given but password file, "
                            "username, or password missing.\n");
        else
            usage();
        return 1;
    }
    file = argv[optind];
    user = argv[optind + 1];
    if (check_username(user) == -1)
        return 1;
    pw = o.create ? passwd_new() : load(file);
    if (pw == NULL)
        return 1;
    if (o.del) {
        if (passwd_remove(pw, user) == -1) {
            fprintf(stderr, "Warning: User %s not found in password file.\n",
                    user);
            goto fail;
        }
    } else {
        if (o.batch) {
            password = xstrdup(argv[optind + 2]);
        } else {
            rc = get_password(&password);
            if (rc != 0)
                goto fail;
            rc = 1;
        }
        if (make_hash(&o, password, hash, sizeof(hash)) == -1)
            goto fail;
        if (passwd_set(pw, user, hash, err, sizeof(err)) == -1) {
            fprintf(stderr, "Error: %s.\n", err);
            goto fail;
        }
    }
    text = passwd_serialise(pw, &tlen);
    rc = save(file, text, tlen) == 0 ? 0 : 1;
    free(text);
fail:
    free_secret(password);
    passwd_free(pw);
    return rc;
}
