package cluster

import (
	"syscall"
	"time"
)

// cpuSample is the process's CPU time (user + system) at a moment.
type cpuSample struct {
	cpu time.Duration
	at  time.Time
}

func readCPU() cpuSample {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuSample{at: time.Now()}
	}
	return cpuSample{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), at: time.Now()}
}

// since returns the share of one core used between prev and s.
func (s cpuSample) since(prev cpuSample) float64 {
	wall := s.at.Sub(prev.at)
	if wall <= 0 || prev.at.IsZero() {
		return 0
	}
	return float64(s.cpu-prev.cpu) / float64(wall)
}
