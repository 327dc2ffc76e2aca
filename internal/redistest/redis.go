// Package redistest runs a throwaway redis-server for tests: on a free
// loopback port, in a temporary directory, without persistence, killed
// by pid when the test ends.
package redistest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/liveedge/liveedge/internal/nginxtest"
)

// Redis is a running redis-server.
type Redis struct {
	Addr string // 127.0.0.1:port
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// URL is the server's redis:// URL.
func (r *Redis) URL() string { return "redis://" + r.Addr }

// Start runs redis-server, or skips the test when it is not installed
// (unless LIVEEDGE_E2E=require).
func Start(t testing.TB) *Redis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("LIVEEDGE_E2E") == "require" {
			t.Fatal("redis-server is required (LIVEEDGE_E2E=require) but not installed")
		}
		t.Skip("redis-server not installed")
	}
	r, err := Launch(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Kill)
	return r
}

// Launch runs redis-server on a free loopback port with dir as its
// working directory, outside a test (the bench); Kill stops it.
func Launch(dir string) (*Redis, error) {
	port, err := nginxtest.FreePortErr()
	if err != nil {
		return nil, err
	}
	r := &Redis{dir: dir, port: port, Addr: "127.0.0.1:" + strconv.Itoa(port)}
	if err := r.launch(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Redis) launch() error {
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--protected-mode", "no")
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	r.cmd.Stderr = r.cmd.Stdout
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("redis-server: %w", err)
	}
	ready := make(chan struct{})
	r.done = make(chan struct{})
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(out)
		once := false
		for sc.Scan() {
			line := sc.Text()
			if !once {
				log.WriteString(line + "\n")
			}
			if !once && strings.Contains(line, "Ready to accept connections") {
				once = true
				close(ready)
			}
		}
		_ = r.cmd.Wait()
		close(r.done)
	}()
	select {
	case <-ready:
		return nil
	case <-r.done:
		return fmt.Errorf("redis-server exited:\n%s", log.String())
	case <-time.After(10 * time.Second):
		r.Kill()
		return fmt.Errorf("redis-server not ready within 10 s")
	}
}

// Kill stops the server at once (SIGKILL); its data is gone.
func (r *Redis) Kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

// Restart kills the server and starts an empty one on the same port.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	if err := r.Relaunch(); err != nil {
		t.Fatal(err)
	}
}

// Relaunch is Restart outside a test.
func (r *Redis) Relaunch() error {
	r.Kill()
	var err error
	for range 20 { // the port may linger for a moment
		if err = r.launch(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}
