//go:build !presence_broken

package gateway

// brokenAsset returns the file as embedded. Builds with -tags
// presence_broken break presence on purpose (web_broken_on.go).
func brokenAsset(_ string, b []byte) []byte { return b }

// BrokenBuild reports whether this is a deliberately broken build.
const BrokenBuild = false
