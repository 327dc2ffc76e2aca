package mediahttp

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCORS(t *testing.T) {
	for _, tc := range []struct{ allow, vary string }{{"", ""}, {"*", ""}, {"https://a.example", "Origin"}} {
		h := http.Header{}
		CORS(h, tc.allow)
		if h.Get("Access-Control-Allow-Origin") != tc.allow || h.Get("Vary") != tc.vary {
			t.Errorf("allow %q: headers %v", tc.allow, h)
		}
	}
}

func TestMethods(t *testing.T) {
	for _, tc := range []struct {
		method, allow string
		serve         bool
		code          int
		preflight     bool
	}{
		{"GET", "*", true, 200, false},
		{"HEAD", "", true, 200, false},
		{"OPTIONS", "*", false, 204, true},
		{"OPTIONS", "", false, 204, false},
		{"POST", "*", false, 405, false},
		{"DELETE", "", false, 405, false},
	} {
		w := httptest.NewRecorder()
		got := Methods(w, httptest.NewRequest(tc.method, "/live/x.flv", nil), tc.allow, "Authorization")
		if got != tc.serve || (!got && w.Code != tc.code) {
			t.Errorf("%s (allow %q): serve %v, code %d", tc.method, tc.allow, got, w.Code)
		}
		if !got && w.Header().Get("Allow") != "GET, HEAD, OPTIONS" {
			t.Errorf("%s: Allow %q", tc.method, w.Header().Get("Allow"))
		}
		if pf := w.Header().Get("Access-Control-Allow-Headers") == "Authorization"; pf != tc.preflight {
			t.Errorf("%s (allow %q): preflight headers %v", tc.method, tc.allow, w.Header())
		}
	}
}
