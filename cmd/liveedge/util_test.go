package main

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cfg.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func countLines(lines []string, re string) int {
	rx := regexp.MustCompile(re)
	n := 0
	for _, l := range lines {
		if rx.MatchString(l) {
			n++
		}
	}
	return n
}
