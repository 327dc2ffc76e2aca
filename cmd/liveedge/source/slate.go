package source

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/protocols/demo"
)

// slate plays the entry's offline clip into the producer while every
// origin is down, so that viewers already watching stay on the stream.
type slate struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// slateClip loads the entry's offline_slate: "demo" or an FLV clip path.
func (m *Manager) slateClip(spec string) (*demo.Clip, error) {
	if spec == config.DemoOrigin {
		return m.demoClip()
	}
	b, err := os.ReadFile(spec)
	if err != nil {
		return nil, fmt.Errorf("offline_slate: %w", err)
	}
	c, err := demo.ParseFLV(b)
	if err != nil {
		return nil, fmt.Errorf("offline_slate %s: %w", spec, err)
	}
	return c, nil
}

// startSlate starts the slate loop; nil when the entry has none or it
// cannot be loaded (logged).
func (pl *pull) startSlate(ctx context.Context, p *hub.Producer) *slate {
	spec := pl.entry.OfflineSlate
	if spec == "" {
		return nil
	}
	clip, err := pl.m.slateClip(spec)
	if err != nil {
		pl.log.Error("offline slate unavailable", "err", err)
		return nil
	}
	p.Discontinuity()
	sctx, cancel := context.WithCancel(ctx)
	sl := &slate{cancel: cancel}
	sl.wg.Add(1)
	go func() {
		defer sl.wg.Done()
		if err := demo.Feed(sctx, p, clip, nil); err != nil {
			pl.log.Warn("offline slate stopped", "err", err)
		}
	}()
	pl.log.Warn("every origin is down: playing the offline slate", "slate", spec)
	return sl
}

// stop ends the slate and waits for its goroutine: afterwards nothing but
// the caller writes to the producer.
func (sl *slate) stop() {
	sl.cancel()
	sl.wg.Wait()
}
