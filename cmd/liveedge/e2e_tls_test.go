package main

import (
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "liveedge test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// TestHTTPSAndHTTP2: with a certificate the HTTP listener serves HTTPS,
// HTTP/2 to a client that offers it; ffprobe plays LL-HLS over HTTPS with
// segments kept in hls.dir; playlists come gzipped when asked and
// segments honour Range.
func TestHTTPSAndHTTP2(t *testing.T) {
	requireTools(t, "ffprobe")
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	segDir := filepath.Join(dir, "hls")
	os.MkdirAll(segDir, 0o755)
	s := startServer(t, `
log: {level: debug}
rtmp: {listen: "127.0.0.1:0"}
rtsp: {listen: ""}
admin: {listen: ""}
http: {listen: "127.0.0.1:0", tls_cert: "`+cert+`", tls_key: "`+key+`"}
hls: {dir: "`+segDir+`"}
streams:
  - {match: "live/demo", mode: static, origins: [demo]}
`)
	base := "https://" + s.httpAddr(t)

	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true, DisableCompression: true}}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, base+"/live/demo/index.m3u8", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatalf("playlist not gzipped (Content-Encoding %q): %v", res.Header.Get("Content-Encoding"), err)
	}
	body, _ := io.ReadAll(zr)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 || !strings.Contains(string(body), "#EXTM3U") {
		t.Fatalf("GET index over TLS: %d %s\n%s", res.StatusCode, res.Proto, body)
	}

	// A segment's first bytes by Range, over the same HTTP/2 connection.
	media := resolveURI(t, base+"/live/demo/index.m3u8", m3u8URIs(string(body))[0])
	res, err = c.Get(media)
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var seg string
	for _, u := range m3u8URIs(string(mb)) {
		if strings.Contains(u, ".mp4") && !strings.Contains(u, "init") {
			seg = resolveURI(t, media, u)
		}
	}
	if seg == "" {
		t.Fatalf("no segment in:\n%s", mb)
	}
	req, _ = http.NewRequest(http.MethodGet, seg, nil)
	req.Header.Set("Range", "bytes=0-99")
	res, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusPartialContent || len(part) != 100 || res.ProtoMajor != 2 {
		t.Fatalf("Range GET %s: %d %s, %d bytes", seg, res.StatusCode, res.Proto, len(part))
	}
	if ents, _ := os.ReadDir(segDir); len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), "liveedge-live~demo-") {
		t.Fatalf("hls.dir holds %v", ents)
	}

	// ffprobe over HTTPS (it does not verify the certificate by default).
	r, err := probe(t, base+"/live/demo/index.m3u8", 60)
	if err != nil {
		t.Fatal(err)
	}
	checkPlayback(t, r, 20)
}

// TestHTTPSBadCertificate: a certificate that cannot be loaded stops the
// start with an error naming the fields.
func TestHTTPSBadCertificate(t *testing.T) {
	cfg := writeFile(t, "rtmp: {listen: \"127.0.0.1:0\"}\nrtsp: {listen: \"\"}\nadmin: {listen: \"\"}\n"+
		"http: {listen: \"127.0.0.1:0\", tls_cert: /nonexistent/cert.pem, tls_key: /nonexistent/key.pem}\n")
	out, err := exec.Command(binPath, "--config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "http.tls_cert/http.tls_key") {
		t.Fatalf("liveedge with a missing certificate: %v\n%s", err, out)
	}
}
