/*
 * macvtap CNI shim: forwards one CNI call to the macvtapctl agent over a unix socket.
 *
 * The runtime executes /opt/cni/bin/macvtap; this binary sends the CNI_* environment and stdin to the
 * warm agent and relays its stdout and exit code, so a pod start never pays for a Python start-up.
 * Static, no dependencies, no JSON parsing. Wire format (all integers big-endian u32):
 *
 *   request:  "MVT1" | count | count x (len | "KEY=VALUE") | len | stdin
 *   response: "MVR1" | exit code | len | stdout | len | stderr
 *
 * If the agent cannot be reached or does not answer within MACVTAPCTL_CNI_TIMEOUT seconds in total (one
 * deadline for the whole exchange, not per read), it prints a CNI error with code 11 ("try again later") and
 * exits 1. More CNI_* variables than the wire format carries is refused (code 4), never silently truncated.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/macvtapctl/cni.sock"
#define MAX_STDIN (1u << 20)   /* 1 MiB of network configuration is plenty */
#define MAX_OUT (4u << 20)
#define MAX_ENV 32
#define DEFAULT_TIMEOUT_S 120

extern char **environ;

static char version[24] = "0.3.1";
static struct timespec deadline;

static void set_deadline(int seconds) {
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += seconds;
}

/* Milliseconds left before the deadline (0 when it has passed). */
static int remaining_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ms = (long long)(deadline.tv_sec - now.tv_sec) * 1000 + (deadline.tv_nsec - now.tv_nsec) / 1000000;
    return ms <= 0 ? 0 : (ms > 3600000 ? 3600000 : (int)ms);
}

/* Wait until fd is ready for `events` or the deadline passes (errno ETIMEDOUT). */
static int wait_fd(int fd, short events) {
    for (;;) {
        int left = remaining_ms();
        if (left == 0) { errno = ETIMEDOUT; return -1; }
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, left);
        if (r > 0) return 0;
        if (r == 0) { errno = ETIMEDOUT; return -1; }
        if (errno != EINTR) return -1;
    }
}

/* Best effort: copy the value of "cniVersion" for the error JSON. Not a parser: a bounded scan. */
static void sniff_version(const char *buf, size_t len) {
    const char *key = "\"cniVersion\"";
    size_t klen = strlen(key);
    for (size_t i = 0; i + klen < len; i++) {
        if (memcmp(buf + i, key, klen) != 0) continue;
        size_t j = i + klen;
        while (j < len && (buf[j] == ' ' || buf[j] == '\t' || buf[j] == '\n' || buf[j] == '\r' || buf[j] == ':')) j++;
        if (j >= len || buf[j] != '"') return;
        j++;
        size_t n = 0;
        while (j + n < len && n < sizeof(version) - 1 && ((buf[j + n] >= '0' && buf[j + n] <= '9') || buf[j + n] == '.')) n++;
        if (n > 0 && j + n < len && buf[j + n] == '"') {
            memcpy(version, buf + j, n);
            version[n] = 0;
        }
        return;
    }
}

/* A JSON string body: details can carry a user-set socket path, so quote everything that needs it. */
static void put_json_string(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f) printf("\\u%04x", *p);
        else putchar(*p);
    }
}

static int fail(int code, const char *msg, const char *details) {
    printf("{\"cniVersion\":\"%s\",\"code\":%d,\"msg\":\"", version, code);
    put_json_string(msg);
    printf("\",\"details\":\"");
    put_json_string(details);
    printf("\"}\n");
    fflush(stdout);
    return 1;
}

static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        if (wait_fd(fd, POLLOUT) < 0) return -1;
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t len) {
    char *p = buf;
    while (len > 0) {
        if (wait_fd(fd, POLLIN) < 0) return -1;
        ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            return -1;
        }
        if (n == 0) { errno = ECONNRESET; return -1; }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int put_u32(int fd, uint32_t v) {
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    return write_all(fd, b, 4);
}

static int get_u32(int fd, uint32_t *v) {
    unsigned char b[4];
    if (read_all(fd, b, 4) < 0) return -1;
    *v = ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
    return 0;
}

static char *read_stdin(size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (n == cap) {
            if (n > MAX_STDIN) { free(buf); errno = EFBIG; return NULL; }
            cap = cap * 2 > MAX_STDIN ? MAX_STDIN + 1 : cap * 2;  /* room to see one byte past the limit */
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); return NULL; }
            buf = nb;
        }
        ssize_t r = read(0, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            free(buf);
            return NULL;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    if (n > MAX_STDIN) { free(buf); errno = EFBIG; return NULL; }
    *len = n;
    return buf;
}

static int forwarded(const char *e) {
    return strncmp(e, "CNI_", 4) == 0;
}

int main(void) {
    size_t in_len = 0;
    char *in = read_stdin(&in_len);
    if (!in) return fail(6, "cannot read the network configuration from stdin", strerror(errno));
    sniff_version(in, in_len);

    const char *path = getenv("MACVTAPCTL_CNI_SOCKET");
    if (!path || !*path) path = DEFAULT_SOCKET;
    int timeout = DEFAULT_TIMEOUT_S;
    const char *t = getenv("MACVTAPCTL_CNI_TIMEOUT");
    if (t && atoi(t) > 0 && atoi(t) <= 3600) timeout = atoi(t);

    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr.sun_path)) return fail(11, "macvtapctl agent socket path too long", path);
    strcpy(addr.sun_path, path);

    uint32_t count = 0;
    for (char **e = environ; *e; e++)
        if (forwarded(*e)) count++;
    if (count > MAX_ENV)  /* dropping some could drop CNI_COMMAND: refuse instead */
        return fail(4, "too many CNI_* environment variables", "at most 32 are forwarded to the agent");

    set_deadline(timeout);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(11, "cannot create a socket to reach the macvtapctl agent", strerror(errno));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        return fail(11, "macvtapctl agent is not reachable; is the macvtap agent pod running on this node?", strerror(errno));

    if (write_all(fd, "MVT1", 4) < 0 || put_u32(fd, count) < 0) goto io_error;
    uint32_t sent = 0;
    for (char **e = environ; *e && sent < count; e++) {
        if (!forwarded(*e)) continue;
        size_t l = strlen(*e);
        if (put_u32(fd, (uint32_t)l) < 0 || write_all(fd, *e, l) < 0) goto io_error;
        sent++;
    }
    if (put_u32(fd, (uint32_t)in_len) < 0 || write_all(fd, in, in_len) < 0) goto io_error;
    free(in);
    shutdown(fd, SHUT_WR);

    char magic[4];
    uint32_t code, out_len, err_len;
    if (read_all(fd, magic, 4) < 0) goto io_error;
    if (memcmp(magic, "MVR1", 4) != 0) return fail(11, "macvtapctl agent sent a malformed answer", "bad frame magic");
    if (get_u32(fd, &code) < 0 || get_u32(fd, &out_len) < 0) goto io_error;
    if (out_len > MAX_OUT) return fail(11, "macvtapctl agent sent an oversized answer", "");
    char *out = malloc(out_len ? out_len : 1);
    if (!out) return fail(11, "out of memory", strerror(errno));
    if (read_all(fd, out, out_len) < 0) goto io_error;
    if (get_u32(fd, &err_len) < 0) goto io_error;
    if (err_len > MAX_OUT) return fail(11, "macvtapctl agent sent an oversized answer", "");
    char *err = malloc(err_len ? err_len : 1);
    if (!err) return fail(11, "out of memory", strerror(errno));
    if (read_all(fd, err, err_len) < 0) goto io_error;
    fwrite(out, 1, out_len, stdout);
    fflush(stdout);
    fwrite(err, 1, err_len, stderr);
    close(fd);
    return code > 255 ? 1 : (int)code;

io_error:  /* every path here comes from a failed syscall or the deadline, so errno is meaningful */
    if (errno == ETIMEDOUT)
        return fail(11, "macvtapctl agent did not answer in time", "timeout");
    return fail(11, "lost the connection to the macvtapctl agent", strerror(errno));
}
