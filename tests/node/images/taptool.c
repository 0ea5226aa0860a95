/* taptool: prove a pod's macvtap carries frames, from inside the pod, through its /dev/tapN.
 *
 *   taptool arp DEV MAC SRC_IP DST_IP    send an ARP who-has DST_IP (from MAC, SRC_IP) through DEV and wait up to
 *                                        5 s for the reply addressed to MAC; print "reply from <mac>"; exit 0/1.
 *
 * Frames on a macvtap queue carry a 10-byte virtio_net_hdr (IFF_VNET_HDR is the default there). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define VNET_HDR 10

static int parse_mac(const char *s, unsigned char mac[6]) {
    unsigned v[6];
    if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
        return -1;
    for (int i = 0; i < 6; i++)
        mac[i] = (unsigned char)v[i];
    return 0;
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int main(int argc, char **argv) {
    unsigned char mac[6];
    struct in_addr src, dst;
    if (argc != 6 || strcmp(argv[1], "arp") != 0 || parse_mac(argv[3], mac) != 0 ||
        inet_pton(AF_INET, argv[4], &src) != 1 || inet_pton(AF_INET, argv[5], &dst) != 1) {
        fprintf(stderr, "usage: taptool arp DEV MAC SRC_IP DST_IP\n");
        return 2;
    }
    int fd = open(argv[2], O_RDWR);
    if (fd < 0) {
        fprintf(stderr, "taptool: open %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    unsigned char out[VNET_HDR + 42];
    memset(out, 0, sizeof out);
    unsigned char *f = out + VNET_HDR;
    memset(f, 0xff, 6);                                  /* broadcast */
    memcpy(f + 6, mac, 6);
    f[12] = 0x08; f[13] = 0x06;                          /* ARP */
    f[14] = 0x00; f[15] = 0x01; f[16] = 0x08; f[17] = 0x00; f[18] = 6; f[19] = 4;
    f[20] = 0x00; f[21] = 0x01;                          /* request */
    memcpy(f + 22, mac, 6);
    memcpy(f + 28, &src, 4);
    memcpy(f + 38, &dst, 4);
    long deadline = now_ms() + 5000, next_send = 0;
    unsigned char in[VNET_HDR + 2048];
    while (now_ms() < deadline) {
        if (now_ms() >= next_send) {
            if (write(fd, out, sizeof out) != (ssize_t)sizeof out) {
                fprintf(stderr, "taptool: write %s: %s\n", argv[2], strerror(errno));
                return 1;
            }
            next_send = now_ms() + 1000;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        ssize_t n = read(fd, in, sizeof in);
        if (n < VNET_HDR + 42)
            continue;
        unsigned char *r = in + VNET_HDR;
        if (r[12] == 0x08 && r[13] == 0x06 && r[21] == 0x02 && memcmp(r, mac, 6) == 0 &&
            memcmp(r + 28, &dst, 4) == 0) {
            printf("reply from %02x:%02x:%02x:%02x:%02x:%02x\n", r[22], r[23], r[24], r[25], r[26], r[27]);
            return 0;
        }
    }
    fprintf(stderr, "taptool: no ARP reply from %s within 5 s\n", argv[5]);
    return 1;
}
