package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// serverProc is a liveedge process started for one run.
type serverProc struct {
	cmd     *exec.Cmd
	logPath string
	addrs   map[string]string // listener ("rtmp") -> "127.0.0.1:PORT"
	exited  chan struct{}
	waitErr error
}

const (
	serverStartTimeout = 10 * time.Second
	serverStopTimeout  = 10 * time.Second
)

// serverConfig is the configuration the bench runs liveedge with: the
// listeners it needs on 127.0.0.1:0, the others off, no configured streams
// (the bench publishes its own).
func serverConfig(listeners []string) string {
	addr := func(name string) string {
		if slices.Contains(listeners, name) {
			return "127.0.0.1:0"
		}
		return ""
	}
	rtsp := `{listen: ""}`
	if a := addr("rtsp"); a != "" {
		// Viewers play over TCP: no UDP ports (the default ones may be
		// taken by another server on the machine).
		rtsp = fmt.Sprintf("{listen: %q, udp_rtp_port: 0}", a)
	}
	return fmt.Sprintf(`log: {level: info}
rtmp: {listen: %q}
rtsp: %s
http: {listen: %q}
admin: {listen: %q, pprof: %t}
streams: []
`, addr("rtmp"), rtsp, addr("http"), addr("admin"), addr("admin") != "")
}

var listeningRE = regexp.MustCompile(`msg=listening proto=(\S+) addr=(\S+)`)

// parseListening returns the listeners logged so far by a server log.
func parseListening(log []byte) map[string]string {
	out := map[string]string{}
	for _, m := range listeningRE.FindAllSubmatch(log, -1) {
		out[string(m[1])] = string(m[2])
	}
	return out
}

// startServer runs bin with a configuration enabling listeners (plus the
// extra YAML sections), logging to dir, and waits until every listener has
// logged its address.
func startServer(ctx context.Context, bin, dir string, listeners []string, extra ...string) (*serverProc, error) {
	return startServerConfig(ctx, bin, dir, serverConfig(listeners)+strings.Join(extra, ""), listeners)
}

// startServerConfig runs bin with the configuration cfg, logging to dir,
// and waits until every listener has logged its address.
func startServerConfig(ctx context.Context, bin, dir, cfg string, listeners []string) (*serverProc, error) {
	cfgPath := filepath.Join(dir, "liveedge.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "liveedge.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the bench dies, the server dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &serverProc{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	deadline := time.NewTimer(serverStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		b, _ := os.ReadFile(logPath)
		s.addrs = parseListening(b)
		missing := ""
		for _, l := range listeners {
			if s.addrs[l] == "" {
				missing = l
			}
		}
		if missing == "" {
			return s, nil
		}
		select {
		case <-tick.C:
		case <-s.exited:
			return nil, fmt.Errorf("liveedge exited at start (%v); log:\n%s", s.waitErr, tail(b, 2000))
		case <-deadline.C:
			s.stop()
			return nil, fmt.Errorf("liveedge did not log a %s listener within %v; log:\n%s", missing, serverStartTimeout, tail(b, 2000))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		}
	}
}

func (s *serverProc) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM and waits for the exit; SIGKILL after a timeout.
func (s *serverProc) stop() error {
	select {
	case <-s.exited:
		return s.exitErr()
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return s.exitErr()
	case <-time.After(serverStopTimeout):
		s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("liveedge did not exit within %v of SIGTERM; killed", serverStopTimeout)
	}
}

func (s *serverProc) exitErr() error {
	if s.waitErr == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(s.waitErr, &ee) {
		return fmt.Errorf("liveedge exited: %v", ee)
	}
	return s.waitErr
}

// alive reports whether the server is still running.
func (s *serverProc) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// logSummary counts the server's log lines by level and the reasons
// players left with, and keeps a few warning or error lines.
type logSummary struct {
	Warn, Error int
	LeftReasons map[string]int
	Dropped     int // units the server skipped for slow players (sum of dropped=)
	Samples     []string
}

var (
	levelRE   = regexp.MustCompile(`level=(\w+)`)
	droppedRE = regexp.MustCompile(`msg="player left".* dropped=(\d+)`)
	reasonRE  = regexp.MustCompile(`msg="player left".* reason=("[^"]*"|\S+)`)
)

func summarizeLog(b []byte) logSummary {
	ls := logSummary{LeftReasons: map[string]int{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := reasonRE.FindStringSubmatch(line); m != nil {
			ls.LeftReasons[addrRE.ReplaceAllString(strings.Trim(m[1], `"`), "ADDR")]++
		}
		if m := droppedRE.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			ls.Dropped += n
		}
		m := levelRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		switch m[1] {
		case "WARN":
			ls.Warn++
		case "ERROR":
			ls.Error++
		default:
			continue
		}
		if len(ls.Samples) < 5 {
			ls.Samples = append(ls.Samples, line)
		}
	}
	return ls
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// runDir makes the working directory of a special run (failover,
// cluster, soak). done removes it, or, with keepLogs, prints where it is.
func runDir(prefix string, keepLogs bool, stdout io.Writer) (dir string, done func(), err error) {
	if dir, err = os.MkdirTemp("", prefix); err != nil {
		return "", nil, err
	}
	if keepLogs {
		return dir, func() { fmt.Fprintf(stdout, "logs: %s\n", dir) }, nil
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}
