package main

import (
	"fmt"
	"io"
	"runtime"
)

// version is set at build time: go build -ldflags "-X main.version=…".
var version = "dev"

// versionCmd implements `liveedge version`.
func versionCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "usage: liveedge version")
		return 2
	}
	fmt.Fprintf(stdout, "liveedge %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}
