// Package nginxtest runs nginx with the RTMP module as a real origin for
// tests: one process per origin, its configuration, pid file and logs in
// the test's temporary directory, listening on 127.0.0.1 only.
package nginxtest

import (
	"context"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ModulePath is where Debian's libnginx-mod-rtmp installs the module.
const ModulePath = "/usr/lib/nginx/modules/ngx_rtmp_module.so"

// Require skips the test when nginx, the RTMP module or one of tools is
// missing, unless LIVEEDGE_E2E=require, in which case it fails.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	missing := ""
	for _, tool := range append([]string{"nginx"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			missing = tool
			break
		}
	}
	if missing == "" {
		if _, err := os.Stat(ModulePath); err != nil {
			missing = ModulePath
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("LIVEEDGE_E2E") == "require" {
		t.Fatalf("%s is required (LIVEEDGE_E2E=require) but not installed", missing)
	}
	t.Skipf("%s not installed", missing)
}

// Origin is a running nginx-rtmp server with an application "live".
type Origin struct {
	RTMP string // 127.0.0.1:port
	HTTP string // 127.0.0.1:port, serving /stat
	Dir  string

	conf string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	dead bool
}

// FreePort returns a port on 127.0.0.1 that nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// FreePortErr is FreePort outside a test.
func FreePortErr() (int, error) { return freePort() }

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Start runs an origin; it is killed when the test ends.
func Start(t testing.TB) *Origin {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	o, err := Launch(dir)
	if o != nil {
		t.Cleanup(func() {
			o.Kill()
			if t.Failed() {
				if b, err := os.ReadFile(filepath.Join(dir, "error.log")); err == nil {
					t.Logf("nginx %s error.log:\n%s", o.RTMP, tail(string(b), 30))
				}
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// Launch runs an origin whose configuration, pid file and logs live in
// dir, without a test (for the bench); the caller kills it. On an error
// after the process started, the returned origin is to be killed too.
func Launch(dir string) (*Origin, error) {
	o := &Origin{Dir: dir}
	rtmpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	o.RTMP = fmt.Sprintf("127.0.0.1:%d", rtmpPort)
	o.HTTP = fmt.Sprintf("127.0.0.1:%d", httpPort)
	conf := fmt.Sprintf(`daemon off;
master_process off;
error_log %[1]s/error.log info;
pid %[1]s/nginx.pid;
load_module %[2]s;
events {}
rtmp {
    server {
        listen %[3]s;
        application live { live on; }
        application raw { live on; wait_key off; wait_video off; }
    }
}
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    server {
        listen %[4]s;
        location /stat { rtmp_stat all; }
    }
}
`, dir, ModulePath, o.RTMP, o.HTTP)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	o.conf = path
	return o, o.run()
}

// run starts the nginx process and waits until it accepts connections.
func (o *Origin) run() error {
	o.mu.Lock()
	o.dead = false
	o.done = make(chan struct{})
	o.cmd = exec.Command("nginx", "-p", o.Dir, "-c", o.conf)
	o.cmd.Stdout, o.cmd.Stderr = os.Stderr, os.Stderr
	// Should the test binary die, nginx dies with it.
	o.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := o.cmd.Start()
	if err != nil {
		o.dead = true
	}
	o.mu.Unlock()
	if err != nil {
		return err
	}
	cmd, done := o.cmd, o.done
	go func() {
		cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", o.RTMP, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("nginx exited: %v", cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx did not listen on %s", o.RTMP)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Restart starts a killed origin again on the same ports.
func (o *Origin) Restart(t testing.TB) {
	t.Helper()
	if err := o.Relaunch(); err != nil {
		t.Fatal(err)
	}
}

// Relaunch kills the origin if it runs and starts it again on the same
// ports.
func (o *Origin) Relaunch() error {
	o.Kill()
	return o.run()
}

// Pid returns the nginx process id.
func (o *Origin) Pid() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.cmd.Process.Pid
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// URL returns rtmp://<origin>/live/<stream>.
func (o *Origin) URL(stream string) string { return "rtmp://" + o.RTMP + "/live/" + stream }

// Kill ends the origin with SIGKILL (after SIGCONT, should it be stopped)
// and waits for it.
func (o *Origin) Kill() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dead || o.cmd == nil {
		return
	}
	o.dead = true
	o.cmd.Process.Signal(syscall.SIGCONT)
	o.cmd.Process.Kill()
	<-o.done
}

// Freeze stops the origin with SIGSTOP; Thaw resumes it.
func (o *Origin) Freeze() { o.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen origin.
func (o *Origin) Thaw() { o.signal(syscall.SIGCONT) }

func (o *Origin) signal(sig syscall.Signal) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.dead && o.cmd != nil {
		o.cmd.Process.Signal(sig)
	}
}

// ClipPath is the pre-encoded H.264 + AAC test clip.
func ClipPath(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "protocols", "demo", "clip.flv")
}

// Publish feeds the clip in a loop, in real time, to live/<stream> with
// ffmpeg until the test ends, and waits until the origin has the stream.
func (o *Origin) Publish(t testing.TB, stream string) {
	t.Helper()
	Require(t, "ffmpeg")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := o.PublishCmd(ctx, ClipPath(t), stream)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	if err := o.WaitPublishing(stream, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// PublishCmd returns the ffmpeg command that feeds clip (an FLV file) in
// a loop, in real time, to live/<stream> until ctx ends.
func (o *Origin) PublishCmd(ctx context.Context, clip, stream string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-stream_loop", "-1", "-i", clip, "-c", "copy", "-f", "flv", o.URL(stream))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// RawURL is the RTMP URL of raw/<stream>: an application that sends a
// new player every frame from the first one on, keyframe or not (nginx's
// live application makes it wait for a keyframe).
func (o *Origin) RawURL(stream string) string { return "rtmp://" + o.RTMP + "/raw/" + stream }

// WaitPublishing waits until the origin's /stat lists a publisher of
// live/<stream>.
func (o *Origin) WaitPublishing(stream string, timeout time.Duration) error {
	return o.WaitPublishingApp("live", stream, timeout)
}

// WaitPublishingApp waits until the origin's /stat lists a publisher of
// <app>/<stream>.
func (o *Origin) WaitPublishingApp(app, stream string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := o.Stat()
		if err == nil && st.publishing(app, stream) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("origin %s has no publisher of %s/%s after %v (stat: %v)", o.RTMP, app, stream, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stat is the part of nginx-rtmp's /stat page the tests read.
type Stat struct {
	Servers []struct {
		Apps []struct {
			Name    string `xml:"name"`
			Streams []struct {
				Name    string `xml:"name"`
				Clients []struct {
					Address    string    `xml:"address"`
					Time       int64     `xml:"time"` // ms connected
					Publishing *struct{} `xml:"publishing"`
				} `xml:"client"`
			} `xml:"live>stream"`
		} `xml:"application"`
	} `xml:"server"`
}

// Players returns how many clients play live/<stream>.
func (s *Stat) Players(stream string) int {
	n := 0
	s.each(stream, func(publishing bool) {
		if !publishing {
			n++
		}
	})
	return n
}

// LongPlayers returns how many clients have played live/<stream> for at
// least age: pulls, not the short plays of health probes.
func (s *Stat) LongPlayers(stream string, age time.Duration) int {
	n := 0
	for _, srv := range s.Servers {
		for _, app := range srv.Apps {
			if app.Name != "live" {
				continue
			}
			for _, st := range app.Streams {
				if st.Name != stream {
					continue
				}
				for _, c := range st.Clients {
					if c.Publishing == nil && time.Duration(c.Time)*time.Millisecond >= age {
						n++
					}
				}
			}
		}
	}
	return n
}

// PlayerAddresses returns the client addresses (IP only) of the players of
// live/<stream>.
func (s *Stat) PlayerAddresses(stream string) []string {
	var out []string
	for _, srv := range s.Servers {
		for _, app := range srv.Apps {
			if app.Name != "live" {
				continue
			}
			for _, st := range app.Streams {
				if st.Name != stream {
					continue
				}
				for _, c := range st.Clients {
					if c.Publishing == nil {
						out = append(out, c.Address)
					}
				}
			}
		}
	}
	return out
}

// Publishing reports whether live/<stream> has a publisher.
func (s *Stat) Publishing(stream string) bool { return s.publishing("live", stream) }

func (s *Stat) publishing(app, stream string) bool {
	pub := false
	s.eachIn(app, stream, func(publishing bool) { pub = pub || publishing })
	return pub
}

func (s *Stat) each(stream string, f func(publishing bool)) { s.eachIn("live", stream, f) }

func (s *Stat) eachIn(appName, stream string, f func(publishing bool)) {
	for _, srv := range s.Servers {
		for _, app := range srv.Apps {
			if app.Name != appName {
				continue
			}
			for _, st := range app.Streams {
				if st.Name != stream {
					continue
				}
				for _, c := range st.Clients {
					f(c.Publishing != nil)
				}
			}
		}
	}
}

// Stat reads the origin's /stat page.
func (o *Origin) Stat() (*Stat, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + o.HTTP + "/stat")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("stat: %s", resp.Status)
	}
	var st Stat
	if err := xml.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("stat: %w", err)
	}
	return &st, nil
}

// Players returns how many clients play live/<stream> now.
func (o *Origin) Players(t testing.TB, stream string) int {
	t.Helper()
	st, err := o.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return st.Players(stream)
}

// String names the origin.
func (o *Origin) String() string {
	return "nginx " + o.RTMP + " pid " + strconv.Itoa(o.Pid())
}
