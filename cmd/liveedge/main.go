// Command liveedge is a live-video edge relay: it takes each stream once
// (RTMP publish, or a pull from an origin) and fans it out to every viewer.
//
//	liveedge                      run on the embedded defaults (live/demo)
//	liveedge --config FILE        run on a configuration file (SIGHUP reloads it)
//	liveedge --config FILE --check-config
//	liveedge token sign --stream live/test --ttl 1h [--config FILE] [--publish]
//	liveedge version
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "token" {
		return tokenCmd(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "version" {
		return versionCmd(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("liveedge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML); without it the embedded defaults are used")
	check := fs.Bool("check-config", false, "validate the configuration and exit (0 valid, 1 invalid)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "liveedge: %v\n", err)
		return 1
	}
	if *check {
		fmt.Fprintln(stdout, "configuration ok")
		return 0
	}
	log := newLogger(cfg.Log.Level, cfg.Log.Format, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// SIGHUP reloads the configuration file. It is caught from before the
	// start, whose listeners may be up before it returns: a SIGHUP then is
	// a reload once started, not the end of the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	app, err := start(cfg, *cfgPath, log)
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hup:
			app.Reload() //nolint:errcheck // logged; the running configuration stays
		}
	}
	log.Info("shutting down")
	done := make(chan struct{})
	go func() {
		app.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		log.Warn("shutdown took longer than 5s, exiting anyway")
		return 1
	}
	return 0
}

func newLogger(level, format string, w io.Writer) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
