#!/bin/sh
# udhcpc calls this with the lease in the environment: configure eth0 with it.
case "$1" in
  bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/${mask:-24}" brd + dev "$interface"
               echo "MVT-LEASE name=$interface mac=$(cat /sys/class/net/$interface/address) ip=$ip server=${serverid:-}" \
                 > /dev/console ;;
esac
exit 0
