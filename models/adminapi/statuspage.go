package adminapi

import (
	"embed"
	"io/fs"
	"net/http"
)

// statusFiles are the status page: one HTML file, its script and its
// style sheet, written by hand (no build step, no library, no CDN), so the
// page works offline from the binary.
//
//go:embed status
var statusFiles embed.FS

// StatusPage serves the status page: GET / is the page, /status/ its
// script and style sheet; any other path is 404. The page reads the
// admin API under /api/v1 with the operator's bearer token (pasted into
// the page, or passed once in the URL fragment #token=…, which never
// reaches the server's logs) and shows the action buttons only to a role
// that may use them. Mount it at "/" beside the API.
func StatusPage() http.Handler {
	sub, err := fs.Sub(statusFiles, "status")
	if err != nil {
		panic(err) // the embedded folder exists: a build error otherwise
	}
	files := http.FileServerFS(sub)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		http.ServeFileFS(w, r, sub, "index.html")
	})
	mux.Handle("GET /status/", http.StripPrefix("/status/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || r.URL.Path == "index.html" {
			http.NotFound(w, r)
			return
		}
		securityHeaders(w)
		files.ServeHTTP(w, r)
	})))
	return mux
}

// securityHeaders keeps the page to its own origin: no inline script, no
// framing, no referrer carrying the URL.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}
