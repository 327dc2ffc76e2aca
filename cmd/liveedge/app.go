package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/liveedge/liveedge/cache"
	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/hub"
	"github.com/liveedge/liveedge/hub/auth"
	"github.com/liveedge/liveedge/protocols/demo"
	"github.com/liveedge/liveedge/protocols/rtmp"
)

// app is a running liveedge: the hub, its listeners and its sources.
type app struct {
	log  *slog.Logger
	hub  *hub.Hub
	rtmp *rtmp.Server

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func loadConfig(path string) (*config.Config, error) {
	var cfg *config.Config
	if path == "" {
		cfg = config.Default()
	} else {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return nil, err
		}
	}
	cfg.ApplyEnv(os.Getenv)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

// policy builds the admission policy from the auth section.
func policy(a config.AuthConfig) (*auth.Policy, error) {
	alg, err := auth.ParseAlgorithm(a.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("auth.algorithm: %w", err)
	}
	conv := func(p config.AppAuth) auth.AppPolicy {
		return auth.AppPolicy{Secret: []byte(p.Secret), Play: p.Play, Publish: p.Publish,
			BindIP: p.BindIP, AllowedReferers: p.Referers}
	}
	pol := &auth.Policy{
		Algorithm:    alg,
		Default:      conv(a.App("*")),
		Apps:         map[string]auth.AppPolicy{},
		ClockSkew:    a.ClockSkew.Std(),
		ExpiresParam: a.ExpiresParam,
		TokenParam:   a.TokenParam,
	}
	for _, name := range a.AppNames() {
		pol.Apps[name] = conv(a.App(name))
	}
	return pol, nil
}

func start(cfg *config.Config, log *slog.Logger) (*app, error) {
	pol, err := policy(cfg.Auth)
	if err != nil {
		return nil, err
	}
	conflict := hub.ConflictRefuse
	if cfg.Hub.PublisherConflict == config.ConflictTakeover {
		conflict = hub.ConflictTakeover
	}
	h := hub.New(hub.Params{
		Logger: log,
		GOP: cache.Limits{
			MaxBytes:    int(cfg.Hub.GOPCache.MaxBytes),
			MaxDuration: cfg.Hub.GOPCache.MaxDuration.Std(),
			MaxFrames:   cfg.Hub.GOPCache.MaxFrames,
			MaxLag:      cfg.Hub.MaxLag.Std(),
		},
		SlowViewerTimeout: cfg.Hub.SlowViewerTimeout.Std(),
		Conflict:          conflict,
		StartTimeout:      cfg.Hub.StartTimeout.Std(),
		Authorizer:        pol,
	})
	ctx, cancel := context.WithCancel(context.Background())
	a := &app{log: log, hub: h, ctx: ctx, cancel: cancel}

	if cfg.RTMP.Enabled() {
		a.rtmp, err = rtmp.Listen(rtmp.Params{
			Listen:       cfg.RTMP.Listen,
			Hub:          h,
			Logger:       log,
			WriteTimeout: cfg.Hub.SlowViewerTimeout.Std(),
		})
		if err != nil {
			a.Close()
			return nil, err
		}
	}
	for _, sc := range cfg.Streams {
		if sc.Mode != config.ModeStatic {
			continue
		}
		for _, o := range sc.Origins {
			if o != "demo" {
				log.Warn("origin pulls are not available yet; entry ignored", "match", sc.Match, "origin", o)
				continue
			}
			if err := a.startDemo(sc.Match); err != nil {
				a.Close()
				return nil, err
			}
			break
		}
	}
	return a, nil
}

// startDemo runs the built-in clip as the producer of a stream.
func (a *app) startDemo(name string) error {
	if !hub.ValidName(name) {
		return fmt.Errorf("streams: demo source needs an exact app/stream match, not %q", name)
	}
	clip, err := demo.Default()
	if err != nil {
		return err
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := demo.Run(a.ctx, a.hub, name, clip, a.log); err != nil {
			a.log.Error("demo source stopped", "stream", name, "err", err)
		}
	}()
	return nil
}

// Close stops listeners and sources and ends every stream.
func (a *app) Close() {
	a.cancel()
	a.hub.Close()
	if a.rtmp != nil {
		a.rtmp.Close()
	}
	a.wg.Wait()
}
