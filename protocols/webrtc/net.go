package webrtc

import (
	"sync"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// ifaceRefresh is how old the shared list of network interfaces may get
// before a new peer reads it again.
const ifaceRefresh = 10 * time.Second

// ifaceNet is the network every peer's ICE agent uses: the standard one,
// with the list of interfaces and their addresses read at most once per
// ifaceRefresh and shared, instead of a netlink dump by every new peer
// (which cost each peer its own copy and a few hundred microseconds).
type ifaceNet struct {
	*stdnet.Net // sockets and name resolution

	mu  sync.Mutex
	cur *stdnet.Net
	at  time.Time
}

func newIfaceNet() (*ifaceNet, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return &ifaceNet{Net: n, cur: n, at: time.Now()}, nil
}

// current returns the interface list, read again if it is older than
// ifaceRefresh; a failed read keeps the previous one.
func (n *ifaceNet) current() *stdnet.Net {
	n.mu.Lock()
	defer n.mu.Unlock()
	if time.Since(n.at) >= ifaceRefresh {
		if fresh, err := stdnet.NewNet(); err == nil {
			n.cur = fresh
		}
		n.at = time.Now()
	}
	return n.cur
}

func (n *ifaceNet) Interfaces() ([]*transport.Interface, error) {
	return n.current().Interfaces()
}

func (n *ifaceNet) InterfaceByIndex(index int) (*transport.Interface, error) {
	return n.current().InterfaceByIndex(index)
}

func (n *ifaceNet) InterfaceByName(name string) (*transport.Interface, error) {
	return n.current().InterfaceByName(name)
}
