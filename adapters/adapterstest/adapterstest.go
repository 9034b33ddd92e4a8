// Package adapterstest gives adapter tests the request bodies of the
// conformance fixtures (conformance/testdata/<provider>/*.json), with their
// placeholders filled, to seed fuzz targets. It reads the files directly:
// importing the conformance package from an adapter test would be a cycle.
package adapterstest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
)

var placeholder = regexp.MustCompile(`\{\{[a-z_0-9]+\}\}`)

// FixtureBodies returns every request body (or query, for GETs) of the
// provider's fixtures.
func FixtureBodies(provider string) []string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "conformance", "testdata", provider)
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var fx struct {
			Requests []struct{ Path, Body string } `json:"requests"`
		}
		if json.Unmarshal(b, &fx) != nil {
			continue
		}
		for _, r := range fx.Requests {
			body := r.Body
			if body == "" {
				if _, q, ok := strings.Cut(r.Path, "?"); ok {
					body = q
				}
			}
			out = append(out, placeholder.ReplaceAllString(body, "482913"))
		}
	}
	return out
}
