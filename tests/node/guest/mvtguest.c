/* mvtguest: the test guest's network probe (static, runs in the guest's initramfs).
 *
 *   mvtguest lldp IFACE SECONDS   put IFACE in promiscuous mode and wait for an LLDP frame (01:80:c2:00:00:0e,
 *                                 ethertype 0x88cc); print "ok lldp" or "fail lldp" (exit 0 either way). */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4 || strcmp(argv[1], "lldp") != 0) {
        fprintf(stderr, "usage: mvtguest lldp IFACE SECONDS\n");
        return 2;
    }
    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    unsigned idx = if_nametoindex(argv[2]);
    if (fd < 0 || idx == 0) {
        printf("fail lldp (no socket or no %s)\n", argv[2]);
        return 0;
    }
    struct packet_mreq mr = {.mr_ifindex = (int)idx, .mr_type = PACKET_MR_PROMISC};
    setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr);
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = (int)idx};
    bind(fd, (struct sockaddr *)&sll, sizeof sll);
    time_t deadline = time(NULL) + atoi(argv[3]);
    unsigned char buf[2048];
    static const unsigned char lldp[6] = {0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e};
    while (time(NULL) < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 500) <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n >= 14 && memcmp(buf, lldp, 6) == 0 && buf[12] == 0x88 && buf[13] == 0xcc) {
            printf("ok lldp\n");
            return 0;
        }
    }
    printf("fail lldp\n");
    return 0;
}
