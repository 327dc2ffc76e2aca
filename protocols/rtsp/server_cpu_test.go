//go:build unix

package rtsp

import (
	"syscall"
	"time"
)

// srvCPUTime returns the process's user + system CPU time.
func srvCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
