#!/bin/sh
# The test guest's init (busybox): bring up eth0 as the kernel command line says, run one check, print markers on
# the serial console, power off. Parameters: mvt.ip=ADDR/PREFIX (or none), mvt.do=ACTION where ACTION is
#   ping:IP          ping IP until the first reply (6 tries, 1 s each)
#   dhcp             get a lease with udhcpc (the cloud-init `dhcp4: true` path)
#   serve:SECONDS    answer pings for SECONDS
#   lldp:SECONDS     wait SECONDS for an LLDP frame (a multicast group the guest never joined)
#   vm               a VM KubeVirt runs (the containerDisk boots it so): every NIC up and leased by DHCP (the
#                    cloud-init `dhcp4: true` path), each lease on the console; then, until stopped, answer pings
#                    (broadcast ones too) and look for peers every 3 s: a broadcast ping on each leased NIC, each
#                    new replier confirmed by a unicast ping and printed as MVT-REACH
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
for m in failover net_failover virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_net; do
  insmod /lib/modules/$m.ko
done
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^mvt\.$1=//p"; }
ip link set lo up
if [ "$(arg do)" = vm ]; then
  i=0; while [ -z "$(ls /sys/class/net | grep -v '^lo$')" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  for nic in $(ls /sys/class/net | grep -v '^lo$'); do
    ip link set "$nic" up
    echo "MVT-NIC name=$nic mac=$(cat /sys/class/net/$nic/address) mtu=$(cat /sys/class/net/$nic/mtu)"
    udhcpc -i "$nic" -b -t 30 -T 2 -s /bin/udhcpc.sh >/dev/null 2>&1  # -b: keeps trying, renews, in background
  done
  echo 0 > /proc/sys/net/ipv4/icmp_echo_ignore_broadcasts  # so that peers find this guest the same way
  seen=" "
  while :; do
    for nic in $(ls /sys/class/net | grep -v '^lo$'); do
      set -- $(ip -o -4 addr show dev "$nic" | awk '$5 == "brd" {print $4, $6; exit}')
      [ -n "${2:-}" ] || continue  # no lease yet
      self=${1%/*}
      for peer in $(ping -w 2 -I "$nic" "$2" 2>/dev/null | sed -n 's/.* bytes from \([0-9.]*\):.*/\1/p' | sort -u); do
        case "$seen" in *" $nic/$peer "*) continue ;; esac
        [ "$peer" = "$self" ] && continue
        if ping -c 1 -W 1 -I "$nic" "$peer" >/dev/null 2>&1; then
          echo "MVT-REACH name=$nic mac=$(cat /sys/class/net/$nic/address) from=$self to=$peer"
          seen="$seen$nic/$peer "
        fi
      done
    done
    sleep 3
  done
fi
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
ip link set eth0 up
echo "MVT-NIC mac=$(cat /sys/class/net/eth0/address) mtu=$(cat /sys/class/net/eth0/mtu)"
[ -n "$(arg ip)" ] && ip addr add "$(arg ip)" dev eth0
action=$(arg do)
case "$action" in
  ping:*) r=fail; i=0
          while [ $i -lt 6 ]; do  # the first reply ends it (ARP, then ICMP both ways)
            if ping -c 1 -W 1 "${action#ping:}" >/dev/null 2>&1; then r=ok; break; fi; i=$((i+1))
          done
          echo "MVT-RESULT $r ping ${action#ping:}" ;;
  dhcp)   if udhcpc -i eth0 -n -q -t 10 -T 1 -s /bin/udhcpc.sh >/dev/null 2>&1
          then echo "MVT-RESULT ok dhcp $(ip -o -4 addr show eth0 | awk '{print $4}')"
          else echo "MVT-RESULT fail dhcp"; fi ;;
  serve:*) echo "MVT-READY"; sleep "${action#serve:}"; echo "MVT-RESULT ok served" ;;
  lldp:*) echo "MVT-READY"; echo "MVT-RESULT $(mvtguest lldp eth0 "${action#lldp:}")" ;;
  *)      echo "MVT-RESULT fail unknown action '$action'" ;;
esac
poweroff -f
