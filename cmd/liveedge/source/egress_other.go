//go:build !linux

package source

import "fmt"

// apply fails: SO_BINDTODEVICE and SO_MARK are Linux socket options.
func (g egress) apply(fd uintptr) error {
	if g.device != "" {
		return fmt.Errorf("%w: bind_device %q: only supported on Linux", ErrBind, g.device)
	}
	return fmt.Errorf("%w: mark %d: only supported on Linux", ErrBind, g.mark)
}
