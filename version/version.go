// Package version holds knode's own version, set at link time by the Makefile
// (-X knode.dev/knode/version.Version=...).
package version

// Version is knode's version string; "dev" for plain `go build`.
var Version = "dev"
