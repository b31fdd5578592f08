package gateway

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"
)

// The browser side, served by every node with no build step: presence.js
// (the client, ES module) and its types, the React bindings and example
// components, the demo page (/), the cluster dashboard (/dashboard) and
// the React example (/examples/react.html).
//
//go:embed web
var webFiles embed.FS

// webAsset is one embedded file, ready to serve.
type webAsset struct {
	name  string // path under web/
	body  []byte
	ctype string
	etag  string
	page  bool // an HTML page: gets the page security headers
}

// pageCSP confines the demo and the dashboard to this origin (their
// WebSocket included: 'self' covers ws: and wss: to the same host).
const pageCSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; " +
	"script-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func contentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".d.ts"):
		return "application/typescript; charset=utf-8"
	case strings.HasSuffix(name, ".js"), strings.HasSuffix(name, ".mjs"):
		return "text/javascript; charset=utf-8"
	case strings.HasSuffix(name, ".css"):
		return "text/css; charset=utf-8"
	case strings.HasSuffix(name, ".html"):
		return "text/html; charset=utf-8"
	case strings.HasSuffix(name, ".svg"):
		return "image/svg+xml"
	case strings.HasSuffix(name, ".json"):
		return "application/json"
	}
	return "application/octet-stream"
}

// loadWebAssets reads every embedded file once; transform (a test hook,
// see web_broken_on.go) may rewrite one.
func loadWebAssets() map[string]*webAsset {
	out := make(map[string]*webAsset)
	err := fs.WalkDir(webFiles, "web", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := webFiles.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "web/")
		b = brokenAsset(name, b)
		sum := sha256.Sum256(b)
		out[name] = &webAsset{
			name: name, body: b, ctype: contentType(name),
			etag: `"` + hex.EncodeToString(sum[:12]) + `"`, page: strings.HasSuffix(name, ".html"),
		}
		return nil
	})
	if err != nil {
		panic("gateway: embedded web files: " + err.Error())
	}
	return out
}

// webRoutes maps each embedded file to its URL path: index.html is /,
// dashboard.html is /dashboard, every other file is served under its own
// name (/presence.js, /examples/react.html …).
func webRoutes(assets map[string]*webAsset) map[string]*webAsset {
	routes := make(map[string]*webAsset, len(assets))
	for name, a := range assets {
		switch name {
		case "index.html":
			routes["/{$}"] = a
		case "dashboard.html":
			routes["/dashboard"] = a
		default:
			routes["/"+name] = a
		}
	}
	return routes
}

// registerWeb adds the GET routes of the browser files to mux.
func (s *Server) registerWeb(mux *http.ServeMux, h func(string, http.HandlerFunc)) {
	routes := webRoutes(loadWebAssets())
	paths := make([]string, 0, len(routes))
	for p := range routes {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		a := routes[p]
		h("GET "+p, func(w http.ResponseWriter, r *http.Request) { serveAsset(w, r, a) })
	}
}

func serveAsset(w http.ResponseWriter, r *http.Request, a *webAsset) {
	hd := w.Header()
	hd.Set("Content-Type", a.ctype)
	hd.Set("X-Content-Type-Options", "nosniff")
	// Revalidate every time (a 304 is cheap): a node upgrade must reach
	// every tab on its next load, and the files are small.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", a.etag)
	if !a.page {
		// Apps on other origins import presence.js from the node (module
		// scripts are fetched with CORS). The files are public.
		hd.Set("Access-Control-Allow-Origin", "*")
	}
	if a.page {
		hd.Set("Referrer-Policy", "no-referrer")
		if path.Dir(a.name) == "." { // the demo and the dashboard; the React example loads React from a CDN
			hd.Set("Content-Security-Policy", pageCSP)
		}
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
