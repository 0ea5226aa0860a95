// A Go CNI plugin doing the same work as kubevirt/macvtap-cni's ADD and DEL, for benchmarks only.
//
// kubevirt/macvtap-cni is not served by the Go module proxy here, so this re-implements its steps from
// its documented behaviour with the same libraries (containernetworking/plugins' ns, vishvananda/netlink):
// ADD looks up mvt<xxhash64(deviceID)> on the node, moves it into CNI_NETNS, sets MTU/MAC/promisc, renames
// it to CNI_IFNAME, sets it up and chowns /dev/tap<index>; DEL deletes CNI_IFNAME in the netns.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"

	"github.com/cespare/xxhash/v2"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

type netConf struct {
	types.NetConf
	DeviceID string `json:"deviceID"`
	MTU      int    `json:"mtu"`
	Promisc  bool   `json:"promiscMode"`
}

type envArgs struct {
	types.CommonArgs
	MAC types.UnmarshallableString `json:"mac,omitempty"`
}

func tempName(id string) string {
	return fmt.Sprintf("mvt%012x", xxhash.Sum64String(id)&0xffffffffffff)
}

func cmdAdd(args *skel.CmdArgs) error {
	conf := netConf{}
	if err := json.Unmarshal(args.StdinData, &conf); err != nil {
		return err
	}
	e := envArgs{}
	if err := types.LoadArgs(args.Args, &e); err != nil {
		return err
	}
	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		return err
	}
	defer netns.Close()
	link, err := netlink.LinkByName(tempName(conf.DeviceID))
	if err != nil {
		return fmt.Errorf("failed to lookup device %q: %v", conf.DeviceID, err)
	}
	if err := netlink.LinkSetNsFd(link, int(netns.Fd())); err != nil {
		return err
	}
	var mac string
	var index int
	err = netns.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(tempName(conf.DeviceID))
		if err != nil {
			return err
		}
		if conf.MTU != 0 {
			if err := netlink.LinkSetMTU(l, conf.MTU); err != nil {
				return err
			}
		}
		if e.MAC != "" {
			hw, err := net.ParseMAC(string(e.MAC))
			if err != nil {
				return err
			}
			if err := netlink.LinkSetHardwareAddr(l, hw); err != nil {
				return err
			}
		}
		if conf.Promisc {
			if err := netlink.SetPromiscOn(l); err != nil {
				return err
			}
		}
		if err := netlink.LinkSetName(l, args.IfName); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		l, err = netlink.LinkByName(args.IfName)
		if err != nil {
			return err
		}
		mac, index = l.Attrs().HardwareAddr.String(), l.Attrs().Index
		return os.Chown(fmt.Sprintf("/dev/tap%d", index), 107, 107)
	})
	if err != nil {
		return err
	}
	result := &current.Result{CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{{Name: args.IfName, Mac: mac, Sandbox: args.Netns}}}
	return types.PrintResult(result, conf.CNIVersion)
}

func cmdDel(args *skel.CmdArgs) error {
	if args.Netns == "" {
		return nil
	}
	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		return nil
	}
	defer netns.Close()
	return netns.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(args.IfName)
		if err != nil {
			return nil
		}
		return netlink.LinkDel(l)
	})
}

func cmdCheck(args *skel.CmdArgs) error { return nil }

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck}, version.All, "macvtap-go baseline")
}
