#!/bin/sh
# udhcpc calls this with the lease in the environment: configure eth0 with it.
case "$1" in
  bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/${mask:-24}" dev "$interface" ;;
esac
exit 0
