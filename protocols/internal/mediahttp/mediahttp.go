// Package mediahttp holds the HTTP rules the read-only media endpoints
// (HLS, HTTP-FLV) share: their CORS headers and their methods (GET and
// HEAD; OPTIONS answered as a preflight; anything else 405).
package mediahttp

import "net/http"

const allowed = "GET, HEAD, OPTIONS"

// CORS sets Access-Control-Allow-Origin to allowOrigin, with "Vary:
// Origin" when it names one origin rather than "*"; "" sends no CORS
// headers.
func CORS(h http.Header, allowOrigin string) {
	if allowOrigin == "" {
		return
	}
	h.Set("Access-Control-Allow-Origin", allowOrigin)
	if allowOrigin != "*" {
		h.Add("Vary", "Origin")
	}
}

// Methods reports whether r is a GET or HEAD, which the caller serves.
// Otherwise it answers the request itself and reports false: OPTIONS with
// 204 and Allow (plus, with CORS on, the preflight's allowed methods,
// allowHeaders and a one-day max age), any other method with 405.
func Methods(w http.ResponseWriter, r *http.Request, allowOrigin, allowHeaders string) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return true
	case http.MethodOptions:
		h := w.Header()
		h.Set("Allow", allowed)
		if allowOrigin != "" {
			h.Set("Access-Control-Allow-Methods", allowed)
			h.Set("Access-Control-Allow-Headers", allowHeaders)
			h.Set("Access-Control-Max-Age", "86400")
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", allowed)
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
	}
	return false
}
