// A Go kubelet device plugin doing the same Allocate work as kubevirt/macvtap-cni's, for benchmarks only
// (macvtap-cni is not served by the Go module proxy here): one resource, devices <name>Mvp<i>; Allocate
// deletes any leftover mvt<xxhash64(id)>, creates a macvtap on the lower device with its txqueuelen, sets it
// up and returns /dev/tap<index>. It does not register with a kubelet: the benchmark dials its socket.
//
//	deviceplugin SOCKET NAME LOWER CAPACITY
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/cespare/xxhash/v2"
	"github.com/vishvananda/netlink"
	"google.golang.org/grpc"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

type plugin struct {
	pluginapi.UnimplementedDevicePluginServer
	name, lower string
	capacity    int
}

func (p *plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

func (p *plugin) ListAndWatch(_ *pluginapi.Empty, s pluginapi.DevicePlugin_ListAndWatchServer) error {
	var devs []*pluginapi.Device
	for i := 0; i < p.capacity; i++ {
		devs = append(devs, &pluginapi.Device{ID: fmt.Sprintf("%sMvp%d", p.name, i), Health: pluginapi.Healthy})
	}
	if err := s.Send(&pluginapi.ListAndWatchResponse{Devices: devs}); err != nil {
		return err
	}
	<-s.Context().Done()
	return nil
}

func (p *plugin) Allocate(_ context.Context, r *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	for _, c := range r.ContainerRequests {
		cr := &pluginapi.ContainerAllocateResponse{}
		for _, id := range c.DevicesIds {
			name := fmt.Sprintf("mvt%012x", xxhash.Sum64String(id)&0xffffffffffff)
			if old, err := netlink.LinkByName(name); err == nil {
				_ = netlink.LinkDel(old)
			}
			lower, err := netlink.LinkByName(p.lower)
			if err != nil {
				return nil, err
			}
			mv := &netlink.Macvtap{Macvlan: netlink.Macvlan{
				LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: lower.Attrs().Index, TxQLen: lower.Attrs().TxQLen},
				Mode:      netlink.MACVLAN_MODE_BRIDGE}}
			if err := netlink.LinkAdd(mv); err != nil {
				return nil, err
			}
			link, err := netlink.LinkByName(name)
			if err != nil {
				return nil, err
			}
			if err := netlink.LinkSetUp(link); err != nil {
				return nil, err
			}
			path := fmt.Sprintf("/dev/tap%d", link.Attrs().Index)
			cr.Devices = append(cr.Devices, &pluginapi.DeviceSpec{HostPath: path, ContainerPath: path, Permissions: "rw"})
		}
		resp.ContainerResponses = append(resp.ContainerResponses, cr)
	}
	return resp, nil
}

func (p *plugin) GetPreferredAllocation(context.Context, *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	return &pluginapi.PreferredAllocationResponse{}, nil
}

func (p *plugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

func main() {
	capacity, _ := strconv.Atoi(os.Args[4])
	_ = os.Remove(os.Args[1])
	l, err := net.Listen("unix", os.Args[1])
	if err != nil {
		panic(err)
	}
	s := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(s, &plugin{name: os.Args[2], lower: os.Args[3], capacity: capacity})
	_ = s.Serve(l)
}
