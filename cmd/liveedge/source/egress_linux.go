package source

import (
	"fmt"
	"syscall"
)

// apply sets SO_BINDTODEVICE and SO_MARK on a socket before it connects.
func (g egress) apply(fd uintptr) error {
	if g.device != "" {
		if err := syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, g.device); err != nil {
			return fmt.Errorf("%w: bind_device %q: %w", ErrBind, g.device, err)
		}
	}
	if g.mark != 0 {
		if err := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK, int(g.mark)); err != nil {
			return fmt.Errorf("%w: mark %d: %w", ErrBind, g.mark, err)
		}
	}
	return nil
}
