/* The pod sandbox's process: holds the pod's namespaces and does nothing (the role of registry.k8s.io/pause).
 * Built static here because no registry is reachable. */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
    (void)sig;
}

int main(void) {
    signal(SIGINT, quit);
    signal(SIGTERM, quit);
    signal(SIGCHLD, reap);
    for (;;)
        pause();
    return 0;
}
