//go:build presence_broken

package gateway

import "bytes"

// A DELIBERATELY BROKEN build (go test -tags presence_broken): presence.js
// no longer ends its session on pagehide, so a closed tab stays listed
// (stale) for the whole grace window instead of leaving at once. The
// browser tests must fail against it; see cmd/presenced/web_browser_test.go.

var (
	leaveOn  = []byte("const LEAVE_ON_PAGEHIDE = true;")
	leaveOff = []byte("const LEAVE_ON_PAGEHIDE = false;")
)

func brokenAsset(name string, b []byte) []byte {
	if name != "presence.js" {
		return b
	}
	if !bytes.Contains(b, leaveOn) {
		panic("presence_broken: presence.js no longer has " + string(leaveOn))
	}
	return bytes.Replace(b, leaveOn, leaveOff, 1)
}

// BrokenBuild reports whether this is a deliberately broken build.
const BrokenBuild = true
