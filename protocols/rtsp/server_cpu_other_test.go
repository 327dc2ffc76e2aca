//go:build !unix

package rtsp

import "time"

// srvCPUTime is not measured on this platform.
func srvCPUTime() time.Duration { return 0 }
