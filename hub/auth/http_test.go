package auth

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestFromHTTP(t *testing.T) {
	r := httptest.NewRequest("GET", "/live/x.flv?expires=10&token=abc", nil)
	r.RemoteAddr = "127.0.0.7:5555"
	r.Header.Set("Authorization", "Bearer tok")
	r.Header.Set("Referer", "https://a.example/p")
	r.Header.Set("Origin", "https://a.example")
	got := FromHTTP(r, Play, "live/x")
	if got.Action != Play || got.Stream != "live/x" || got.Query.Get("token") != "abc" ||
		got.Query.Get("expires") != "10" || got.Bearer != "tok" ||
		got.ClientIP != netip.MustParseAddr("127.0.0.7") ||
		got.Referer != "https://a.example/p" || got.Origin != "https://a.example" {
		t.Fatalf("FromHTTP = %+v", got)
	}
	r.RemoteAddr = "not an address"
	if FromHTTP(r, Play, "live/x").ClientIP.IsValid() {
		t.Fatal("an unparsable remote address gave a client IP")
	}
}
