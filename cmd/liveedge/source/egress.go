package source

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/protocols/rtmp"
)

// ErrBind is wrapped by the error of an origin connection whose egress
// settings (bind_address, bind_device, mark) could not be applied.
var ErrBind = errors.New("egress bind failed")

// egress is an entry's choice of how its origin connections leave: from
// which local address, on which interface, with which firewall mark.
type egress struct {
	address string // bind_address
	device  string // bind_device
	mark    int64  // mark; 0 = none
}

func egressOf(e *config.Stream) egress {
	return egress{address: e.BindAddress, device: e.BindDevice, mark: e.Mark}
}

func (g egress) none() bool { return g == egress{} }

// dialer returns a copy of base that applies g to every connection.
func (g egress) dialer(base *net.Dialer) *net.Dialer {
	d := *base
	if g.none() {
		return &d
	}
	if g.address != "" {
		// Validated as an IP address; a zone ("fe80::1%eth0") is kept.
		ip, zone := splitZone(g.address)
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(ip), Zone: zone}
	}
	if g.device != "" || g.mark != 0 {
		prev := d.Control
		d.Control = func(network, address string, c syscall.RawConn) error {
			if prev != nil {
				if err := prev(network, address, c); err != nil {
					return err
				}
			}
			var serr error
			if err := c.Control(func(fd uintptr) { serr = g.apply(fd) }); err != nil {
				return err
			}
			return serr
		}
	}
	return &d
}

func splitZone(s string) (ip, zone string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// bindError names the origin and the setting when an egress setting
// could not be applied, or the local address could not be bound; other
// errors are returned as they are.
func (g egress) bindError(origin string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrBind) {
		return fmt.Errorf("%w (origin %s)", err, rtmp.RedactURL(origin))
	}
	var se *os.SyscallError
	if g.address != "" && errors.As(err, &se) && se.Syscall == "bind" {
		return fmt.Errorf("%w: bind_address %s (origin %s): %w", ErrBind, g.address, rtmp.RedactURL(origin), err)
	}
	return err
}
