package main

import (
	"github.com/liveedge/liveedge/cmd/liveedge/source"
	"github.com/liveedge/liveedge/static"
)

// dashboardSources shows the source manager's pulls and origin health on
// the dashboard.
type dashboardSources struct{ m *source.Manager }

func (d dashboardSources) Pull(stream string) (origin string, up, ok bool) {
	st, ok := d.m.Stats(stream)
	if !ok {
		return "", false, false
	}
	return st.Origin, st.Up, true
}

func (d dashboardSources) Origins() []static.OriginStatus {
	hs := d.m.Health()
	out := make([]static.OriginStatus, 0, len(hs))
	for _, h := range hs {
		if !h.Known {
			continue
		}
		out = append(out, static.OriginStatus{Origin: h.Origin, Up: h.Up, RTTMs: float64(h.RTT.Microseconds()) / 1000})
	}
	return out
}
